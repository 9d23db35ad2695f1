package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/pkg/sdk/users"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/tests/harness"
)

// mailCodes are the codes of kind ("verify", "signin", "reset") mailed to
// to so far, oldest first, read from the auth service's log: with
// AUTH_MAIL=log (its default) every mail is a log line with its code.
func mailCodes(p *harness.Process, to, kind string) []string {
	var codes []string
	sc := bufio.NewScanner(strings.NewReader(p.Logs()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg, To, Kind, Code string
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasPrefix(line.Msg, "mail") && line.To == to && line.Kind == kind && line.Code != "" {
			codes = append(codes, line.Code)
		}
	}
	return codes
}

// nextMailCode waits for a code mailed after the before codes.
func nextMailCode(t *testing.T, p *harness.Process, to, kind string, before int) string {
	t.Helper()
	var codes []string
	testenv.WaitFor(t, 10*time.Second, "a "+kind+" code mailed to "+to, func() bool {
		codes = mailCodes(p, to, kind)
		return len(codes) > before
	})
	return codes[len(codes)-1]
}

// TestUsersSDKEndToEnd: an end user signs up, verifies the mailed code and
// signs in with the Go SDK; the realtime client connects as that user
// (client id = user id) with the session as its token provider, joins and
// publishes, and lives through several in-band refreshes of its 6-second
// access token; after sign-out the refresh token is refused and the
// realtime client ends with the session's error.
func TestUsersSDKEndToEnd(t *testing.T) {
	t.Parallel()
	e := newUsersEnv(t)
	e.setup(t, authapi.UserPolicy{Signup: true, AccessTTL: "6s", RefreshTTL: "1h"})
	gw := e.gateway(t, "gw-users-sdk-0")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const email, password = "ada@example.com", "correct horse battery staple"
	var mu sync.Mutex
	secrets := []string{password} // none may reach a log
	var refreshTokens []string    // every refresh token the SDK was given, in order
	uc, err := users.New(users.Config{AuthURL: e.auth.HTTPURL(), App: e.app, OnTokens: func(tk users.Tokens) {
		mu.Lock()
		defer mu.Unlock()
		if tk.RefreshToken != "" {
			refreshTokens = append(refreshTokens, tk.RefreshToken)
			secrets = append(secrets, tk.AccessToken, tk.RefreshToken)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range []*harness.Process{e.auth, gw} {
			logs := p.Logs()
			for _, s := range secrets {
				if strings.Contains(logs, s) {
					t.Errorf("a password or token (fingerprint %s) appears in the log of pid %d", token.Fingerprint(s), p.Pid())
				}
			}
		}
	})

	// Sign-up → verify with the mailed code.
	if err := uc.SignUp(ctx, email, password); err != nil {
		t.Fatal(err)
	}
	nextMailCode(t, e.auth, email, "verify", 0)
	// A correct password before verification mails a new code, which
	// replaces the first (mails go out asynchronously: wait for each).
	if _, _, err := uc.SignIn(ctx, email, password); !users.HasCode(err, users.CodeEmailNotVerified) {
		t.Fatalf("sign-in before verification = %v, want email_not_verified", err)
	}
	code := nextMailCode(t, e.auth, email, "verify", 1)
	verified, _, err := uc.Verify(ctx, email, code)
	if err != nil {
		t.Fatalf("verify with the mailed code: %v", err)
	}
	if u := verified.User(); !u.EmailVerified || u.Email != email || !strings.HasPrefix(u.ID, "u") {
		t.Fatalf("verified user %+v", u)
	}

	// Sign-in (a second session of the same user).
	if _, _, err := uc.SignIn(ctx, email, "wrong password"); !users.HasCode(err, users.CodeInvalidCredentials) {
		t.Fatalf("sign-in with a wrong password = %v", err)
	}
	s, mfa, err := uc.SignIn(ctx, email, password)
	if err != nil || mfa != nil {
		t.Fatalf("SignIn = %v, %+v", err, mfa)
	}
	userID := s.User().ID
	if userID != verified.User().ID || s.ID() == verified.ID() {
		t.Fatalf("sign-in gave user %s session %s; verify gave user %s session %s", userID, s.ID(), verified.User().ID, verified.ID())
	}
	me, err := s.Me(ctx)
	if err != nil || me.ID != userID {
		t.Fatalf("Me = %+v, %v", me, err)
	}
	list, err := s.Sessions(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("Sessions = %+v, %v; want the verify and sign-in sessions", list, err)
	}

	// The realtime client connects as the user.
	var states []client.StateChange
	var statesMu sync.Mutex
	rt, err := client.Dial(ctx, client.Config{
		URL: gw.WSURL(), TokenProvider: s.TokenProvider(),
		OnStateChange: func(sc client.StateChange) {
			statesMu.Lock()
			states = append(states, sc)
			statesMu.Unlock()
		},
		ReconnectBaseDelay: 50 * time.Millisecond, ReconnectMaxDelay: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("realtime client with the session's token provider: %v", err)
	}
	defer rt.Close()
	if id := rt.Info().ClientID; id != userID {
		t.Fatalf("connected as client %q, want the user id %q", id, userID)
	}
	got := make(chan protocol.Message, 16)
	rt.OnAnyMessage(func(m protocol.Message) { got <- m })
	for _, room := range []string{"chat.lobby", "user." + userID} {
		if _, err := rt.Join(ctx, room); err != nil {
			t.Fatalf("join %s: %v", room, err)
		}
	}
	if _, err := rt.Join(ctx, "user.someone-else"); err == nil {
		t.Fatal("joined another user's room")
	}
	publish := func(room, text string) {
		t.Helper()
		if _, err := rt.Publish(ctx, room, []byte(`{"text":"`+text+`"}`)); err != nil {
			t.Fatalf("publish to %s: %v", room, err)
		}
		select {
		case m := <-got:
			if m.Room != room || m.From != userID || !strings.Contains(string(m.Data), text) {
				t.Fatalf("received %+v, want %q in %s from %s", m, text, room, userID)
			}
		case <-ctx.Done():
			t.Fatalf("no message %q in %s", text, room)
		}
	}
	publish("chat.lobby", "hello")

	// The session refreshes: the realtime client asks for a new token before
	// each 6-second access token expires, in band, with no reconnect.
	mu.Lock()
	before := len(refreshTokens)
	mu.Unlock()
	testenv.WaitFor(t, 45*time.Second, "two refreshes driven by the realtime client", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(refreshTokens) >= before+2
	})
	publish("chat.lobby", "after refresh")
	statesMu.Lock()
	for _, sc := range states {
		if sc.State == client.StateReconnecting || sc.State == client.StateClosed {
			t.Errorf("token refreshes caused a state change %v (%v)", sc.State, sc.Err)
		}
	}
	statesMu.Unlock()
	if err := s.Refresh(ctx); err != nil {
		t.Fatalf("explicit Refresh: %v", err)
	}
	if me, err := s.Me(ctx); err != nil || me.ID != userID {
		t.Fatalf("Me after refresh = %+v, %v", me, err)
	}

	// Sign-out: the last refresh token no longer works, and the realtime
	// client ends once its token would need replacing.
	last := s.Tokens().RefreshToken
	if err := s.SignOut(ctx); err != nil {
		t.Fatalf("SignOut: %v", err)
	}
	if _, err := uc.Resume(ctx, last); !users.HasCode(err, users.CodeInvalidCredentials) {
		t.Fatalf("refresh after sign-out = %v, want invalid_credentials", err)
	}
	if _, err := s.AccessToken(ctx); !errors.Is(err, users.ErrSignedOut) {
		t.Fatalf("AccessToken after sign-out = %v", err)
	}
	select {
	case <-rt.Done():
	case <-ctx.Done():
		t.Fatal("the realtime client of a signed-out session did not end")
	}
	if err := rt.Err(); !errors.Is(err, users.ErrSessionEnded) || !errors.Is(err, client.ErrNoToken) {
		t.Fatalf("realtime client ended with %v, want the session's end", err)
	}
	// The other session (from verify) is untouched.
	if _, err := verified.Me(ctx); err != nil {
		t.Fatalf("the verify session after the other signed out: %v", err)
	}
}

// TestUsersSDKRefreshReuse: a refresh token presented twice (a thief's copy
// used after the SDK rotated it) revokes the session: the SDK's session
// ends with refresh_reused or invalid_credentials, and so does the thief's.
func TestUsersSDKRefreshReuse(t *testing.T) {
	t.Parallel()
	e := newUsersEnv(t)
	e.setup(t, authapi.UserPolicy{Anonymous: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	uc, err := users.New(users.Config{AuthURL: e.auth.HTTPURL(), App: e.app})
	if err != nil {
		t.Fatal(err)
	}
	s, err := uc.Anonymous(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !s.User().Anonymous {
		t.Fatalf("anonymous user %+v", s.User())
	}
	stolen := s.Tokens().RefreshToken
	if err := s.Refresh(ctx); err != nil { // the SDK rotates
		t.Fatal(err)
	}
	if _, err := uc.Resume(ctx, stolen); !users.HasCode(err, users.CodeRefreshReused) {
		t.Fatalf("the stolen (retired) refresh token = %v, want refresh_reused", err)
	}
	err = s.Refresh(ctx)
	if !errors.Is(err, users.ErrSessionEnded) || !users.HasCode(err, users.CodeInvalidCredentials) {
		t.Fatalf("the SDK's refresh after the reuse = %v, want the session ended (invalid_credentials)", err)
	}
	if _, err := s.TokenProvider()(ctx); !errors.Is(err, client.ErrNoToken) {
		t.Fatalf("token provider of the revoked session = %v", err)
	}
}

// totpCode is the RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32
// secret at step (Unix time / 30).
func totpCode(t *testing.T, secret string, step int64) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.TrimRight(secret, "=")))
	if err != nil {
		t.Fatalf("TOTP secret: %v", err)
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	mac := hmac.New(sha1.New, key)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1_000_000)
}

// signedUp signs a new user up and in with the SDK (code from the log).
func signedUp(ctx context.Context, t *testing.T, e *usersEnv, uc *users.Client, email, password string) *users.Session {
	t.Helper()
	if err := uc.SignUp(ctx, email, password); err != nil {
		t.Fatal(err)
	}
	s, _, err := uc.Verify(ctx, email, nextMailCode(t, e.auth, email, "verify", 0))
	if err != nil || s == nil {
		t.Fatalf("Verify = %v, %v", s, err)
	}
	return s
}

// TestUsersSDKTOTP: TOTP through the Go SDK against the real service —
// enroll and confirm (ten recovery codes), then sign-in asks for the
// second factor: a wrong code is mfa_invalid, a current code or a recovery
// code (once) signs in. Codes use the steps ahead of the one confirmed,
// which the service accepts within its one-step skew, so the test never
// waits for the clock.
func TestUsersSDKTOTP(t *testing.T) {
	t.Parallel()
	e := newUsersEnv(t)
	e.setup(t, authapi.UserPolicy{Signup: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	uc, err := users.New(users.Config{AuthURL: e.auth.HTTPURL(), App: e.app})
	if err != nil {
		t.Fatal(err)
	}
	const email, password = "totp@example.com", "correct horse battery staple"
	s := signedUp(ctx, t, e, uc, email, password)

	enr, err := s.EnrollTOTP(ctx)
	if err != nil || enr.Secret == "" || !strings.HasPrefix(enr.OTPAuthURI, "otpauth://totp/") || !bytes.HasPrefix(enr.QRPNG, []byte("\x89PNG")) {
		t.Fatalf("EnrollTOTP = %+v, %v", enr, err)
	}
	step := time.Now().Unix() / 30
	recovery, err := s.ConfirmTOTP(ctx, totpCode(t, enr.Secret, step))
	if err != nil || len(recovery) != 10 {
		t.Fatalf("ConfirmTOTP = %v, %v", recovery, err)
	}
	if me, err := s.Me(ctx); err != nil || !slices.Contains(me.MFA, users.MethodTOTP) {
		t.Fatalf("Me after enrollment = %+v, %v", me, err)
	}

	s2, ch, err := uc.SignIn(ctx, email, password)
	if err != nil || s2 != nil || ch == nil || !slices.Contains(ch.Methods, users.MethodTOTP) || ch.NeedsEnrollment() {
		t.Fatalf("SignIn with TOTP on = %v, %+v, %v; want a challenge", s2, ch, err)
	}
	if _, err := uc.ChallengeMFA(ctx, ch, "000000"); !users.HasCode(err, users.CodeMFAInvalid) {
		t.Fatalf("a wrong TOTP code = %v, want mfa_invalid", err)
	}
	if s2, err = uc.ChallengeMFA(ctx, ch, totpCode(t, enr.Secret, step+1)); err != nil || s2.User().ID != s.User().ID {
		t.Fatalf("ChallengeMFA with a current code = %v, %v", s2, err)
	}

	_, ch, err = uc.SignIn(ctx, email, password)
	if err != nil || ch == nil {
		t.Fatalf("second SignIn = %+v, %v", ch, err)
	}
	if s3, err := uc.ChallengeMFARecovery(ctx, ch, strings.ToUpper(recovery[0])); err != nil || s3.User().ID != s.User().ID {
		t.Fatalf("ChallengeMFARecovery = %v, %v", s3, err)
	}
	_, ch, err = uc.SignIn(ctx, email, password)
	if err != nil || ch == nil {
		t.Fatalf("third SignIn = %+v, %v", ch, err)
	}
	if _, err := uc.ChallengeMFARecovery(ctx, ch, recovery[0]); !users.HasCode(err, users.CodeMFAInvalid) {
		t.Fatalf("a used recovery code = %v, want mfa_invalid", err)
	}
}

// TestUsersSDKMFARequired: with the policy's mfa_required, a user without
// a second factor enrolls during sign-in with the mfa_token and the
// confirmation signs them in.
func TestUsersSDKMFARequired(t *testing.T) {
	t.Parallel()
	e := newUsersEnv(t)
	e.setup(t, authapi.UserPolicy{Signup: true, MFARequired: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	uc, err := users.New(users.Config{AuthURL: e.auth.HTTPURL(), App: e.app})
	if err != nil {
		t.Fatal(err)
	}
	const email, password = "must@example.com", "correct horse battery staple"
	if err := uc.SignUp(ctx, email, password); err != nil {
		t.Fatal(err)
	}
	s, ch, err := uc.SignIn(ctx, email, password) // mails a new code: not verified yet
	if !users.HasCode(err, users.CodeEmailNotVerified) {
		t.Fatalf("SignIn before verification = %v, %+v, %v", s, ch, err)
	}
	// Verify signs in too, so it asks for the second factor as well.
	s, ch, err = uc.Verify(ctx, email, nextMailCode(t, e.auth, email, "verify", 1))
	if err != nil || s != nil || ch == nil || !ch.NeedsEnrollment() {
		t.Fatalf("Verify of a user without MFA under mfa_required = %v, %+v, %v; want a challenge that needs enrollment", s, ch, err)
	}
	enr, err := uc.EnrollMFA(ctx, ch)
	if err != nil || enr.Secret == "" {
		t.Fatalf("EnrollMFA = %+v, %v", enr, err)
	}
	s, recovery, err := uc.ConfirmMFAEnrollment(ctx, ch, totpCode(t, enr.Secret, time.Now().Unix()/30))
	if err != nil || len(recovery) != 10 {
		t.Fatalf("ConfirmMFAEnrollment = %v, %v, %v", s, recovery, err)
	}
	if me, err := s.Me(ctx); err != nil || !slices.Contains(me.MFA, users.MethodTOTP) {
		t.Fatalf("Me after enrolling at sign-in = %+v, %v", me, err)
	}
}
