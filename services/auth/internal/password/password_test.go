package password

import (
	"strings"
	"testing"
)

func TestHashCheck(t *testing.T) {
	h, err := Hash("correct horse", Default)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q: not the documented PHC parameters", h)
	}
	if ok, err := Check("correct horse", h); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, err := Check("correct horsE", h); ok || err != nil {
		t.Fatalf("wrong password: %v %v", ok, err)
	}
	h2, _ := Hash("correct horse", Default)
	if h2 == h {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	// Parameters travel with the hash: a cheaper old hash still checks.
	cheap, _ := Hash("pw123456", Params{Time: 1, Memory: 64, Threads: 1, SaltLen: 8, KeyLen: 16})
	if ok, err := Check("pw123456", cheap); !ok || err != nil {
		t.Fatalf("hash with other parameters: %v %v", ok, err)
	}
}

func TestCheckRejectsMalformed(t *testing.T) {
	for _, h := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=18$m=1,t=1,p=1$AA$AA",
		"$argon2id$v=19$m=99999999,t=1,p=1$AA$AA", "$argon2id$v=19$m=1,t=0,p=1$AA$AA", "$argon2id$v=19$m=1,t=1,p=1$!!$AA",
		"$argon2id$v=19$m=1,t=1,p=1$AA$"} {
		if ok, err := Check("x", h); ok || err != ErrMalformed {
			t.Errorf("Check(%q) = %v, %v; want ErrMalformed", h, ok, err)
		}
	}
}

func TestValidateAndDummy(t *testing.T) {
	if Validate("1234567") != ErrWeak || Validate(strings.Repeat("x", 257)) != ErrWeak {
		t.Fatal("short or long passwords accepted")
	}
	if Validate("12345678") != nil || Validate(strings.Repeat("x", 256)) != nil {
		t.Fatal("8 and 256 bytes refused")
	}
	if CheckDummy("anything") {
		t.Fatal("the dummy hash matched")
	}
	if ok, err := Check("anything", dummy); ok || err != nil {
		t.Fatalf("dummy is not a valid hash: %v", err)
	}
}
