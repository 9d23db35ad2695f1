package token

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Limits of the API key syntax "<app>.<keyId>:<secret>".
const (
	MaxNameBytes   = 64  // longest app name or key id
	MinSecretBytes = 16  // shortest key secret
	MaxSecretBytes = 512 // longest key secret
)

// Key is an API key: the app it belongs to, its id (the JWT "kid") and the
// HMAC secret that signs and verifies HS256 tokens.
//
// Key's fmt and slog forms are redacted (the secret shows only as its
// Fingerprint); only String returns the full key, for writing it back to a
// config file or showing it once to its owner.
type Key struct {
	App    string
	ID     string
	Secret []byte
	// Caps bound what a token of this key may allow: Verify refuses a
	// token whose capabilities are not Within them (ErrCapsExceeded). Nil
	// means no bound (keys from static configuration).
	Caps Capabilities
	// Public is set instead of Secret on the auth service's Ed25519
	// signing keys (App empty): they verify EdDSA tokens issued for any
	// app, each naming the API key it was issued for.
	Public ed25519.PublicKey
}

// ParseAPIKey parses an API key "<app>.<keyId>:<secret>". App and key id are
// 1–64 characters of [A-Za-z0-9_-]; the secret is 16–512 bytes of printable
// ASCII other than ',' and space (so that keys can be listed comma-separated
// in configuration). Errors never quote the input, which holds a secret.
func ParseAPIKey(s string) (Key, error) {
	app, rest, ok := strings.Cut(s, ".")
	if !ok {
		return Key{}, errors.New("api key: missing '.' between app and key id (want <app>.<keyId>:<secret>)")
	}
	id, secret, ok := strings.Cut(rest, ":")
	if !ok {
		return Key{}, errors.New("api key: missing ':' between key id and secret (want <app>.<keyId>:<secret>)")
	}
	k := Key{App: app, ID: id, Secret: []byte(secret)}
	if err := k.Validate(); err != nil {
		return Key{}, fmt.Errorf("api key: %w", err)
	}
	return k, nil
}

// Validate checks the key's app, id and secret against the API key syntax
// (see ParseAPIKey).
func (k Key) Validate() error {
	if !validName(k.App) {
		return fmt.Errorf("app name must be 1-%d characters of [A-Za-z0-9_-]", MaxNameBytes)
	}
	if !validName(k.ID) {
		return fmt.Errorf("key id must be 1-%d characters of [A-Za-z0-9_-]", MaxNameBytes)
	}
	if len(k.Secret) < MinSecretBytes || len(k.Secret) > MaxSecretBytes {
		return fmt.Errorf("secret must be %d-%d bytes, got %d", MinSecretBytes, MaxSecretBytes, len(k.Secret))
	}
	for _, c := range k.Secret {
		if c <= ' ' || c > '~' || c == ',' {
			return errors.New("secret must be printable ASCII without spaces or ','")
		}
	}
	return nil
}

// validName reports whether s is 1–MaxNameBytes characters of [A-Za-z0-9_-].
func validName(s string) bool {
	if s == "" || len(s) > MaxNameBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// String returns the full API key "<app>.<keyId>:<secret>", secret
// included. Never log it; fmt verbs and slog print a redacted form instead.
func (k Key) String() string {
	return k.App + "." + k.ID + ":" + string(k.Secret)
}

// redacted is the loggable form of k.
func (k Key) redacted() string {
	return k.App + "." + k.ID + ":<secret " + Fingerprint(string(k.Secret)) + ">"
}

// Format implements fmt.Formatter so that every fmt verb (%v, %+v, %s,
// %#v, ...) prints the key with its secret redacted, even when the key is
// nested in another value.
func (k Key) Format(f fmt.State, _ rune) {
	_, _ = f.Write([]byte(k.redacted()))
}

// LogValue implements slog.LogValuer: the key is logged as app, id and the
// secret's fingerprint.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("app", k.App),
		slog.String("id", k.ID),
		slog.String("secret_fingerprint", Fingerprint(string(k.Secret))),
	)
}

// ParseKeyList parses a comma-separated list of API keys, as found in
// configuration. Spaces around keys and empty entries are ignored, so an
// empty string yields no keys. Key ids must be unique: tokens name their key
// by id alone.
func ParseKeyList(s string) ([]Key, error) {
	var keys []Key
	seen := make(map[string]bool)
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, err := ParseAPIKey(part)
		if err != nil {
			return nil, fmt.Errorf("key list entry %d: %w", i+1, err)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("key list entry %d: duplicate key id %q", i+1, k.ID)
		}
		seen[k.ID] = true
		keys = append(keys, k)
	}
	return keys, nil
}

// Keyring finds the key a token names in its "kid" header. Implementations
// must be safe for concurrent use.
type Keyring interface {
	// Lookup returns the key with id kid, or false if there is none
	// (unknown, revoked or expired).
	Lookup(kid string) (Key, bool)
}

// StaticKeyring is a fixed Keyring indexed by key id, e.g. built from
// configuration. It must not be modified while in use.
type StaticKeyring map[string]Key

// NewStaticKeyring indexes keys by id. When two keys share an id the later
// one wins; use ParseKeyList to reject duplicates in configuration.
func NewStaticKeyring(keys ...Key) StaticKeyring {
	r := make(StaticKeyring, len(keys))
	for _, k := range keys {
		r[k.ID] = k
	}
	return r
}

// Revocations is implemented by keyrings that know which key ids were
// revoked: Verify then reports ErrRevoked instead of ErrUnknownKey for
// them, and gateways close with "forbidden" instead of "invalid token".
type Revocations interface {
	Revoked(kid string) bool
}

// Lookup implements Keyring.
func (r StaticKeyring) Lookup(kid string) (Key, bool) {
	k, ok := r[kid]
	return k, ok
}

// Fingerprint returns the first 12 hex characters of the SHA-256 of secret:
// the only form of a token or secret that may be logged. It identifies a
// credential in logs without revealing it.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:6])
}
