package users

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/sdk/client"
)

// Tokens is a session's state as the server last gave it: what an app
// keeps to Resume later (the refresh token) or hands elsewhere.
type Tokens struct {
	SessionID        string
	User             User
	AccessToken      string
	AccessExpiresAt  time.Time
	RefreshToken     string // "" once the session has ended
	RefreshExpiresAt time.Time
}

// refreshTimeout bounds one refresh request. It is not tied to any caller's
// context: a refresh the server carried out but whose answer was abandoned
// would leave the session holding a retired refresh token, and presenting
// that one again revokes the session (refresh_reused).
const refreshTimeout = 30 * time.Second

// Session is a signed-in user: an access token (short-lived, accepted by
// the gateways) and a rotating refresh token. AccessToken and
// TokenProvider refresh the access token before it expires; concurrent
// callers share one refresh. When the server refuses the refresh token
// (invalid_credentials: signed out elsewhere, revoked, blocked, expired; or
// refresh_reused: it was stolen and used), the session ends: every call
// then fails with an error wrapping ErrSessionEnded. Safe for concurrent
// use.
type Session struct {
	c *Client

	mu       sync.Mutex
	tok      Tokens
	life     time.Duration // the access token's lifetime (exp - iat)
	localExp time.Time     // its expiry by the local clock
	flight   *flight       // the refresh in progress, shared by its callers
	ended    error         // non-nil once the session has ended

	waiting atomic.Int32 // callers waiting for a refresh (for tests)
}

type flight struct {
	done chan struct{}
	err  error
}

func (c *Client) newSession(w *authapi.SignInResult) *Session {
	s := &Session{c: c}
	s.install(w)
	s.tell(s.tok)
	return s
}

// install takes a session answer; the caller holds s.mu (or owns s).
// w has passed checkSession.
func (s *Session) install(w *authapi.SignInResult) {
	s.tok = Tokens{
		SessionID: w.SessionID, User: *w.User,
		AccessToken: w.AccessToken, AccessExpiresAt: *w.AccessExpiresAt,
		RefreshToken: w.RefreshToken,
	}
	if w.RefreshExpiresAt != nil {
		s.tok.RefreshExpiresAt = *w.RefreshExpiresAt
	}
	// The lifetime from the token's own iat and exp (both the server's
	// clock), counted from now on the local clock, so a skewed client clock
	// neither refreshes constantly nor too late.
	now := s.c.now()
	s.life = w.AccessExpiresAt.Sub(now)
	if iat, exp, ok := jwtTimes(w.AccessToken); ok && exp.After(iat) {
		s.life = exp.Sub(iat)
	}
	s.localExp = now.Add(s.life)
}

// tell hands t to Config.OnTokens, outside s.mu so the hook may call the
// Session.
func (s *Session) tell(t Tokens) {
	if s.c.cfg.OnTokens != nil {
		s.c.cfg.OnTokens(t)
	}
}

// jwtTimes reads a JWT's iat and exp without verifying it.
func jwtTimes(tok string) (iat, exp time.Time, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return iat, exp, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return iat, exp, false
	}
	var claims struct {
		Iat float64 `json:"iat"`
		Exp float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Iat <= 0 || claims.Exp <= 0 {
		return iat, exp, false
	}
	return time.Unix(int64(claims.Iat), 0), time.Unix(int64(claims.Exp), 0), true
}

// margin is how long before expiry the access token is refreshed: a fifth
// of its life, at least 5 s, at most half. The realtime client asks its
// token provider a tenth of the life early (at least 2 s), so it always
// finds a token that is due and gets a fresh one.
func (s *Session) margin() time.Duration {
	return min(max(s.life/5, 5*time.Second), s.life/2)
}

// ID is the session's id (stable across refreshes).
func (s *Session) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok.SessionID
}

// User is the signed-in user as of the last sign-in or refresh (Me asks
// the server).
func (s *Session) User() User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok.User
}

// Tokens is the session's current state. After the session ended, its
// RefreshToken is empty.
func (s *Session) Tokens() Tokens {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok
}

