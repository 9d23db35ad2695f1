package authapi

import (
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// Error codes of the end-user endpoints (docs/users-api.md lists them with
// their statuses). Never rename one: SDKs switch on them.
const (
	// CodeInvalidCredentials: wrong email or password, unknown or void
	// code, bad refresh token, blocked user — one answer for all, so an
	// answer never tells which.
	CodeInvalidCredentials protocol.Code = "invalid_credentials"
	// CodeEmailNotVerified: the password was right but the email is not
	// verified yet; a new code was sent.
	CodeEmailNotVerified protocol.Code = "email_not_verified"
	// CodeRefreshReused: a retired refresh token was presented again; the
	// whole session was revoked.
	CodeRefreshReused protocol.Code = "refresh_reused"
	// CodeMFAInvalid: a wrong TOTP or recovery code, or an expired or used
	// mfa_token.
	CodeMFAInvalid protocol.Code = "mfa_invalid"
	// CodeWeakPassword: a password outside 8–256 bytes.
	CodeWeakPassword protocol.Code = "weak_password"
	// CodeSignupDisabled: the app's user policy forbids sign-up or
	// anonymous users.
	CodeSignupDisabled protocol.Code = "signup_disabled"
	// CodeRateLimited: over an abuse limit; the Retry-After header says
	// when to try again.
	CodeRateLimited protocol.Code = "rate_limited"
)

// UserCodes lists the codes the end-user endpoints answer with besides the
// shared ones (bad_request, unauthorized, forbidden, not_found, conflict,
// unavailable, internal).
var UserCodes = []protocol.Code{
	CodeInvalidCredentials, CodeEmailNotVerified, CodeRefreshReused, CodeMFAInvalid,
	CodeWeakPassword, CodeSignupDisabled, CodeRateLimited,
}

// UserPolicy is the body of PUT /admin/v1/apps/{app}/user-policy and the
// answer of GET. Key is an API key of the app: user tokens carry it as
// akid and Caps must be within its capabilities; "{user}" in a room
// pattern becomes the user's id. TTLs are Go durations (empty: 5m and
// 720h).
type UserPolicy struct {
	Key          string             `json:"key"`
	Caps         token.Capabilities `json:"caps"`
	Signup       bool               `json:"signup"`
	Anonymous    bool               `json:"anonymous"`
	AccessTTL    string             `json:"access_ttl,omitempty"`
	RefreshTTL   string             `json:"refresh_ttl,omitempty"`
	MFARequired  bool               `json:"mfa_required"`
	RedirectURIs []string           `json:"redirect_uris,omitempty"`
	UpdatedAt    *time.Time         `json:"updated_at,omitempty"`
}

// MFATOTP is the method name of TOTP in User.MFA and SignInResult.Methods.
// MFATOTPEnroll in Methods means the policy requires a second factor the
// user has not set up: enroll and confirm TOTP with the mfa_token.
const (
	MFATOTP       = "totp"
	MFATOTPEnroll = "totp_enroll"
)

// User is an end user as they see themselves (GET /me) and as sessions
// carry it. The admin view adds Blocked, Online and LastSeenAt.
type User struct {
	ID            string    `json:"id"`
	Email         string    `json:"email,omitempty"`
	EmailVerified bool      `json:"email_verified"`
	Anonymous     bool      `json:"anonymous"`
	MFA           []string  `json:"mfa"`
	CreatedAt     time.Time `json:"created_at"`

	Blocked    *bool      `json:"blocked,omitempty"`
	Online     *bool      `json:"online,omitempty"`
	LastSeenAt *time.Time `json:"last_seen_at,omitempty"`
}

// Users answers GET /admin/v1/apps/{app}/users; Next is the "after" of the
// next page (empty on the last).
type Users struct {
	Users []User `json:"users"`
	Next  string `json:"next,omitempty"`
}

// SignInResult answers every endpoint that signs a user in: a session,
// or, when the user has a second factor, MFARequired with an MFAToken to
// present to /mfa/challenge with a code of one of Methods.
type SignInResult struct {
	User             *User      `json:"user,omitempty"`
	SessionID        string     `json:"session_id,omitempty"`
	AccessToken      string     `json:"access_token,omitempty"`
	AccessExpiresAt  *time.Time `json:"access_expires_at,omitempty"`
	RefreshToken     string     `json:"refresh_token,omitempty"`
	RefreshExpiresAt *time.Time `json:"refresh_expires_at,omitempty"`

	MFARequired bool     `json:"mfa_required,omitempty"`
	MFAToken    string   `json:"mfa_token,omitempty"`
	Methods     []string `json:"methods,omitempty"`
}

// Credentials is the body of /signup, /signin and /upgrade.
type Credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// EmailRequest is the body of /verify/resend, /signin/code and
// /password/reset.
type EmailRequest struct {
	Email string `json:"email"`
}

// CodeRequest is the body of /verify and /signin/code/verify.
type CodeRequest struct {
	Email string `json:"email"`
	Code  string `json:"code"`
}

// ResetConfirm is the body of /password/reset/confirm.
type ResetConfirm struct {
	Email    string `json:"email"`
	Code     string `json:"code"`
	Password string `json:"password"`
}

// MFAChallenge is the body of /mfa/challenge: the mfa_token and either a
// TOTP code or a recovery code.
type MFAChallenge struct {
	MFAToken     string `json:"mfa_token"`
	Code         string `json:"code,omitempty"`
	RecoveryCode string `json:"recovery_code,omitempty"`
}

// RefreshRequest is the body of /refresh (and optionally /signout).
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// Accepted answers the endpoints that send mail: always the same,
// whatever the email.
type Accepted struct {
	Status string `json:"status"`
}

// StatusVerificationSent and StatusSent are Accepted's statuses.
const (
	StatusVerificationSent = "verification_sent"
	StatusSent             = "sent"
)

// SessionInfo is one of a user's sessions (GET /sessions).
type SessionInfo struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	UserAgent  string    `json:"user_agent"`
	IP         string    `json:"ip"`
	Current    bool      `json:"current"`
}

// Sessions answers GET /sessions.
type Sessions struct {
	Sessions []SessionInfo `json:"sessions"`
}

// TOTPEnrollment answers /mfa/totp/enroll. QRPNG is the otpauth URI as a
// PNG QR code (base64 in JSON).
type TOTPEnrollment struct {
	Secret     string `json:"secret"`
	OTPAuthURI string `json:"otpauth_uri"`
	QRPNG      []byte `json:"qr_png"`
}

// TOTPEnroll is the optional body of /mfa/totp/enroll: without a bearer,
// the mfa_token of a sign-in that answered methods ["totp_enroll"].
type TOTPEnroll struct {
	MFAToken string `json:"mfa_token,omitempty"`
}

// TOTPCode is the body of /mfa/totp/confirm and /mfa/totp/disable;
// MFAToken replaces the bearer as in TOTPEnroll (confirm only).
type TOTPCode struct {
	Code     string `json:"code"`
	MFAToken string `json:"mfa_token,omitempty"`
}

// RecoveryCodes answers /mfa/totp/confirm: shown once. Session is the
// session a confirmation with an mfa_token signs in.
type RecoveryCodes struct {
	RecoveryCodes []string      `json:"recovery_codes"`
	Session       *SignInResult `json:"session,omitempty"`
}

// OAuthExchange is the body of POST /oauth/exchange.
type OAuthExchange struct {
	LoginCode string `json:"login_code"`
}

// UsersPath is the prefix of an app's end-user endpoints.
func UsersPath(app string) string { return "/v1/apps/" + app + "/auth" }
