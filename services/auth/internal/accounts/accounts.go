// Package accounts is the logic of end-user accounts (docs/users-api.md):
// sign-up and email verification, password and email-code sign-in,
// password reset, anonymous users and their upgrade, TOTP as a second
// factor, sessions made of a short-lived access token and a rotating
// refresh token with reuse detection, and the admin operations. The HTTP
// layer (internal/api) only decodes requests and maps errors.
//
// No enumeration: every endpoint that takes an email answers the same
// for an unknown and a known one, does the same expensive work (a
// password hash) and sends mail asynchronously, so neither the answer nor
// its timing tells whether an account exists.
package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/seal"
	"github.com/roomcast/roomcast/services/auth/internal/abuse"
	"github.com/roomcast/roomcast/services/auth/internal/mail"
	"github.com/roomcast/roomcast/services/auth/internal/password"
	"github.com/roomcast/roomcast/services/auth/internal/store"
)

// Errors the API maps to its codes (docs/users-api.md).
var (
	ErrNoPolicy           = errors.New("accounts: the app has no user policy")
	ErrInvalidCredentials = errors.New("accounts: invalid credentials")
	ErrEmailNotVerified   = errors.New("accounts: email not verified")
	ErrRefreshReused      = errors.New("accounts: refresh token reused")
	ErrMFAInvalid         = errors.New("accounts: invalid second factor")
	ErrWeakPassword       = errors.New("accounts: password must be 8-256 bytes")
	ErrSignupDisabled     = errors.New("accounts: sign-up disabled by the app's policy")
	ErrBadEmail           = errors.New("accounts: not a valid email address")
	// ErrKeyUnavailable: the policy's API key is revoked or expired, or no
	// longer covers the policy's capabilities; no user token can be issued.
	ErrKeyUnavailable = errors.New("accounts: the user policy's API key is revoked or too narrow")
	// ErrConflict: the operation does not fit the user's state (TOTP
	// already on, upgrade of a user that is not anonymous).
	ErrConflict = errors.New("accounts: not possible in the user's current state")
	// ErrNotFound: no such user or session (admin and bearer endpoints).
	ErrNotFound = errors.New("accounts: not found")
	// ErrBadPolicy: a policy's caps exceed its key's, or a TTL is out of
	// range.
	ErrBadPolicy = errors.New("accounts: invalid user policy")
)

// Limits are the abuse limits (AUTH_USER_LIMIT_*).
type Limits struct {
	SignInAccount abuse.Rate // sign-in attempts per email
	SignInIP      abuse.Rate // sign-in attempts per IP
	CodeAccount   abuse.Rate // code checks (email codes, TOTP, recovery) per account
	CodeIP        abuse.Rate // code checks per IP
	MailAccount   abuse.Rate // mails per email
	MailIP        abuse.Rate // mail-sending requests per IP
	SignupIP      abuse.Rate // sign-ups and anonymous users per IP
	RefreshIP     abuse.Rate // refreshes per IP
}

// Config tunes the service.
type Config struct {
	// CodeTTL and CodeAttempts bound email codes.
	CodeTTL      time.Duration
	CodeAttempts int
	// MFATokenTTL is how long an mfa_token waits for its second factor.
	MFATokenTTL time.Duration
	// MailLink is the template of the link mails carry ({app},
	// {purpose}, {email}, {code} are replaced, URL-escaped); empty: none.
	MailLink string
	Limits   Limits
	// Prefix is the cluster's Redis prefix (mfa tokens, limits).
	Prefix string
}

// Service implements the accounts logic.
type Service struct {
	st     *store.Store
	rdb    redis.UniversalClient
	lim    *abuse.Limiter
	mail   mail.Sender
	sealer *seal.Sealer
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	// passwordChecks counts argon2id checks, real and dummy: tests use it
	// to show that an unknown email costs what a wrong password costs.
	passwordChecks atomic.Int64
}

// New creates a Service. mailer should not block (mail.Async).
func New(st *store.Store, rdb redis.UniversalClient, sealer *seal.Sealer, mailer mail.Sender, cfg Config, log *slog.Logger) *Service {
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = 10 * time.Minute
	}
	if cfg.CodeAttempts <= 0 {
		cfg.CodeAttempts = 5
	}
	if cfg.MFATokenTTL <= 0 {
		cfg.MFATokenTTL = 5 * time.Minute
	}
	return &Service{st: st, rdb: rdb, lim: abuse.New(rdb, cfg.Prefix), mail: mailer, sealer: sealer, cfg: cfg, log: log, now: time.Now}
}

// Client is who is asking: counted by the IP limits and recorded on
// sessions.
type Client struct {
	IP        string
	UserAgent string
}

// Result is what signing in produces: a session, or the need for a
// second factor.
type Result = authapi.SignInResult

// Principal is the user and session behind a bearer access token.
type Principal struct {
	App       string
	User      store.User
	SessionID string
}

