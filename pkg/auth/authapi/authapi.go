// Package authapi holds the wire types of the auth service's HTTP API
// (services/auth) and its error codes, so that the service, the CLI, the
// REST SDK and the gateway agree on them. docs/auth-api.md and
// docs/auth-openapi.yaml describe the endpoints.
package authapi

import (
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// Error codes of the auth service. The service answers with the shared
// ones of pkg/protocol (bad_request, unauthorized, forbidden, not_found,
// unavailable, internal) and these two of its own. docs/auth-api.md lists
// them all; never rename one.
const (
	// CodeConflict: the app or key already exists.
	CodeConflict protocol.Code = "conflict"
	// CodeCapabilityExceeded: a token asked for capabilities wider than the
	// API key that requested it allows.
	CodeCapabilityExceeded protocol.Code = "capability_exceeded"
)

// Codes lists every code of the apps, keys and tokens API (docs/auth-api.md).
// The end-user endpoints also answer with UserCodes (users.go) and
// CodeOAuthFailed (oauth.go), listed in docs/users-api.md.
var Codes = []protocol.Code{
	protocol.CodeBadRequest, protocol.CodeUnauthorized, protocol.CodeForbidden, protocol.CodeNotFound,
	CodeConflict, CodeCapabilityExceeded, protocol.CodeUnavailable, protocol.CodeInternal,
}

// Error is the body of every error response: the same shape as the
// gateway's.
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is a stable code and a human-readable message.
type ErrorBody struct {
	Code    protocol.Code `json:"code"`
	Message string        `json:"message"`
}

// App is an application: the namespace of rooms, keys and users.
type App struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateApp is the body of POST /admin/v1/apps. ID follows the API key
// syntax for app names: 1–64 characters of [A-Za-z0-9_-].
type CreateApp struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Apps answers GET /admin/v1/apps.
type Apps struct {
	Apps []App `json:"apps"`
}

// Key describes an API key. APIKey, the full "<app>.<keyId>:<secret>", is
// present only in the answer that created it (create and rotate): the
// secret is shown once.
type Key struct {
	App       string             `json:"app"`
	ID        string             `json:"id"`
	Name      string             `json:"name"`
	Caps      token.Capabilities `json:"caps"`
	CreatedAt time.Time          `json:"created_at"`
	ExpiresAt *time.Time         `json:"expires_at,omitempty"`
	RevokedAt *time.Time         `json:"revoked_at,omitempty"`
	APIKey    string             `json:"api_key,omitempty"`
}

// CreateKey is the body of POST /admin/v1/apps/{app}/keys.
type CreateKey struct {
	Name string             `json:"name,omitempty"`
	Caps token.Capabilities `json:"caps"`
}

// RotateKey is the body of POST /admin/v1/apps/{app}/keys/{key}/rotate:
// a new key with the same name and capabilities replaces the old one,
// which keeps working for Grace (a Go duration, e.g. "1h"; empty or "0s":
// it stops at once, like a revocation).
type RotateKey struct {
	Grace string `json:"grace,omitempty"`
}

// Keys answers GET /admin/v1/apps/{app}/keys.
type Keys struct {
	Keys []Key `json:"keys"`
}

// TokenRequest is the body of POST /v1/tokens. TTL is a Go duration
// ("15m"); empty means the service's default.
type TokenRequest struct {
	ClientID string             `json:"client_id"`
	Caps     token.Capabilities `json:"caps"`
	TTL      string             `json:"ttl,omitempty"`
}

// TokenResponse carries an EdDSA token signed by the auth service.
type TokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	KeyID     string    `json:"kid"`
}

// SigningKey describes one of the service's Ed25519 token-signing keys.
// RetireAt is when it leaves the JWKS (absent: the active key).
type SigningKey struct {
	ID        string     `json:"id"`
	CreatedAt time.Time  `json:"created_at"`
	RetireAt  *time.Time `json:"retire_at,omitempty"`
	Active    bool       `json:"active"`
}

// SigningKeys answers GET /admin/v1/signing-keys.
type SigningKeys struct {
	Keys []SigningKey `json:"keys"`
}

// RotateSigningKey is the body of POST /admin/v1/signing-keys/rotate. The
// previous keys stay in the JWKS for Overlap (a Go duration; empty: the
// service's AUTH_SIGNING_KEY_OVERLAP), so tokens they signed keep verifying
// until they expire. "0s" retires them at once (a compromised key).
type RotateSigningKey struct {
	Overlap string `json:"overlap,omitempty"`
}

// KeySet answers the gateways' GET /internal/v1/keys: every API key with
// what a gateway needs to verify HS256 tokens and enforce capabilities.
// Revoked (and expired) keys are listed without a secret, so gateways can
// refuse them with the "forbidden" close code and close their connections.
type KeySet struct {
	Version int64         `json:"version"`
	Keys    []InternalKey `json:"keys"`
}

// InternalKey is one API key as gateways see it. Secret is the key's
// HMAC secret, in clear: the endpoint is for gateways only.
type InternalKey struct {
	App       string             `json:"app"`
	ID        string             `json:"id"`
	Secret    string             `json:"secret,omitempty"`
	Caps      token.Capabilities `json:"caps"`
	ExpiresAt *time.Time         `json:"expires_at,omitempty"`
	Revoked   bool               `json:"revoked,omitempty"`
}

// NotifyChannel is the Redis pub/sub channel on which the auth service
// announces that API keys or signing keys changed (the message is the new
// key-set version); gateways refetch at once. prefix is
// ROOMCAST_REDIS_PREFIX.
func NotifyChannel(prefix string) string { return prefix + "auth:keys" }

// Endpoint paths.
const (
	PathTokens       = "/v1/tokens"
	PathJWKS         = "/.well-known/jwks.json"
	PathInternalKeys = "/internal/v1/keys"
)
