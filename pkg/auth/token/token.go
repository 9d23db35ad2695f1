// Package token mints and verifies the JWTs that clients present to
// gateways.
//
// An app's backend holds an API key "<app>.<keyId>:<secret>" and mints
// short-lived HS256 tokens with it (Mint); the token's "kid" header names the
// key. Or it asks the auth service, which signs EdDSA tokens with its own
// Ed25519 keys (MintEdDSA), published as a JWKS (jwks.go); those name the
// API key they were issued for in the "akid" claim. Gateways verify tokens (Verifier) against a Keyring before any
// WebSocket exists. A token carries the client id (sub), its app, an expiry
// and Capabilities: room patterns mapped to the operations allowed there.
//
// Tokens and secrets are never logged: log Fingerprint(token) instead.
package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Verification errors. Verify wraps exactly one of them, so callers switch
// with errors.Is: ErrExpired means the client should fetch a new token and
// reconnect (close code 4002); ErrRevoked and ErrCapsExceeded mean the
// credentials are not allowed (4003); every other error means the token is
// invalid (close code 4001). Retrying with the same token is pointless
// except after ErrExpired.
var (
	ErrMissing       = errors.New("token: missing")
	ErrMalformed     = errors.New("token: malformed")
	ErrExpired       = errors.New("token: expired")
	ErrSignature     = errors.New("token: invalid signature or algorithm")
	ErrUnknownKey    = errors.New("token: unknown key")
	ErrInvalidClaims = errors.New("token: invalid claims")
	// ErrRevoked: the token's API key was revoked (close code 4003).
	ErrRevoked = errors.New("token: key revoked")
	// ErrCapsExceeded: the token allows more than its API key (close code
	// 4003): a correctly signed token the key's owner was not allowed to
	// issue.
	ErrCapsExceeded = errors.New("token: capabilities exceed the key's")
)

// MaxClientIDBytes is the longest client id (the "sub" claim).
const MaxClientIDBytes = 256

// Claims is the payload of a Roomcast token.
type Claims struct {
	// App is the app the token belongs to; it must equal the signing key's app.
	App string `json:"app"`
	// Caps are the rooms and operations the client may use.
	Caps Capabilities `json:"caps"`
	// APIKey is the id of the API key the token was issued for. EdDSA
	// tokens from the auth service carry it (claim "akid") so that gateways
	// can bound their capabilities and honour the key's revocation; for
	// HS256 tokens Verify sets it to the signing key's id.
	APIKey string `json:"akid,omitempty"`
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
	return signClaims(jwt.SigningMethodHS256, k.ID, k.Secret, &Claims{App: k.App, Caps: caps}, clientID, ttl, now)
}

// SigningKey is one of the auth service's Ed25519 token-signing keys.
type SigningKey struct {
	ID      string
	Private ed25519.PrivateKey
}

// MintEdDSA returns an EdDSA token signed with sk for clientID of the app
// of apiKey, naming apiKey in its "akid" claim; see Mint for the rest. The
// caller checks that caps are Within the API key's.
func MintEdDSA(sk SigningKey, apiKey Key, clientID string, caps Capabilities, ttl time.Duration, now time.Time) (string, error) {
	if len(sk.Private) != ed25519.PrivateKeySize || !validName(sk.ID) {
		return "", errors.New("mint token: invalid signing key")
	}
	if !validName(apiKey.App) || !validName(apiKey.ID) {
		return "", errors.New("mint token: invalid API key app or id")
	}
	return signClaims(jwt.SigningMethodEdDSA, sk.ID, sk.Private, &Claims{App: apiKey.App, Caps: caps, APIKey: apiKey.ID}, clientID, ttl, now)
}

// signClaims fills in the registered claims of c (subject clientID, issued now,
// expiring ttl later, a random id), checks clientID, caps and ttl, and
// signs with method and key under the "kid" header.
func signClaims(method jwt.SigningMethod, kid string, key any, c *Claims, clientID string, ttl time.Duration, now time.Time) (string, error) {
	if err := validateClientID(clientID); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	if err := c.Caps.Validate(); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	if ttl < time.Second {
		return "", fmt.Errorf("mint token: ttl %v is shorter than a second", ttl)
	}
	c.RegisteredClaims = jwt.RegisteredClaims{
		Subject:   clientID,
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		IssuedAt:  jwt.NewNumericDate(now),
		ID:        rand.Text(),
	}
	t := jwt.NewWithClaims(method, c)
	t.Header["kid"] = kid
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("mint token: sign: %w", err)
	}
	return s, nil
}
