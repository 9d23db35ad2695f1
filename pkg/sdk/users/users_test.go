package users

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/sdk/client"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRequestsAndAnswers(t *testing.T) {
	f := newFakeAuth(t)
	c := f.client(t, func(cfg *Config) { cfg.UserAgent = "sdk-test" })
	ctx := ctxT(t)

	if err := c.SignUp(ctx, "ada@example.com", "correct horse"); err != nil {
		t.Fatal(err)
	}
	if r := f.last("/signup"); r.Method != "POST" || r.Body["email"] != "ada@example.com" || r.Body["password"] != "correct horse" || r.UserAgent != "sdk-test" {
		t.Fatalf("signup request %+v", r)
	}
	s, ch, err := c.Verify(ctx, "ada@example.com", "123456")
	if err != nil || ch != nil {
		t.Fatal(ch, err)
	}
	if r := f.last("/verify"); r.Body["code"] != "123456" {
		t.Fatalf("verify request %+v", r)
	}
	if u := s.User(); u.ID != fakeUserID || !u.EmailVerified || u.CreatedAt.IsZero() {
		t.Fatalf("user %+v", u)
	}
	tok := s.Tokens()
	if tok.SessionID == "" || tok.AccessToken == "" || tok.RefreshToken == "" || tok.AccessExpiresAt.IsZero() || tok.RefreshExpiresAt.IsZero() || s.ID() != tok.SessionID {
		t.Fatalf("tokens %+v", tok)
	}

	for name, call := range map[string]func() error{
		"/verify/resend":  func() error { return c.ResendVerification(ctx, "ada@example.com") },
		"/signin/code":    func() error { return c.SignInCode(ctx, "ada@example.com") },
		"/password/reset": func() error { return c.ResetPassword(ctx, "ada@example.com") },
	} {
		if err := call(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r := f.last(name); r.Body["email"] != "ada@example.com" {
			t.Fatalf("%s request %+v", name, r)
		}
	}
	if _, _, err := c.ConfirmPasswordReset(ctx, "ada@example.com", "654321", "new password"); err != nil {
		t.Fatal(err)
	}
	if r := f.last("/password/reset/confirm"); r.Body["code"] != "654321" || r.Body["password"] != "new password" {
		t.Fatalf("reset confirm %+v", r)
	}
	if s, ch, err := c.VerifySignInCode(ctx, "ada@example.com", "111111"); err != nil || s == nil || ch != nil {
		t.Fatalf("VerifySignInCode = %v, %v, %v", s, ch, err)
	}
	anon, err := c.Anonymous(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := anon.Upgrade(ctx, "bob@example.com", "pw pw pw pw"); err != nil {
		t.Fatal(err)
	}
	if r := f.last("/upgrade"); r.Bearer != anon.Tokens().AccessToken || r.Body["email"] != "bob@example.com" {
		t.Fatalf("upgrade request %+v", r)
	}

	// Bearer endpoints.
	me, err := s.Me(ctx)
	if err != nil || me.ID != fakeUserID || len(me.MFA) != 1 || me.MFA[0] != "totp" {
		t.Fatalf("Me = %+v, %v", me, err)
	}
	if r := f.last("/me"); r.Bearer != s.Tokens().AccessToken || r.Method != "GET" {
		t.Fatalf("me request %+v", r)
	}
	list, err := s.Sessions(ctx)
	if err != nil || len(list) != 1 || !list[0].Current || list[0].ID != s.ID() || list[0].UserAgent != "sdk-test" || list[0].LastUsedAt.IsZero() {
		t.Fatalf("Sessions = %+v, %v", list, err)
	}
	enr, err := s.EnrollTOTP(ctx)
	if err != nil || enr.Secret == "" || enr.OTPAuthURI == "" || string(enr.QRPNG) != "\x89PNG" {
		t.Fatalf("EnrollTOTP = %+v, %v", enr, err)
	}
	codes, err := s.ConfirmTOTP(ctx, "123456")
	if err != nil || len(codes) != 2 {
		t.Fatalf("ConfirmTOTP = %v, %v", codes, err)
	}
	if err := s.DisableTOTP(ctx, "123456"); err != nil {
		t.Fatal(err)
	}
	if r := f.last("/mfa/totp/disable"); r.Body["code"] != "123456" {
		t.Fatalf("disable request %+v", r)
	}

	// Another session revoked from this one; then this one itself.
	if err := s.RevokeSession(ctx, anon.ID()); err != nil {
		t.Fatal(err)
	}
	if r := f.last("/sessions/" + anon.ID()); r.Method != "DELETE" {
		t.Fatalf("revoke request %+v", r)
	}
	if s.Err() != nil {
		t.Fatalf("revoking another session ended this one: %v", s.Err())
	}
	if err := s.RevokeSession(ctx, s.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AccessToken(ctx); !errors.Is(err, ErrSignedOut) {
		t.Fatalf("after revoking itself AccessToken = %v, want ErrSignedOut", err)
	}
}

func TestSignInWithMFA(t *testing.T) {
	f := newFakeAuth(t)
	f.mfa = MethodTOTP
	c := f.client(t)
	ctx := ctxT(t)
	s, ch, err := c.SignIn(ctx, "ada@example.com", "pw")
	if err != nil || s != nil || ch == nil || ch.Token != "mfa-1" || len(ch.Methods) != 1 || ch.Methods[0] != "totp" || ch.NeedsEnrollment() {
		t.Fatalf("SignIn = %v, %+v, %v; want an MFA challenge", s, ch, err)
	}
	if s, err = c.ChallengeMFA(ctx, ch, "123456"); err != nil || s == nil {
		t.Fatalf("ChallengeMFA = %v, %v", s, err)
	}
	if r := f.last("/mfa/challenge"); r.Body["mfa_token"] != "mfa-1" || r.Body["code"] != "123456" || r.Body["recovery_code"] != nil {
		t.Fatalf("challenge request %+v", r)
	}
	if _, err = c.ChallengeMFARecovery(ctx, ch, "aaaa-bbbb"); err != nil {
		t.Fatal(err)
	}
	if r := f.last("/mfa/challenge"); r.Body["recovery_code"] != "aaaa-bbbb" || r.Body["code"] != nil {
		t.Fatalf("recovery request %+v", r)
	}
	if _, ch, err := c.Exchange(ctx, "lc-1"); err != nil || ch == nil {
		t.Fatalf("Exchange = %+v, %v; want the MFA answer", ch, err)
	}
	if r := f.last("/oauth/exchange"); r.Body["login_code"] != "lc-1" {
		t.Fatalf("exchange request %+v", r)
	}
}

// An app that requires a second factor: a user without one enrolls with
// the mfa_token and is signed in by the confirmation.
func TestSignInWithMFAEnrollment(t *testing.T) {
	f := newFakeAuth(t)
	f.mfa = MethodTOTPEnroll
	c := f.client(t)
	ctx := ctxT(t)
	_, ch, err := c.SignIn(ctx, "ada@example.com", "pw")
	if err != nil || ch == nil || !ch.NeedsEnrollment() {
		t.Fatalf("SignIn = %+v, %v; want a challenge that needs enrollment", ch, err)
	}
	e, err := c.EnrollMFA(ctx, ch)
	if err != nil || e.Secret == "" {
		t.Fatalf("EnrollMFA = %+v, %v", e, err)
	}
	if r := f.last("/mfa/totp/enroll"); r.Bearer != "" || r.Body["mfa_token"] != "mfa-1" {
		t.Fatalf("enroll request %+v", r)
	}
	s, codes, err := c.ConfirmMFAEnrollment(ctx, ch, "123456")
	if err != nil || s == nil || len(codes) != 1 || s.User().ID != fakeUserID {
		t.Fatalf("ConfirmMFAEnrollment = %v, %v, %v", s, codes, err)
	}
	if r := f.last("/mfa/totp/confirm"); r.Bearer != "" || r.Body["mfa_token"] != "mfa-1" || r.Body["code"] != "123456" {
		t.Fatalf("confirm request %+v", r)
	}
	if _, err := s.Me(ctx); err != nil {
		t.Fatalf("the enrolled session: %v", err)
	}
}

func TestErrorsCarryTheCode(t *testing.T) {
	f := newFakeAuth(t)
	c := f.client(t)
	ctx := ctxT(t)
	f.failNext("/signin", 401, CodeInvalidCredentials, "")
	_, _, err := c.SignIn(ctx, "ada@example.com", "wrong")
	var e *Error
	if !errors.As(err, &e) || e.Status != 401 || e.Code != CodeInvalidCredentials || e.Temporary() || !HasCode(err, CodeInvalidCredentials) {
		t.Fatalf("SignIn error = %#v", err)
	}
	f.failNext("/signin", 429, CodeRateLimited, "7")
	_, _, err = c.SignIn(ctx, "ada@example.com", "wrong")
	if !errors.As(err, &e) || e.Code != CodeRateLimited || e.RetryAfter != 7*time.Second || !e.Temporary() {
		t.Fatalf("rate-limited SignIn error = %#v", err)
	}
	if _, err := New(Config{App: "shop"}); err == nil {
		t.Fatal("New without AuthURL succeeded")
	}
	u, err := url.Parse(c.OAuthStartURL("google", "https://app.example.com/cb?x=1"))
	if err != nil || u.Path != "/v1/apps/shop/auth/oauth/google/start" || u.Query().Get("redirect_uri") != "https://app.example.com/cb?x=1" {
		t.Fatalf("OAuthStartURL = %v, %v", u, err)
	}
}

// Concurrent callers of a due token share one refresh: a second request
// with the same (by then retired) refresh token would be reuse, and the
// server would revoke the session.
func TestRefreshIsSingleFlight(t *testing.T) {
	f := newFakeAuth(t)
	var told []Tokens
	var toldMu sync.Mutex
	c := f.client(t, func(cfg *Config) {
		cfg.OnTokens = func(t Tokens) { toldMu.Lock(); told = append(told, t); toldMu.Unlock() }
	})
	ctx := ctxT(t)
	s, _, err := c.SignIn(ctx, "ada@example.com", "pw")
	if err != nil {
		t.Fatal(err)
	}
	old := s.Tokens()
	f.advance(4*time.Minute + 50*time.Second) // 10 s left of 5 minutes: due
	hold := make(chan struct{})
	f.mu.Lock()
	f.hold = hold
	f.mu.Unlock()

	const n = 20
	provider := s.TokenProvider()
	got := make(chan string, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			get := s.AccessToken
			if i%2 == 0 {
				get = provider
			}
			tok, err := get(ctx)
			got <- tok
			errs <- err
		}()
	}
	waitFor(t, "every caller waiting for the refresh", func() bool { return s.waiting.Load() == n })
	close(hold)
	var first string
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		tok := <-got
		if first == "" {
			first = tok
		}
		if tok != first || tok == old.AccessToken {
			t.Fatalf("callers got different or stale tokens: %q vs %q (old %q)", tok, first, old.AccessToken)
		}
	}
	if n := f.refreshCount(); n != 1 {
		t.Fatalf("%d refresh requests, want 1", n)
	}
	if r := f.last("/refresh"); r.Body["refresh_token"] != old.RefreshToken {
		t.Fatalf("refresh sent %v, want the refresh token of the sign-in", r.Body["refresh_token"])
	}
	cur := s.Tokens()
	if cur.SessionID != old.SessionID || cur.RefreshToken == old.RefreshToken {
		t.Fatalf("after refresh %+v (before %+v)", cur, old)
	}
	// A fresh 5-minute token is not refreshed again.
	if tok, err := s.AccessToken(ctx); err != nil || tok != first || f.refreshCount() != 1 {
		t.Fatalf("AccessToken = %q, %v after %d refreshes", tok, err, f.refreshCount())
	}
	toldMu.Lock()
	defer toldMu.Unlock()
	if len(told) != 2 || told[1].RefreshToken != cur.RefreshToken {
		t.Fatalf("OnTokens told %d times (%+v), want sign-in and refresh", len(told), told)
	}
}

