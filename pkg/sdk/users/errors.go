package users

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// Error codes the end-user endpoints answer with (docs/users-api.md "Error
// codes", plus the shared ones the auth service uses everywhere), as
// strings: the codes of pkg/auth/authapi and pkg/protocol. Switch on
// Error.Code, never on Message.
const (
	CodeInvalidCredentials = string(authapi.CodeInvalidCredentials) // 401: wrong email/password/code, bad refresh token, blocked user
	CodeEmailNotVerified   = string(authapi.CodeEmailNotVerified)   // 403: correct password, email not verified (a new code was sent)
	CodeRefreshReused      = string(authapi.CodeRefreshReused)      // 401: a retired refresh token was presented; the session is revoked
	CodeMFAInvalid         = string(authapi.CodeMFAInvalid)         // 401: wrong TOTP or recovery code, or expired mfa_token
	CodeWeakPassword       = string(authapi.CodeWeakPassword)       // 400: password outside 8–256 bytes
	CodeSignupDisabled     = string(authapi.CodeSignupDisabled)     // 403: the app's policy forbids sign-up or anonymous users
	CodeOAuthFailed        = string(authapi.CodeOAuthFailed)        // 400: bad or replayed state or login code, nonce mismatch
	CodeRateLimited        = string(authapi.CodeRateLimited)        // 429: over an abuse limit; see Error.RetryAfter
	CodeConflict           = string(authapi.CodeConflict)           // 409: not possible in the user's current state
	CodeBadRequest         = string(protocol.CodeBadRequest)        // 400: malformed request
	CodeUnauthorized       = string(protocol.CodeUnauthorized)      // 401: missing bearer token
	CodeForbidden          = string(protocol.CodeForbidden)         // 403: e.g. the policy's API key is revoked
	CodeNotFound           = string(protocol.CodeNotFound)          // 404: e.g. the app has no user policy
	CodeUnavailable        = string(protocol.CodeUnavailable)       // 503: try again later
)

// Error is a failure the auth service answered: the HTTP status, the
// stable code to switch on (Code* constants), and a message for humans.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter is the server's Retry-After (rate_limited), zero if none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("users: %d %s: %s", e.Status, e.Code, e.Message)
}

// Temporary reports whether repeating the call later may succeed.
func (e *Error) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// HasCode reports whether err is (or wraps) an *Error with that code.
func HasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// ErrSessionEnded is what a Session answers once it can no longer give
// tokens: it was signed out or revoked, its refresh token was refused
// (invalid_credentials: revoked, expired, blocked user) or reused
// (refresh_reused: someone else presented it, so the server revoked the
// whole session). Errors that end a session wrap it and, when the server
// said why, the *Error too. The user must sign in again.
var ErrSessionEnded = errors.New("users: session ended")

// ErrSignedOut is why a session ended after SignOut (or RevokeSession of
// itself); it wraps ErrSessionEnded.
var ErrSignedOut = fmt.Errorf("%w: signed out", ErrSessionEnded)