// Err is why the session ended (wrapping ErrSessionEnded), or nil.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// AccessToken returns an access token that is not about to expire,
// refreshing first when it is due. If a due refresh fails for a passing
// reason (network, 5xx, rate_limited), the current token is returned as
// long as it has not expired; after that, the error.
func (s *Session) AccessToken(ctx context.Context) (string, error) {
	s.mu.Lock()
	if s.ended != nil {
		err := s.ended
		s.mu.Unlock()
		return "", err
	}
	tok, exp, due := s.tok.AccessToken, s.localExp, s.localExp.Sub(s.c.now()) < s.margin()
	s.mu.Unlock()
	if !due {
		return tok, nil
	}
	err := s.refresh(ctx, tok)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		return s.tok.AccessToken, nil
	}
	if s.ended == nil && ctx.Err() == nil && exp.Sub(s.c.now()) > time.Second {
		return tok, nil
	}
	return "", err
}

// TokenProvider is for the realtime client (client.Config.TokenProvider):
// the user connects as itself (client id = user id) and the client gets a
// fresh token for every reconnect and before expiry (in band). Once the
// session has ended, the provider's error wraps client.ErrNoToken as well
// as ErrSessionEnded, which ends the realtime client instead of retrying:
// its connection lives until its current access token expires (the
// gateway closes it then), so Close the client to end it at once.
func (s *Session) TokenProvider() func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		tok, err := s.AccessToken(ctx)
		if errors.Is(err, ErrSessionEnded) {
			return "", fmt.Errorf("%w: %w", client.ErrNoToken, err)
		}
		return tok, err
	}
}

// Refresh gets a new access and refresh token now (or waits for the
// refresh already in progress).
func (s *Session) Refresh(ctx context.Context) error {
	return s.refresh(ctx, "")
}

// refresh refreshes, single-flight: concurrent callers share one request.
// seen, if set, is the access token the caller found stale: when it was
// replaced meanwhile, there is nothing to do. The request runs detached
// from ctx (see refreshTimeout); ctx only bounds the wait.
func (s *Session) refresh(ctx context.Context, seen string) error {
	s.mu.Lock()
	if s.ended != nil {
		err := s.ended
		s.mu.Unlock()
		return err
	}
	if seen != "" && seen != s.tok.AccessToken {
		s.mu.Unlock()
		return nil
	}
	f := s.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		s.flight = f
		go s.runRefresh(f, s.tok.RefreshToken)
	}
	s.mu.Unlock()
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return fmt.Errorf("users: refresh: %w", ctx.Err())
	}
}

func (s *Session) runRefresh(f *flight, refreshToken string) {
	ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
	defer cancel()
	var w authapi.SignInResult
	err := s.c.call(ctx, http.MethodPost, "/refresh", "", authapi.RefreshRequest{RefreshToken: refreshToken}, &w)
	if err == nil {
		if cerr := checkSession(&w); cerr != nil {
			err = fmt.Errorf("users: /refresh: %w", cerr)
		}
	}
	s.mu.Lock()
	tell := false
	switch {
	case err == nil:
		s.install(&w)
		tell = true
	case HasCode(err, CodeRefreshReused) || HasCode(err, CodeInvalidCredentials):
		err = fmt.Errorf("%w: the server refused its refresh token: %w", ErrSessionEnded, err)
		tell = s.endLocked(err)
	default:
		err = fmt.Errorf("users: refresh: %w", err)
	}
	t := s.tok
	f.err = err
	s.flight = nil
	s.mu.Unlock()
	if tell {
		s.tell(t)
	}
	close(f.done)
}

// endLocked ends the session with err; false if it had ended already.
// The caller tells OnTokens once it has unlocked.
func (s *Session) endLocked(err error) bool {
	if s.ended != nil {
		return false
	}
	s.ended = err
	s.tok.AccessToken, s.tok.RefreshToken = "", ""
	return true
}

