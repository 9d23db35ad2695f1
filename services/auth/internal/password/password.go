// Package password hashes and checks end-user passwords with argon2id
// (RFC 9106) in the PHC string format, so the parameters of a stored hash
// travel with it and can be raised later without invalidating old hashes.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	Time    uint32 // passes over memory
	Memory  uint32 // KiB
	Threads uint8
	SaltLen int
	KeyLen  uint32
}

// Default is OWASP's minimum argon2id profile (m=19 MiB, t=2, p=1): about
// 20–40 ms on one core of a current server, so a sign-in costs little to
// a user and every guess costs as much to an attacker with the hashes.
var Default = Params{Time: 2, Memory: 19 * 1024, Threads: 1, SaltLen: 16, KeyLen: 32}

// Bounds on a password's length, in bytes: 8 is the least worth having;
// 256 keeps hashing a hostile password cheap.
const (
	MinBytes = 8
	MaxBytes = 256
)

// ErrWeak is a password outside MinBytes–MaxBytes.
var ErrWeak = errors.New("password: must be 8-256 bytes")

// ErrMalformed is a stored hash this package cannot read.
var ErrMalformed = errors.New("password: malformed hash")

// Validate checks a new password's length.
func Validate(pw string) error {
	if len(pw) < MinBytes || len(pw) > MaxBytes {
		return ErrWeak
	}
	return nil
}

var b64 = base64.RawStdEncoding

// Hash hashes pw with p and returns the PHC string
// "$argon2id$v=19$m=…,t=…,p=…$<salt>$<key>".
func Hash(pw string, p Params) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// maxMemory bounds the memory a stored hash may ask for (1 GiB), so a
// corrupted row cannot exhaust the service.
const maxMemory = 1 << 20

// Check reports whether pw matches the PHC string hash, comparing in
// constant time.
func Check(pw, hash string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, ErrMalformed
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, ErrMalformed
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil ||
		p.Memory == 0 || p.Memory > maxMemory || p.Time == 0 || p.Threads == 0 {
		return false, ErrMalformed
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, ErrMalformed
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, ErrMalformed
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(want))) //nolint:gosec // len of a decoded key
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummy is a hash of a random password with Default: checking any
// password against it takes as long as checking against a real hash.
var dummy = func() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h, err := Hash(base64.RawURLEncoding.EncodeToString(b[:]), Default)
	if err != nil {
		panic(err)
	}
	return h
}()

// CheckDummy spends the time of a Check against a real hash and returns
// false: a sign-in for an unknown email must cost what a wrong password
// costs, or the time taken would tell which emails have accounts.
func CheckDummy(pw string) bool {
	_, _ = Check(pw, dummy)
	return false
}
