// Package mfa is the second factor of end-user sign-in: TOTP (RFC 6238,
// the codes of authenticator apps) and one-use recovery codes. It holds no
// state: the caller stores the secret (sealed), the last accepted time
// step and the recovery codes' hashes, and passes them in.
package mfa

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: what every authenticator app supports (SHA-1, 6 digits,
// 30 s). Skew accepts the step before and after the current one, for
// clocks a little off and codes typed at a step's end.
const (
	Period = 30 * time.Second
	Digits = otp.DigitsSix
	Skew   = 1

	// RecoveryCodes is how many recovery codes a user gets; each is
	// RecoveryCodeChars characters of Crockford-free base32 (50 bits),
	// shown as two groups of five.
	RecoveryCodes     = 10
	RecoveryCodeChars = 10

	qrSize = 256
)

// ErrInvalid is a wrong, malformed or replayed code: one error for all,
// so an answer never tells which.
var ErrInvalid = errors.New("mfa: invalid code")

// Enrollment is what a user needs to add the account to an authenticator
// app. Secret is base32; URI the otpauth:// URI; QRPNG the URI as a QR
// code, PNG-encoded.
type Enrollment struct {
	Secret string
	URI    string
	QRPNG  []byte
}

// Enroll creates a new TOTP secret for account (the user's email or id)
// under issuer (the app's name, shown by authenticator apps).
func Enroll(issuer, account string) (Enrollment, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      uint(Period / time.Second),
		SecretSize:  20, // 160 bits, RFC 4226's recommendation
		Digits:      Digits,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return Enrollment{}, fmt.Errorf("mfa: generate secret: %w", err)
	}
	img, err := key.Image(qrSize, qrSize)
	if err != nil {
		return Enrollment{}, fmt.Errorf("mfa: QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Enrollment{}, fmt.Errorf("mfa: QR code: %w", err)
	}
	return Enrollment{Secret: key.Secret(), URI: key.URL(), QRPNG: buf.Bytes()}, nil
}

// Check verifies a TOTP code against secret at now and returns the time
// step it matched. A step at or before lastStep is refused, so a code
// (seen over a shoulder, or replayed) works once; store the returned step
// as the new lastStep. Pass lastStep 0 for a secret never used.
func Check(secret, code string, lastStep int64, now time.Time) (int64, error) {
	code = strings.TrimSpace(code)
	if len(code) != Digits.Length() {
		return 0, ErrInvalid
	}
	current := now.Unix() / int64(Period/time.Second)
	opts := totp.ValidateOpts{Period: uint(Period / time.Second), Digits: Digits, Algorithm: otp.AlgorithmSHA1}
	matched := int64(-1)
	// Every candidate is computed and compared in constant time, so the
	// time taken does not tell which step (if any) matched.
	for step := current - Skew; step <= current+Skew; step++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*int64(Period/time.Second), 0), opts)
		if err != nil {
			return 0, ErrInvalid // malformed secret: the caller's data, never the user's
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && step > lastStep && matched < 0 {
			matched = step
		}
	}
	if matched < 0 {
		return 0, ErrInvalid
	}
	return matched, nil
}

// recoveryAlphabet is base32 without the characters people confuse
// (0/O, 1/I/L, U): Crockford's alphabet in lower case.
const recoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// NewRecoveryCodes returns RecoveryCodes fresh codes to show the user once
// (formatted "abcde-fghjk") and their hashes to store.
func NewRecoveryCodes() (plain []string, hashes [][]byte, err error) {
	plain = make([]string, RecoveryCodes)
	hashes = make([][]byte, RecoveryCodes)
	raw := make([]byte, RecoveryCodeChars)
	for i := range plain {
		if _, err := rand.Read(raw); err != nil {
			return nil, nil, fmt.Errorf("mfa: recovery codes: %w", err)
		}
		var b strings.Builder
		for j, c := range raw {
			if j == RecoveryCodeChars/2 {
				b.WriteByte('-')
			}
			b.WriteByte(recoveryAlphabet[int(c)%len(recoveryAlphabet)]) // 256 % 32 == 0: unbiased
		}
		plain[i] = b.String()
		hashes[i] = HashRecoveryCode(plain[i])
	}
	return plain, hashes, nil
}

// HashRecoveryCode hashes a recovery code as typed: case, dashes and
// spaces do not matter. Codes carry 50 random bits and tries are rate
// limited, so a fast hash is enough. Compare hashes with
// subtle.ConstantTimeCompare, or look them up by equality in the store.
func HashRecoveryCode(code string) []byte {
	var b strings.Builder
	for _, r := range strings.ToLower(code) {
		if r == '-' || r == ' ' || r == '\t' {
			continue
		}
		b.WriteRune(r)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return sum[:]
}
