// Package users is the Go SDK for an app's end users (docs/users-api.md):
// sign-up and email verification, sign-in with a password or an emailed
// code, TOTP multi-factor, password reset, anonymous users and their
// upgrade, OAuth/OIDC sign-in, and sessions whose short-lived access token
// refreshes itself and plugs into the realtime client.
//
//	uc, _ := users.New(users.Config{AuthURL: "https://auth.example.com", App: "shop"})
//	_ = uc.SignUp(ctx, "ada@example.com", "correct horse battery")
//	s, _, _ := uc.Verify(ctx, "ada@example.com", "123456") // the code from the mail
//	rt, _ := client.Dial(ctx, client.Config{URL: "wss://rt.example.com/v1/connect", TokenProvider: s.TokenProvider()})
//	// the gateway's client id is s.User().ID; s refreshes its access token before it expires
//	_ = s.SignOut(ctx)
//
// Sign-in calls return a *Session, or, when the user has a second factor, an
// *MFAChallenge to answer with ChallengeMFA or ChallengeMFARecovery (or,
// when the app requires a second factor the user has not set up, with
// EnrollMFA and ConfirmMFAEnrollment).
// Failures the server answered are *Error with a stable Code.
//
// Nothing is retried by the SDK: these calls send secrets and mail, and
// the server rate-limits them (rate_limited, Error.RetryAfter).
package users

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
)

// Config configures a Client.
type Config struct {
	// AuthURL is the auth service's base URL, e.g. http://localhost:8081.
	// Required.
	AuthURL string
	// App is the app whose users these are. Required.
	App string
	// HTTPClient defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
	// UserAgent is sent with every request (the server shows it in the
	// session list). Zero: "roomcast-go-users".
	UserAgent string
	// OnTokens is told a session's tokens after every sign-in and refresh,
	// and once more with an empty RefreshToken when the session has ended,
	// so an app can keep the refresh token (a file, a keychain) and bring
	// the session back with Resume. It runs before the call that got the
	// tokens returns; keep it quick. Zero: not told.
	OnTokens func(Tokens)
}

// Client calls one app's end-user endpoints. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base string           // AuthURL + /v1/apps/{app}/auth
	now  func() time.Time // the clock tokens are timed by (tests move it)
}

// New creates a Client.
func New(cfg Config) (*Client, error) {
	if cfg.AuthURL == "" {
		return nil, errors.New("users: Config.AuthURL is required")
	}
	if cfg.App == "" {
		return nil, errors.New("users: Config.App is required")
	}
	if _, err := url.Parse(cfg.AuthURL); err != nil {
		return nil, fmt.Errorf("users: Config.AuthURL: %w", err)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "roomcast-go-users"
	}
	base := strings.TrimRight(cfg.AuthURL, "/") + authapi.UsersPath(url.PathEscape(cfg.App))
	return &Client{cfg: cfg, base: base, now: time.Now}, nil
}

// User is an end user of the app. ID ("u" + 20 base32 characters) is the
// client id at the gateway; MFA lists second factors (authapi.MFATOTP).
// The admin-only fields (Blocked, Online, LastSeenAt) are nil here.
type User = authapi.User

// MFAChallenge is the answer to a correct first factor when a second one
// is needed: answer it with ChallengeMFA or ChallengeMFARecovery, or, when
// NeedsEnrollment (the app requires a second factor the user has not set
// up), with EnrollMFA and ConfirmMFAEnrollment.
type MFAChallenge struct {
	Token   string   // the mfa_token; short-lived
	Methods []string // MethodTOTP or MethodTOTPEnroll
}

// Methods of an MFAChallenge.
const (
	MethodTOTP       = authapi.MFATOTP       // answer with a TOTP or recovery code
	MethodTOTPEnroll = authapi.MFATOTPEnroll // set up TOTP first (EnrollMFA)
)

// NeedsEnrollment reports whether the user must set up TOTP to finish
// signing in (the app's policy requires a second factor).
func (ch *MFAChallenge) NeedsEnrollment() bool {
	return slices.Contains(ch.Methods, MethodTOTPEnroll)
}

// SessionInfo is one of the user's sessions (Session.Sessions); Current
// marks the session that asked.
type SessionInfo = authapi.SessionInfo

// TOTPEnrollment is a new TOTP secret to show the user (QRPNG is a PNG of
// OTPAuthURI's QR code); ConfirmTOTP with a code from their authenticator
// turns it on.
type TOTPEnrollment = authapi.TOTPEnrollment