func (s *Service) policy(ctx context.Context, app string) (store.UserPolicy, error) {
	p, err := s.st.GetUserPolicy(ctx, app)
	if errors.Is(err, store.ErrNotFound) {
		return store.UserPolicy{}, ErrNoPolicy
	}
	return p, err
}

// normEmail trims an email and checks it looks like one; the limit key is
// its lower case.
func normEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	at := strings.LastIndexByte(email, '@')
	if at < 1 || at == len(email)-1 || len(email) > 254 || !utf8.ValidString(email) ||
		strings.ContainsFunc(email, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", ErrBadEmail
	}
	return email, nil
}

func acct(email string) string { return strings.ToLower(email) }

// limit names (part of the Redis keys).
func (s *Service) signinChecks(email string, c Client) []abuse.Check {
	return []abuse.Check{
		{Name: "signin_account", Rate: s.cfg.Limits.SignInAccount, Key: acct(email)},
		{Name: "signin_ip", Rate: s.cfg.Limits.SignInIP, Key: c.IP},
	}
}

func (s *Service) codeChecks(account string, c Client) []abuse.Check {
	return []abuse.Check{
		{Name: "code_account", Rate: s.cfg.Limits.CodeAccount, Key: account},
		{Name: "code_ip", Rate: s.cfg.Limits.CodeIP, Key: c.IP},
	}
}

