package seal

import (
	"bytes"
	"errors"
	"testing"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestSealOpen(t *testing.T) {
	s, err := New(key(1))
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("the-secret-value-0123456789")
	a := s.Seal(secret, "api-key:app.k1")
	b := s.Seal(secret, "api-key:app.k1")
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same secret are equal: the nonce is not random")
	}
	if bytes.Contains(a, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := s.Open(a, "api-key:app.k1")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}

	other, _ := New(key(2))
	tampered := append([]byte(nil), a...)
	tampered[len(tampered)-1] ^= 1
	badVersion := append([]byte(nil), a...)
	badVersion[0] = 9
	cases := map[string]func() ([]byte, error){
		"other master key": func() ([]byte, error) { return other.Open(a, "api-key:app.k1") },
		"other context":    func() ([]byte, error) { return s.Open(a, "api-key:app.k2") },
		"tampered":         func() ([]byte, error) { return s.Open(tampered, "api-key:app.k1") },
		"unknown version":  func() ([]byte, error) { return s.Open(badVersion, "api-key:app.k1") },
		"truncated":        func() ([]byte, error) { return s.Open(a[:10], "api-key:app.k1") },
		"empty":            func() ([]byte, error) { return s.Open(nil, "api-key:app.k1") },
	}
	for name, open := range cases {
		if pt, err := open(); !errors.Is(err, ErrOpen) || pt != nil {
			t.Errorf("%s: Open = %q, %v; want ErrOpen", name, pt, err)
		}
	}
}

func TestNewRejectsBadKeys(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("New accepted a %d-byte master key", n)
		}
	}
}

func TestHashEqual(t *testing.T) {
	h := Hash([]byte("secret-1"))
	if !Equal(h, []byte("secret-1")) || Equal(h, []byte("secret-2")) || Equal(nil, []byte("secret-1")) {
		t.Fatal("Equal disagrees with Hash")
	}
	if !EqualStrings("admin-token", "admin-token") || EqualStrings("admin-token", "admin-token2") || EqualStrings("", "x") {
		t.Fatal("EqualStrings is wrong")
	}
}