// SignUp creates a user with email and password and mails a verification
// code (Verify). The answer is the same for an existing email (which gets
// a "you already have an account" mail instead).
func (c *Client) SignUp(ctx context.Context, email, password string) error {
	return c.call(ctx, http.MethodPost, "/signup", "", authapi.Credentials{Email: email, Password: password}, nil)
}

// Verify checks the emailed verification code: the email is verified and
// the user signed in (or challenged, when the app requires a second
// factor). After Session.Upgrade it turns the anonymous user into a normal
// one (same user id).
func (c *Client) Verify(ctx context.Context, email, code string) (*Session, *MFAChallenge, error) {
	return c.signIn(ctx, "/verify", authapi.CodeRequest{Email: email, Code: code})
}

// ResendVerification mails a new verification code (replacing the last).
func (c *Client) ResendVerification(ctx context.Context, email string) error {
	return c.call(ctx, http.MethodPost, "/verify/resend", "", authapi.EmailRequest{Email: email}, nil)
}

// SignIn signs in with email and password: a session, or a challenge when
// the user has a second factor. A wrong password, an unknown email and a
// blocked user all fail with invalid_credentials; email_not_verified comes
// only after a correct password (and a new code was mailed).
func (c *Client) SignIn(ctx context.Context, email, password string) (*Session, *MFAChallenge, error) {
	return c.signIn(ctx, "/signin", authapi.Credentials{Email: email, Password: password})
}

// SignInCode mails a one-time sign-in code if the account exists (the
// answer does not say).
func (c *Client) SignInCode(ctx context.Context, email string) error {
	return c.call(ctx, http.MethodPost, "/signin/code", "", authapi.EmailRequest{Email: email}, nil)
}

// VerifySignInCode signs in with the mailed code.
func (c *Client) VerifySignInCode(ctx context.Context, email, code string) (*Session, *MFAChallenge, error) {
	return c.signIn(ctx, "/signin/code/verify", authapi.CodeRequest{Email: email, Code: code})
}

// ChallengeMFA completes a sign-in with a TOTP code (mfa_invalid if wrong).
func (c *Client) ChallengeMFA(ctx context.Context, ch *MFAChallenge, code string) (*Session, error) {
	return c.sessionOnly(ctx, "/mfa/challenge", authapi.MFAChallenge{MFAToken: ch.Token, Code: code})
}

// ChallengeMFARecovery completes a sign-in with one of the user's recovery
// codes (each works once).
func (c *Client) ChallengeMFARecovery(ctx context.Context, ch *MFAChallenge, recoveryCode string) (*Session, error) {
	return c.sessionOnly(ctx, "/mfa/challenge", authapi.MFAChallenge{MFAToken: ch.Token, RecoveryCode: recoveryCode})
}

// EnrollMFA starts TOTP enrollment for a sign-in whose challenge
// NeedsEnrollment: show the QR code (or secret), then
// ConfirmMFAEnrollment with a code from the authenticator.
func (c *Client) EnrollMFA(ctx context.Context, ch *MFAChallenge) (TOTPEnrollment, error) {
	var e TOTPEnrollment
	err := c.call(ctx, http.MethodPost, "/mfa/totp/enroll", "", authapi.TOTPEnroll{MFAToken: ch.Token}, &e)
	return e, err
}

// ConfirmMFAEnrollment turns TOTP on with a current code and finishes the
// sign-in: the session, and the ten recovery codes (shown once).
func (c *Client) ConfirmMFAEnrollment(ctx context.Context, ch *MFAChallenge, code string) (*Session, []string, error) {
	var out authapi.RecoveryCodes
	if err := c.call(ctx, http.MethodPost, "/mfa/totp/confirm", "", authapi.TOTPCode{Code: code, MFAToken: ch.Token}, &out); err != nil {
		return nil, nil, err
	}
	if out.Session == nil {
		return nil, nil, errors.New("users: /mfa/totp/confirm: answer has no session")
	}
	if err := checkSession(out.Session); err != nil {
		return nil, nil, fmt.Errorf("users: /mfa/totp/confirm: %w", err)
	}
	return c.newSession(out.Session), out.RecoveryCodes, nil
}