func (s *Service) mailChecks(email string, c Client) []abuse.Check {
	return []abuse.Check{
		{Name: "mail_account", Rate: s.cfg.Limits.MailAccount, Key: acct(email)},
		{Name: "mail_ip", Rate: s.cfg.Limits.MailIP, Key: c.IP},
	}
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID is prefix + 20 base32 characters (100 random bits).
func newID(prefix string) string {
	var b [13]byte
	_, _ = rand.Read(b[:])
	return prefix + idEncoding.EncodeToString(b[:])[:20]
}

// IsUserID reports whether s looks like a user id ("u" + 20 base32
// characters).
func IsUserID(s string) bool {
	if len(s) != 21 || s[0] != 'u' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// newCode returns a 6-digit code, uniform over 000000–999999.
func newCode() string {
	for {
		var b [4]byte
		_, _ = rand.Read(b[:])
		n := binary.BigEndian.Uint32(b[:])
		if n < 4_294_000_000 { // 4294 * 10^6: no modulo bias
			return fmt.Sprintf("%06d", n%1_000_000)
		}
	}
}

// codeHash binds a code to its user and purpose, so a stored hash says
// nothing on its own.
func codeHash(userID, purpose, code string) []byte {
	sum := sha256.Sum256([]byte(userID + "\x00" + purpose + "\x00" + strings.TrimSpace(code)))
	return sum[:]
}

func tokenHash(tok string) []byte {
	sum := sha256.Sum256([]byte(tok))
	return sum[:]
}

// newSecretToken is prefix + 256 random bits in base64url.
func newSecretToken(prefix string) string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// sendCode stores a new code for user and purpose and mails it to email.
func (s *Service) sendCode(ctx context.Context, app string, u store.User, email, purpose string, kind mail.Kind) error {
	code := newCode()
	if err := s.st.PutCode(ctx, u.ID, purpose, codeHash(u.ID, purpose, code), s.cfg.CodeTTL); err != nil {
		return err
	}
	_ = s.mail.Send(ctx, mail.Message{App: app, To: email, Kind: kind, Code: code, Link: s.link(app, purpose, email, code)})
	return nil
}

func (s *Service) link(app, purpose, email, code string) string {
	if s.cfg.MailLink == "" {
		return ""
	}
	return strings.NewReplacer("{app}", url.QueryEscape(app), "{purpose}", purpose,
		"{email}", url.QueryEscape(email), "{code}", code).Replace(s.cfg.MailLink)
}

// checkCode consumes user's code of purpose. The caller has applied the
// code limits.
func (s *Service) checkCode(ctx context.Context, u store.User, purpose, code string) (bool, error) {
	return s.st.UseCode(ctx, u.ID, purpose, codeHash(u.ID, purpose, code), s.cfg.CodeAttempts)
}

// missingCode spends the time of a code check for an unknown account.
func missingCode(code string) {
	seal.Equal(make([]byte, 32), []byte(code))
}

// userView is the user as its owner sees it.
func userView(u store.User) *authapi.User {
	v := &authapi.User{ID: u.ID, Email: u.Email, EmailVerified: u.EmailVerified, Anonymous: u.Anonymous,
		MFA: []string{}, CreatedAt: u.CreatedAt.UTC()}
	if u.TOTPConfirmedAt != nil {
		v.MFA = append(v.MFA, authapi.MFATOTP)
	}
	return v
}

// UserCaps substitutes the user's id for "{user}" in the policy's room
// patterns.
func UserCaps(caps token.Capabilities, userID string) token.Capabilities {
	out := make(token.Capabilities, len(caps))
	for pattern, ops := range caps {
		out[strings.ReplaceAll(pattern, "{user}", userID)] = ops
	}
	return out
}

// jti reads the "jti" claim of a token this service just minted.
func jti(tok string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", errors.New("accounts: minted token is not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var c struct {
		ID string `json:"jti"`
	}
	if err := json.Unmarshal(raw, &c); err != nil || c.ID == "" {
		return "", errors.New("accounts: minted token has no jti")
	}
	return c.ID, nil
}

// usableKey returns the policy's key if it can issue u's tokens.
func (s *Service) usableKey(ctx context.Context, p store.UserPolicy, u store.User) (authapi.Key, token.Capabilities, error) {
	key, err := s.st.GetKey(ctx, p.App, p.KeyID)
	if errors.Is(err, store.ErrNotFound) {
		return authapi.Key{}, nil, ErrKeyUnavailable
	}
	if err != nil {
		return authapi.Key{}, nil, err
	}
	if key.RevokedAt != nil || (key.ExpiresAt != nil && !key.ExpiresAt.After(s.now())) {
		return authapi.Key{}, nil, ErrKeyUnavailable
	}
	caps := UserCaps(p.Caps, u.ID)
	if !caps.Within(key.Caps) {
		return authapi.Key{}, nil, ErrKeyUnavailable
	}
	return key, caps, nil
}

// mint issues an access token for user in session.
func (s *Service) mint(ctx context.Context, p store.UserPolicy, u store.User, sessionID string) (string, time.Time, error) {
	key, caps, err := s.usableKey(ctx, p, u)
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.now()
	sk, err := s.st.ActiveSigningKey(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	tok, err := token.MintEdDSA(sk, token.Key{App: p.App, ID: key.ID}, u.ID, caps, p.AccessTTL, now)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("accounts: mint: %w", err)
	}
	id, err := jti(tok)
	if err != nil {
		return "", time.Time{}, err
	}
	exp := now.Add(p.AccessTTL).Truncate(time.Second).UTC()
	if err := s.st.RecordAccessToken(ctx, id, sessionID, exp.Add(token.DefaultLeeway)); err != nil {
		return "", time.Time{}, err
	}
	return tok, exp, nil
}

// newSession starts a session for u and mints its first tokens.
func (s *Service) newSession(ctx context.Context, p store.UserPolicy, u store.User, c Client) (Result, error) {
	// No session without a key to issue its tokens: it would be a row
	// nobody holds a token of.
	if _, _, err := s.usableKey(ctx, p, u); err != nil {
		return Result{}, err
	}
	refresh := newSecretToken("rt_")
	se, err := s.st.CreateSession(ctx, store.Session{
		ID: newID("s"), App: p.App, UserID: u.ID, RefreshExpiresAt: s.now().Add(p.RefreshTTL).Truncate(time.Second),
		UserAgent: truncate(c.UserAgent, 256), IP: c.IP,
	}, tokenHash(refresh))
	if err != nil {
		return Result{}, err
	}
	return s.result(ctx, p, u, se, refresh)
}

func (s *Service) result(ctx context.Context, p store.UserPolicy, u store.User, se store.Session, refresh string) (Result, error) {
	access, exp, err := s.mint(ctx, p, u, se.ID)
	if err != nil {
		return Result{}, err
	}
	rexp := se.RefreshExpiresAt.UTC()
	return Result{User: userView(u), SessionID: se.ID, AccessToken: access, AccessExpiresAt: &exp,
		RefreshToken: refresh, RefreshExpiresAt: &rexp}, nil
}

// signedIn finishes a first factor: a session, or an mfa_token when the
// user has TOTP on.
func (s *Service) signedIn(ctx context.Context, p store.UserPolicy, u store.User, c Client) (Result, error) {
	if u.TOTPConfirmedAt != nil || p.MFARequired {
		tok, err := s.newMFAToken(ctx, p.App, u.ID)
		if err != nil {
			return Result{}, err
		}
		method := authapi.MFATOTP
		if u.TOTPConfirmedAt == nil {
			method = authapi.MFATOTPEnroll
		}
		return Result{MFARequired: true, MFAToken: tok, Methods: []string{method}}, nil
	}
	return s.newSession(ctx, p, u, c)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// hashKey is a short, non-reversible Redis key part for a secret.
func hashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:16])
}

// checkPassword checks pw against hash, or against the dummy hash when
// there is none, so both take one argon2id computation.
func (s *Service) checkPassword(pw, hash string) (bool, error) {
	s.passwordChecks.Add(1)
	if hash == "" {
		return password.CheckDummy(pw), nil
	}
	return password.Check(pw, hash)
}

func abuseCheck(name string, r abuse.Rate, key string) abuse.Check {
	return abuse.Check{Name: name, Rate: r, Key: key}
}
