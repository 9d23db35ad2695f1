// Package token mints and verifies the JWTs that clients present to
// gateways.
//
// An app's backend holds an API key "<app>.<keyId>:<secret>" and mints
// short-lived HS256 tokens with it (Mint); the token's "kid" header names the
// key. Gateways verify tokens (Verifier) against a Keyring before any
// WebSocket exists. A token carries the client id (sub), its app, an expiry
// and Capabilities: room patterns mapped to the operations allowed there.
//
// Tokens and secrets are never logged: log Fingerprint(token) instead.
package token

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Verification errors. Verify wraps exactly one of them, so callers switch
// with errors.Is: ErrExpired means the client should fetch a new token and
// reconnect (close code 4002); every other error means the token is invalid
// (close code 4001) and retrying with it is pointless.
var (
	ErrMissing       = errors.New("token: missing")
	ErrMalformed     = errors.New("token: malformed")
	ErrExpired       = errors.New("token: expired")
	ErrSignature     = errors.New("token: invalid signature or algorithm")
	ErrUnknownKey    = errors.New("token: unknown key")
	ErrInvalidClaims = errors.New("token: invalid claims")
)

// MaxClientIDBytes is the longest client id (the "sub" claim).
const MaxClientIDBytes = 256

// Claims is the payload of a Roomcast token.
type Claims struct {
	// App is the app the token belongs to; it must equal the signing key's app.
	App string `json:"app"`
	// Caps are the rooms and operations the client may use.
	Caps Capabilities `json:"caps"`
	// RegisteredClaims: Subject is the client id (required), ExpiresAt is
	// required, IssuedAt and ID (a random token id) are set by Mint.
	jwt.RegisteredClaims
}

// ClientID returns the client id the token was issued to (the "sub" claim).
func (c *Claims) ClientID() string { return c.Subject }

// check validates the claims that the JWT library does not: app, sub, caps.
func (c *Claims) check(app string) error {
	if c.App != app {
		return errors.New("app claim does not match the signing key's app")
	}
	if err := validateClientID(c.Subject); err != nil {
		return err
	}
	return c.Caps.Validate()
}

func validateClientID(id string) error {
	if id == "" {
		return errors.New("client id (sub) is missing")
	}
	if len(id) > MaxClientIDBytes {
		return fmt.Errorf("client id (sub) is longer than %d bytes", MaxClientIDBytes)
	}
	if !utf8.ValidString(id) {
		return errors.New("client id (sub) is not valid UTF-8")
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return errors.New("client id (sub) contains a control character")
		}
	}
	return nil
}

// Mint returns an HS256 token signed with k for clientID, allowing caps,
// issued at now and expiring ttl later (JWT times have one-second
// precision, so ttl must be at least a second). The "kid" header is k.ID
// and the token gets a random id ("jti").
func Mint(k Key, clientID string, caps Capabilities, ttl time.Duration, now time.Time) (string, error) {
	if err := k.Validate(); err != nil {
		return "", fmt.Errorf("mint token: key: %w", err)
	}
	if err := validateClientID(clientID); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	if err := caps.Validate(); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	if ttl < time.Second {
		return "", fmt.Errorf("mint token: ttl %v is shorter than a second", ttl)
	}
	claims := &Claims{
		App:  k.App,
		Caps: caps,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   clientID,
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        rand.Text(),
		},
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["kid"] = k.ID
	s, err := t.SignedString(k.Secret)
	if err != nil {
		return "", fmt.Errorf("mint token: sign: %w", err)
	}
	return s, nil
}