// The refresh is not tied to the context of the caller that started it:
// abandoning the wait must not abandon a rotation the server carries out.
func TestRefreshOutlivesItsCaller(t *testing.T) {
	f := newFakeAuth(t)
	c := f.client(t)
	s, _, err := c.SignIn(ctxT(t), "ada@example.com", "pw")
	if err != nil {
		t.Fatal(err)
	}
	old := s.Tokens()
	hold := make(chan struct{})
	f.mu.Lock()
	f.hold = hold
	f.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Refresh(ctx) }()
	waitFor(t, "the refresh to start", func() bool { return f.refreshCount() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Refresh after cancel = %v", err)
	}
	close(hold)
	waitFor(t, "the rotation to be installed", func() bool { return s.Tokens().RefreshToken != old.RefreshToken })
	if err := s.Refresh(ctxT(t)); err != nil {
		t.Fatalf("the next refresh (with the rotated token) failed: %v", err)
	}
}

func TestReusedRefreshTokenEndsTheSession(t *testing.T) {
	f := newFakeAuth(t)
	var told []Tokens
	c := f.client(t, func(cfg *Config) { cfg.OnTokens = func(t Tokens) { told = append(told, t) } })
	ctx := ctxT(t)
	s, _, err := c.SignIn(ctx, "ada@example.com", "pw")
	if err != nil {
		t.Fatal(err)
	}
	stolen := s.Tokens().RefreshToken
	// The thief refreshes first.
	thief, err := c.Resume(ctx, stolen)
	if err != nil {
		t.Fatal(err)
	}
	if thief.ID() != s.ID() {
		t.Fatalf("Resume gave session %s, want %s", thief.ID(), s.ID())
	}
	err = s.Refresh(ctx)
	if !errors.Is(err, ErrSessionEnded) || !HasCode(err, CodeRefreshReused) {
		t.Fatalf("Refresh after reuse = %v, want ErrSessionEnded with refresh_reused", err)
	}
	before := f.refreshCount()
	if _, err := s.AccessToken(ctx); !errors.Is(err, ErrSessionEnded) {
		t.Fatalf("AccessToken = %v", err)
	}
	_, err = s.TokenProvider()(ctx)
	if !errors.Is(err, client.ErrNoToken) || !errors.Is(err, ErrSessionEnded) {
		t.Fatalf("TokenProvider = %v, want ErrNoToken and ErrSessionEnded", err)
	}
	if _, err := s.Me(ctx); !errors.Is(err, ErrSessionEnded) {
		t.Fatalf("Me = %v", err)
	}
	if f.refreshCount() != before {
		t.Fatal("an ended session asked the server again")
	}
	// The whole family is gone: the thief's session too.
	if err := thief.Refresh(ctx); !errors.Is(err, ErrSessionEnded) || !HasCode(err, CodeInvalidCredentials) {
		t.Fatalf("thief's Refresh = %v, want invalid_credentials", err)
	}
	last := told[len(told)-1]
	if last.RefreshToken != "" || last.SessionID != s.ID() {
		t.Fatalf("OnTokens last told %+v, want the ended session without a refresh token", last)
	}
}