// ResetPassword mails a password-reset code if the account exists (the
// answer does not say).
func (c *Client) ResetPassword(ctx context.Context, email string) error {
	return c.call(ctx, http.MethodPost, "/password/reset", "", authapi.EmailRequest{Email: email}, nil)
}

// ConfirmPasswordReset sets a new password with the mailed code and signs
// in (or challenges, when the user has a second factor: a reset does not
// bypass it); every other session of the user is revoked.
func (c *Client) ConfirmPasswordReset(ctx context.Context, email, code, newPassword string) (*Session, *MFAChallenge, error) {
	return c.signIn(ctx, "/password/reset/confirm", authapi.ResetConfirm{Email: email, Code: code, Password: newPassword})
}

// Anonymous signs in a new anonymous user (if the app's policy allows:
// signup_disabled otherwise). Session.Upgrade gives it an email later.
func (c *Client) Anonymous(ctx context.Context) (*Session, error) {
	return c.sessionOnly(ctx, "/anonymous", struct{}{})
}

// Resume brings back a session from a refresh token kept by the app (see
// Config.OnTokens): it refreshes at once, so the token given is retired.
func (c *Client) Resume(ctx context.Context, refreshToken string) (*Session, error) {
	var w authapi.SignInResult
	if err := c.call(ctx, http.MethodPost, "/refresh", "", authapi.RefreshRequest{RefreshToken: refreshToken}, &w); err != nil {
		return nil, err
	}
	if err := checkSession(&w); err != nil {
		return nil, fmt.Errorf("users: /refresh: %w", err)
	}
	return c.newSession(&w), nil
}

// OAuthStartURL is where to send the user's browser to sign in with an
// OAuth/OIDC provider configured for the app. The auth service redirects
// back to redirectURI (one of the policy's redirect_uris) with
// ?login_code=… for Exchange, or ?error=….
func (c *Client) OAuthStartURL(provider, redirectURI string) string {
	return c.base + "/oauth/" + url.PathEscape(provider) + "/start?" + url.Values{"redirect_uri": {redirectURI}}.Encode()
}

// Exchange redeems the login_code the OAuth callback redirected with (one
// use, 60 s) for a session, or a challenge when the user has a second
// factor.
func (c *Client) Exchange(ctx context.Context, loginCode string) (*Session, *MFAChallenge, error) {
	return c.signIn(ctx, "/oauth/exchange", authapi.OAuthExchange{LoginCode: loginCode})
}

// signIn posts to a sign-in endpoint, whose answer is a session or an MFA
// challenge.
func (c *Client) signIn(ctx context.Context, path string, body any) (*Session, *MFAChallenge, error) {
	var w authapi.SignInResult
	if err := c.call(ctx, http.MethodPost, path, "", body, &w); err != nil {
		return nil, nil, err
	}
	if w.MFARequired {
		return nil, &MFAChallenge{Token: w.MFAToken, Methods: w.Methods}, nil
	}
	if err := checkSession(&w); err != nil {
		return nil, nil, fmt.Errorf("users: %s: %w", path, err)
	}
	return c.newSession(&w), nil, nil
}

// checkSession reports an answer that is neither a session nor the MFA
// answer.
func checkSession(w *authapi.SignInResult) error {
	if w.User == nil || w.AccessToken == "" || w.RefreshToken == "" || w.AccessExpiresAt == nil {
		return errors.New("answer has neither a session nor an MFA challenge")
	}
	return nil
}

// sessionOnly posts to an endpoint that answers with a session.
func (c *Client) sessionOnly(ctx context.Context, path string, body any) (*Session, error) {
	s, ch, err := c.signIn(ctx, path, body)
	if err == nil && ch != nil {
		return nil, fmt.Errorf("users: %s: unexpected MFA challenge", path)
	}
	return s, err
}

// call sends one request (body as JSON unless nil; bearer unless empty) to
// the app's auth base + path and decodes a 2xx answer into out (if not
// nil). Failures the server answered are *Error.
func (c *Client) call(ctx context.Context, method, path, bearer string, body, out any) error {
	var rd io.Reader
	if body != nil {
		payload, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("users: encode request: %w", err)
		}
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("users: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("users: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answerError(resp, raw)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("users: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// answerError turns a failed answer into *Error.
func answerError(resp *http.Response, raw []byte) *Error {
	e := &Error{Status: resp.StatusCode, Code: "unknown", Message: http.StatusText(resp.StatusCode)}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}
