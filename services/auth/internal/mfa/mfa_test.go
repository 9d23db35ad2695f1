package mfa

import (
	"bytes"
	"image/png"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnrollGivesAScannableSecret(t *testing.T) {
	e, err := Enroll("Chat App", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(e.URI)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" {
		t.Fatalf("URI %q: not an otpauth TOTP URI (%v)", e.URI, err)
	}
	q := u.Query()
	if q.Get("secret") != e.Secret || q.Get("issuer") != "Chat App" || q.Get("digits") != "6" || q.Get("period") != "30" {
		t.Fatalf("URI query %v does not carry the secret and parameters", q)
	}
	if !strings.Contains(u.Path, "alice@example.com") {
		t.Fatalf("URI path %q lacks the account", u.Path)
	}
	if len(e.Secret) != 32 { // 20 bytes in base32
		t.Fatalf("secret %d characters, want 32", len(e.Secret))
	}
	img, err := png.Decode(bytes.NewReader(e.QRPNG))
	if err != nil {
		t.Fatalf("QR code is not a PNG: %v", err)
	}
	if img.Bounds().Dx() != qrSize {
		t.Fatalf("QR %d px wide, want %d", img.Bounds().Dx(), qrSize)
	}
	other, _ := Enroll("Chat App", "alice@example.com")
	if other.Secret == e.Secret {
		t.Fatal("two enrollments share a secret")
	}
}

func TestCheckAcceptsCurrentAndAdjacentSteps(t *testing.T) {
	e, _ := Enroll("x", "a")
	now := time.Unix(1_800_000_015, 0)
	step := now.Unix() / 30
	for _, d := range []int64{-1, 0, 1} {
		at := time.Unix((step+d)*30, 0)
		got, err := Check(e.Secret, codeAt(t, e.Secret, at), 0, now)
		if err != nil || got != step+d {
			t.Fatalf("offset %d: step %d, %v; want %d", d, got, err, step+d)
		}
	}
	for _, d := range []int64{-2, 2} {
		at := time.Unix((step+d)*30, 0)
		if _, err := Check(e.Secret, codeAt(t, e.Secret, at), 0, now); err != ErrInvalid {
			t.Fatalf("offset %d accepted: %v", d, err)
		}
	}
}

func TestCheckRefusesReplayAndGarbage(t *testing.T) {
	e, _ := Enroll("x", "a")
	now := time.Unix(1_800_000_000, 0)
	code := codeAt(t, e.Secret, now)
	step, err := Check(e.Secret, code, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(e.Secret, code, step, now); err != ErrInvalid {
		t.Fatalf("the same code accepted twice: %v", err)
	}
	// An older step's code after a newer one was used: refused too.
	if _, err := Check(e.Secret, codeAt(t, e.Secret, now.Add(-30*time.Second)), step, now); err != ErrInvalid {
		t.Fatalf("an earlier step accepted after a later one: %v", err)
	}
	// The next step's code still works.
	if _, err := Check(e.Secret, codeAt(t, e.Secret, now.Add(30*time.Second)), step, now.Add(30*time.Second)); err != nil {
		t.Fatalf("next step refused: %v", err)
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef", "      "} {
		if _, err := Check(e.Secret, bad, 0, now); err != ErrInvalid {
			t.Fatalf("%q accepted: %v", bad, err)
		}
	}
	if _, err := Check("not base32!", "123456", 0, now); err != ErrInvalid {
		t.Fatalf("bad secret: %v", err)
	}
	// A code of another secret.
	other, _ := Enroll("x", "a")
	if oc := codeAt(t, other.Secret, now); oc != code { // one in a million they agree
		if _, err := Check(e.Secret, oc, 0, now); err != ErrInvalid {
			t.Fatalf("another secret's code accepted: %v", err)
		}
	}
}

func TestRecoveryCodes(t *testing.T) {
	plain, hashes, err := NewRecoveryCodes()
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != RecoveryCodes || len(hashes) != RecoveryCodes {
		t.Fatalf("%d codes, %d hashes", len(plain), len(hashes))
	}
	seen := map[string]bool{}
	for i, c := range plain {
		if len(c) != RecoveryCodeChars+1 || c[5] != '-' || strings.ContainsAny(c, "ilou") {
			t.Fatalf("code %q: want xxxxx-xxxxx in Crockford base32", c)
		}
		if seen[c] {
			t.Fatalf("duplicate code %q", c)
		}
		seen[c] = true
		if !bytes.Equal(HashRecoveryCode(c), hashes[i]) {
			t.Fatalf("hash %d does not match its code", i)
		}
		typed := " " + strings.ToUpper(strings.ReplaceAll(c, "-", " ")) + " "
		if !bytes.Equal(HashRecoveryCode(typed), hashes[i]) {
			t.Fatalf("%q as typed %q hashes differently", c, typed)
		}
	}
	if bytes.Equal(HashRecoveryCode(plain[0]), HashRecoveryCode(plain[1])) {
		t.Fatal("two codes hash alike")
	}
}
