package users

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error codes the end-user endpoints answer with (docs/users-api.md "Error
// codes", plus the shared ones the auth service uses everywhere). Switch on
// Error.Code, never on Message.
const (
	CodeInvalidCredentials = "invalid_credentials" // 401: wrong email/password/code, bad refresh token, blocked user
	CodeEmailNotVerified   = "email_not_verified"  // 403: correct password, email not verified (a new code was sent)
	CodeRefreshReused      = "refresh_reused"      // 401: a retired refresh token was presented; the session is revoked
	CodeMFAInvalid         = "mfa_invalid"         // 401: wrong TOTP or recovery code, or expired mfa_token
	CodeWeakPassword       = "weak_password"       // 400: password outside 8–256 bytes
	CodeSignupDisabled     = "signup_disabled"     // 403: the app's policy forbids sign-up or anonymous users
	CodeOAuthFailed        = "oauth_failed"        // 400: bad or replayed state, nonce mismatch, code refused
	CodeRateLimited        = "rate_limited"        // 429: over an abuse limit; see Error.RetryAfter
	CodeBadRequest         = "bad_request"         // 400: malformed request
	CodeUnauthorized       = "unauthorized"        // 401: missing or invalid bearer token
	CodeForbidden          = "forbidden"           // 403
	CodeNotFound           = "not_found"           // 404: e.g. the app has no user policy
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