// A refresh that fails for a passing reason keeps the session, and the
// access token while it is valid.
func TestTransientRefreshFailureKeepsTheSession(t *testing.T) {
	f := newFakeAuth(t)
	c := f.client(t)
	ctx := ctxT(t)
	s, _, err := c.SignIn(ctx, "ada@example.com", "pw")
	if err != nil {
		t.Fatal(err)
	}
	f.advance(4*time.Minute + 50*time.Second) // due, still valid
	cur := s.Tokens().AccessToken
	f.failNext("/refresh", 503, "unavailable", "")
	if tok, err := s.AccessToken(ctx); err != nil || tok != cur {
		t.Fatalf("AccessToken during an outage = %q, %v; want the current token", tok, err)
	}
	if s.Err() != nil {
		t.Fatalf("a 503 ended the session: %v", s.Err())
	}
	if tok, err := s.AccessToken(ctx); err != nil || tok == cur {
		t.Fatalf("AccessToken after the outage = %q, %v; want a new token", tok, err)
	}
}

// A bearer call answered 401 refreshes once and tries again.
func TestUnauthorizedBearerCallRefreshes(t *testing.T) {
	f := newFakeAuth(t)
	c := f.client(t)
	ctx := ctxT(t)
	s, _, err := c.SignIn(ctx, "ada@example.com", "pw")
	if err != nil {
		t.Fatal(err)
	}
	f.failNext("/me", 401, CodeUnauthorized, "")
	if _, err := s.Me(ctx); err != nil {
		t.Fatalf("Me = %v", err)
	}
	if f.refreshCount() != 1 {
		t.Fatalf("%d refreshes, want 1", f.refreshCount())
	}
	// Revoked elsewhere: the refresh fails and the session ends.
	other, _, err := c.SignIn(ctx, "ada@example.com", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.RevokeSession(ctx, s.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Me(ctx); !errors.Is(err, ErrSessionEnded) || !HasCode(err, CodeInvalidCredentials) {
		t.Fatalf("Me on a revoked session = %v", err)
	}
}

func TestSignOut(t *testing.T) {
	f := newFakeAuth(t)
	c := f.client(t)
	ctx := ctxT(t)
	s, _, err := c.SignIn(ctx, "ada@example.com", "pw")
	if err != nil {
		t.Fatal(err)
	}
	rt := s.Tokens().RefreshToken
	if err := s.SignOut(ctx); err != nil {
		t.Fatal(err)
	}
	if r := f.last("/signout"); r.Body["refresh_token"] != rt {
		t.Fatalf("signout request %+v", r)
	}
	if err := s.SignOut(ctx); err != nil {
		t.Fatalf("second SignOut = %v", err)
	}
	if _, err := s.AccessToken(ctx); !errors.Is(err, ErrSignedOut) || !errors.Is(err, ErrSessionEnded) {
		t.Fatalf("AccessToken after SignOut = %v", err)
	}
	if s.Tokens().RefreshToken != "" {
		t.Fatal("the refresh token outlived the session")
	}
	if _, err := c.Resume(ctx, rt); !HasCode(err, CodeInvalidCredentials) {
		t.Fatalf("Resume with a signed-out refresh token = %v", err)
	}
}