// SignOut revokes the session on the server (its refresh token stops
// working) and ends it here, whatever the server answered; the error says
// whether the server confirmed.
func (s *Session) SignOut(ctx context.Context) error {
	var rt string
	for {
		s.mu.Lock()
		if s.ended != nil {
			err := s.ended
			s.mu.Unlock()
			if errors.Is(err, ErrSignedOut) {
				return nil
			}
			return err
		}
		f := s.flight
		if f == nil {
			// Ended before the request, so nothing refreshes in between.
			rt = s.tok.RefreshToken
			s.endLocked(ErrSignedOut)
			t := s.tok
			s.mu.Unlock()
			s.tell(t)
			break
		}
		s.mu.Unlock()
		select { // a refresh in flight is about to replace the refresh token
		case <-f.done:
		case <-ctx.Done():
			return fmt.Errorf("users: sign out: %w", ctx.Err())
		}
	}
	return s.c.call(ctx, http.MethodPost, "/signout", "", authapi.RefreshRequest{RefreshToken: rt}, nil)
}

// authed makes a call with the access token, refreshing it first when due.
// A 401 answer (the token was revoked, or clocks disagree) refreshes once
// and tries again: a revoked session then ends with ErrSessionEnded.
func (s *Session) authed(ctx context.Context, method, path string, body, out any) error {
	for attempt := 0; ; attempt++ {
		tok, err := s.AccessToken(ctx)
		if err != nil {
			return err
		}
		err = s.c.call(ctx, method, path, tok, body, out)
		var e *Error
		if attempt > 0 || !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
			return err
		}
		if rerr := s.refresh(ctx, tok); rerr != nil {
			if errors.Is(rerr, ErrSessionEnded) {
				return rerr
			}
			return err
		}
	}
}

// Me returns the user as the server knows it now.
func (s *Session) Me(ctx context.Context) (User, error) {
	var u User
	err := s.authed(ctx, http.MethodGet, "/me", nil, &u)
	return u, err
}

// Sessions lists the user's sessions (Current marks this one).
func (s *Session) Sessions(ctx context.Context) ([]SessionInfo, error) {
	var out authapi.Sessions
	err := s.authed(ctx, http.MethodGet, "/sessions", nil, &out)
	return out.Sessions, err
}

// RevokeSession signs out one of the user's sessions (e.g. a lost phone).
// Revoking this session's own id ends it here too.
func (s *Session) RevokeSession(ctx context.Context, id string) error {
	if err := s.authed(ctx, http.MethodDelete, "/sessions/"+url.PathEscape(id), nil, nil); err != nil {
		return err
	}
	s.mu.Lock()
	tell := id == s.tok.SessionID && s.endLocked(ErrSignedOut)
	t := s.tok
	s.mu.Unlock()
	if tell {
		s.tell(t)
	}
	return nil
}

// Upgrade gives an anonymous user an email and password: a verification
// code is mailed, and Client.Verify with it turns this user (same id) into
// a normal user and returns its new session.
func (s *Session) Upgrade(ctx context.Context, email, password string) error {
	return s.authed(ctx, http.MethodPost, "/upgrade", authapi.Credentials{Email: email, Password: password}, nil)
}

// EnrollTOTP starts TOTP enrollment: show the QR code (or secret) to the
// user, then ConfirmTOTP with a code from their authenticator.
func (s *Session) EnrollTOTP(ctx context.Context) (TOTPEnrollment, error) {
	var e TOTPEnrollment
	err := s.authed(ctx, http.MethodPost, "/mfa/totp/enroll", struct{}{}, &e)
	return e, err
}

// ConfirmTOTP turns TOTP on with a current code and returns the ten
// recovery codes, shown once: from now on sign-in asks for a second factor.
func (s *Session) ConfirmTOTP(ctx context.Context, code string) ([]string, error) {
	var out authapi.RecoveryCodes
	err := s.authed(ctx, http.MethodPost, "/mfa/totp/confirm", authapi.TOTPCode{Code: code}, &out)
	return out.RecoveryCodes, err
}

// DisableTOTP turns TOTP off; it takes a current code.
func (s *Session) DisableTOTP(ctx context.Context, code string) error {
	return s.authed(ctx, http.MethodPost, "/mfa/totp/disable", authapi.TOTPCode{Code: code}, nil)
}
