package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/services/auth/authtest"
	"github.com/roomcast/roomcast/tests/harness"
)

// usersEnv is an auth service with end-user accounts (mail logged, the
// "users" events consumer on) and gateways that follow it and feed it
// connection events.
type usersEnv struct {
	*harness.Env
	auth         *harness.Process
	adminToken   string
	serviceToken string
	app          string
}

func newUsersEnv(t *testing.T, authEnv ...string) *usersEnv {
	t.Helper()
	e := &usersEnv{Env: harness.NewEnv(t), adminToken: "admin-" + randomHex(16), app: "users-app"}
	serviceToken := "service-" + randomHex(16)
	e.auth = harness.Start(t, harness.Binary(t, "auth"), append([]string{
		"AUTH_ADDR=127.0.0.1:0",
		"AUTH_DATABASE_URL=" + authtest.Database(t),
		"AUTH_ADMIN_TOKEN=" + e.adminToken,
		"AUTH_MASTER_KEY=" + randomHex(32),
		"ROOMCAST_SERVICE_TOKEN=" + serviceToken,
		"ROOMCAST_REDIS_URL=" + testenv.RedisURL(),
		"ROOMCAST_REDIS_PREFIX=" + e.RedisPrefix,
		"AUTH_MAIL=log",
	}, authEnv...))
	e.serviceToken = serviceToken
	return e
}

// gateway starts a gateway that verifies the auth service's tokens and
// feeds its users consumer.
func (e *usersEnv) gateway(t *testing.T, node string, extra ...string) *harness.Process {
	t.Helper()
	return e.Gateway(t, node, append([]string{
		"ROOMCAST_AUTH_URL=" + e.auth.HTTPURL(),
		"ROOMCAST_SERVICE_TOKEN=" + e.serviceToken,
		"GATEWAY_EVENT_CONSUMERS=users",
	}, extra...)...)
}

func (e *usersEnv) call(t *testing.T, method, path, bearer string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.auth.HTTPURL()+path, rd)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func (e *usersEnv) must(t *testing.T, status int, method, path, bearer string, body, out any) {
	t.Helper()
	got, raw := e.call(t, method, path, bearer, body)
	if got != status {
		t.Fatalf("%s %s: %d %s, want %d", method, path, got, raw, status)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
}

// setup creates the app, a key and the user policy.
func (e *usersEnv) setup(t *testing.T, policy authapi.UserPolicy) authapi.Key {
	t.Helper()
	e.must(t, 201, "POST", "/admin/v1/apps", e.adminToken, authapi.CreateApp{ID: e.app}, nil)
	var key authapi.Key
	e.must(t, 201, "POST", "/admin/v1/apps/"+e.app+"/keys", e.adminToken, authapi.CreateKey{Caps: token.Capabilities{
		"chat.*": {token.OpJoin, token.OpPublish}, "user.*": {token.OpJoin}}}, &key)
	policy.Key = key.ID
	policy.Caps = token.Capabilities{"chat.*": {token.OpJoin, token.OpPublish}, "user.{user}": {token.OpJoin}}
	e.must(t, 200, "PUT", "/admin/v1/apps/"+e.app+"/user-policy", e.adminToken, policy, nil)
	return key
}

// mailedCode reads the newest code the log sender logged for email and
// purpose, waiting for the mail to be logged.
func (e *usersEnv) mailedCode(t *testing.T, email, kind string) string {
	t.Helper()
	var code string
	testenv.WaitFor(t, 10*time.Second, kind+" code for "+email+" in the auth log", func() bool {
		sc := bufio.NewScanner(strings.NewReader(e.auth.Logs()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line struct {
				Msg, To, Kind, Code string
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasPrefix(line.Msg, "mail") &&
				strings.EqualFold(line.To, email) && line.Kind == kind && line.Code != "" {
				code = line.Code
			}
		}
		return code != ""
	})
	return code
}

func (e *usersEnv) online(t *testing.T, userID string) bool {
	t.Helper()
	var u authapi.User
	e.must(t, 200, "GET", "/admin/v1/apps/"+e.app+"/users/"+userID, e.adminToken, nil, &u)
	if u.Online == nil {
		t.Fatalf("admin user without online: %+v", u)
	}
	return *u.Online
}

// TestUserAccountsEndToEnd: sign-up → verify (code from the log sender) →
// sign-in → connect to a gateway as that user (online) → refresh → the
// new token connects too → sign-out (the refresh token no longer works)
// → offline once disconnected; a crashed gateway's connections stop
// counting when its lease runs out.
func TestUserAccountsEndToEnd(t *testing.T) {
	t.Parallel()
	e := newUsersEnv(t)
	e.setup(t, authapi.UserPolicy{Signup: true, AccessTTL: "5m"})
	gw := e.gateway(t, "gw-users-0")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := authapi.UsersPath(e.app)

	const email, pw = "grace@example.com", "correct horse battery"
	e.must(t, 202, "POST", base+"/signup", "", authapi.Credentials{Email: email, Password: pw}, nil)
	var verified authapi.SignInResult
	e.must(t, 200, "POST", base+"/verify", "", authapi.CodeRequest{Email: email, Code: e.mailedCode(t, email, "verify")}, &verified)
	var s authapi.SignInResult
	e.must(t, 200, "POST", base+"/signin", "", authapi.Credentials{Email: email, Password: pw}, &s)
	if s.User == nil || s.User.ID != verified.User.ID || s.AccessToken == "" {
		t.Fatalf("sign-in: %+v", s)
	}
	uid := s.User.ID
	if e.online(t, uid) {
		t.Fatal("online before connecting")
	}

	// The gateway accepts the user's access token: the user id is the
	// client id, and the policy's {user} room is theirs.
	c, err := dial(ctx, gw, s.AccessToken)
	if err != nil {
		t.Fatalf("connect with the user's access token: %v", err)
	}
	if _, err := c.Join(ctx, "user."+uid); err != nil {
		t.Fatalf("join own room: %v", err)
	}
	if _, err := c.Join(ctx, "user.someone-else"); err == nil {
		t.Fatal("joined another user's room")
	}
	if _, err := c.Publish(ctx, "chat.lobby", []byte(`{"hi":1}`)); err != nil {
		t.Fatalf("publish: %v", err)
	}
	testenv.WaitFor(t, 15*time.Second, "user online", func() bool { return e.online(t, uid) })

	var n authapi.SignInResult
	e.must(t, 200, "POST", base+"/refresh", "", authapi.RefreshRequest{RefreshToken: s.RefreshToken}, &n)
	if n.SessionID != s.SessionID || n.RefreshToken == s.RefreshToken {
		t.Fatalf("refresh: %+v", n)
	}
	c2, err := dial(ctx, gw, n.AccessToken)
	if err != nil {
		t.Fatalf("connect with the refreshed token: %v", err)
	}
	c2.Close()

	e.must(t, 204, "POST", base+"/signout", n.AccessToken, nil, nil)
	code, raw := e.call(t, "POST", base+"/refresh", "", authapi.RefreshRequest{RefreshToken: n.RefreshToken})
	if code != 401 || !strings.Contains(string(raw), "invalid_credentials") {
		t.Fatalf("refresh after sign-out: %d %s", code, raw)
	}
	c.Close()
	testenv.WaitFor(t, 15*time.Second, "user offline after disconnecting", func() bool { return !e.online(t, uid) })
	var u authapi.User
	e.must(t, 200, "GET", "/admin/v1/apps/"+e.app+"/users/"+uid, e.adminToken, nil, &u)
	if u.LastSeenAt == nil || time.Since(*u.LastSeenAt) > time.Minute {
		t.Fatalf("last_seen_at after disconnecting: %v", u.LastSeenAt)
	}

	// A gateway killed with its connections open: the user goes offline
	// when its lease runs out, not never.
	crashy := e.gateway(t, "gw-users-crash", "GATEWAY_PRESENCE_NODE_TTL=2s")
	var s2 authapi.SignInResult
	e.must(t, 200, "POST", base+"/signin", "", authapi.Credentials{Email: email, Password: pw}, &s2)
	c3, err := dial(ctx, crashy, s2.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	testenv.WaitFor(t, 15*time.Second, "user online on the second gateway", func() bool { return e.online(t, uid) })
	if err := crashy.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "user offline after the gateway's lease ran out", func() bool { return !e.online(t, uid) })
}

// TestUserAccountsAbuseEndToEnd: through the real service, brute force on
// sign-in and on code verification gets 429 rate_limited, and unknown and
// known emails get the same answers.
func TestUserAccountsAbuseEndToEnd(t *testing.T) {
	t.Parallel()
	e := newUsersEnv(t, "AUTH_USER_LIMIT_SIGNIN_ACCOUNT=4/1h", "AUTH_USER_LIMIT_CODE_ACCOUNT=4/1h",
		"AUTH_USER_LIMIT_MAIL_ACCOUNT=100/1h")
	e.setup(t, authapi.UserPolicy{Signup: true})
	base := authapi.UsersPath(e.app)
	e.must(t, 202, "POST", base+"/signup", "", authapi.Credentials{Email: "known@example.com", Password: "password-1"}, nil)
	e.must(t, 200, "POST", base+"/verify", "", authapi.CodeRequest{Email: "known@example.com", Code: e.mailedCode(t, "known@example.com", "verify")}, nil)

	for _, path := range []string{"/signup", "/verify/resend", "/signin/code", "/password/reset", "/signin"} {
		body := func(email string) any {
			switch path {
			case "/signup":
				return authapi.Credentials{Email: email, Password: "signup-password"}
			case "/signin":
				return authapi.Credentials{Email: email, Password: "wrong-password"}
			}
			return authapi.EmailRequest{Email: email}
		}
		ks, kraw := e.call(t, "POST", base+path, "", body("known@example.com"))
		us, uraw := e.call(t, "POST", base+path, "", body("nobody@example.com"))
		if ks != us || !bytes.Equal(kraw, uraw) {
			t.Errorf("%s: known %d %s, unknown %d %s", path, ks, kraw, us, uraw)
		}
	}
	// One sign-in attempt of each email is spent; three more pass, then 429.
	for i := range 3 {
		if st, raw := e.call(t, "POST", base+"/signin", "", authapi.Credentials{Email: "known@example.com", Password: fmt.Sprint("guess-", i)}); st != 401 {
			t.Fatalf("guess %d: %d %s", i, st, raw)
		}
	}
	if st, raw := e.call(t, "POST", base+"/signin", "", authapi.Credentials{Email: "known@example.com", Password: "password-1"}); st != 429 || !strings.Contains(string(raw), "rate_limited") {
		t.Fatalf("sign-in over the limit: %d %s", st, raw)
	}
	// Code checks: the verification spent one; three wrong guesses, then 429.
	for i := range 3 {
		if st, raw := e.call(t, "POST", base+"/signin/code/verify", "", authapi.CodeRequest{Email: "known@example.com", Code: fmt.Sprintf("%06d", i)}); st != 401 {
			t.Fatalf("code guess %d: %d %s", i, st, raw)
		}
	}
	if st, raw := e.call(t, "POST", base+"/signin/code/verify", "", authapi.CodeRequest{Email: "known@example.com", Code: "123456"}); st != 429 || !strings.Contains(string(raw), "rate_limited") {
		t.Fatalf("code check over the limit: %d %s", st, raw)
	}
}

// TestUsersOpenAPI checks the end-user endpoints' answers, errors
// included, against docs/auth-openapi.yaml.
func TestUsersOpenAPI(t *testing.T) {
	t.Parallel()
	v, _ := loadSpec(t, "../../docs/auth-openapi.yaml")
	e := newUsersEnv(t, "AUTH_USER_LIMIT_SIGNIN_ACCOUNT=3/1h")
	e.setup(t, authapi.UserPolicy{Signup: true, Anonymous: true})
	base := authapi.UsersPath(e.app)
	exchange := func(method, path, bearer string, body any) []byte {
		t.Helper()
		return specCall(t, v, "docs/auth-openapi.yaml", e.auth.HTTPURL(), method, path, bearer, body)
	}
	const email = "spec@example.com"
	exchange("GET", "/admin/v1/apps/"+e.app+"/user-policy", e.adminToken, nil)
	exchange("PUT", "/admin/v1/apps/"+e.app+"/user-policy", e.adminToken, authapi.UserPolicy{Key: "knope", Caps: token.Capabilities{"x": {token.OpJoin}}})
	exchange("POST", base+"/signup", "", authapi.Credentials{Email: email, Password: "password-1"})
	exchange("POST", base+"/signup", "", authapi.Credentials{Email: email, Password: "short"})
	exchange("POST", base+"/verify", "", authapi.CodeRequest{Email: email, Code: "000000"})
	var s authapi.SignInResult
	_ = json.Unmarshal(exchange("POST", base+"/verify", "", authapi.CodeRequest{Email: email, Code: e.mailedCode(t, email, "verify")}), &s)
	exchange("POST", base+"/verify/resend", "", authapi.EmailRequest{Email: email})
	exchange("POST", base+"/signin/code", "", authapi.EmailRequest{Email: email})
	exchange("POST", base+"/signin/code/verify", "", authapi.CodeRequest{Email: email, Code: "000000"})
	exchange("POST", base+"/password/reset", "", authapi.EmailRequest{Email: email})
	exchange("POST", base+"/password/reset/confirm", "", authapi.ResetConfirm{Email: email, Code: "000000", Password: "password-2"})
	exchange("GET", base+"/me", s.AccessToken, nil)
	exchange("GET", base+"/me", "", nil)
	exchange("GET", base+"/sessions", s.AccessToken, nil)
	exchange("POST", base+"/mfa/totp/enroll", s.AccessToken, nil)
	exchange("POST", base+"/mfa/totp/confirm", s.AccessToken, authapi.TOTPCode{Code: "000000"})
	exchange("POST", base+"/mfa/totp/disable", s.AccessToken, authapi.TOTPCode{Code: "000000"})
	exchange("POST", base+"/mfa/challenge", "", authapi.MFAChallenge{MFAToken: "mt_nope", Code: "000000"})
	var n authapi.SignInResult
	_ = json.Unmarshal(exchange("POST", base+"/refresh", "", authapi.RefreshRequest{RefreshToken: s.RefreshToken}), &n)
	exchange("POST", base+"/refresh", "", authapi.RefreshRequest{RefreshToken: s.RefreshToken}) // reuse
	var a authapi.SignInResult
	_ = json.Unmarshal(exchange("POST", base+"/anonymous", "", nil), &a)
	exchange("POST", base+"/upgrade", a.AccessToken, authapi.Credentials{Email: "anon-spec@example.com", Password: "password-1"})
	exchange("DELETE", base+"/sessions/snope", a.AccessToken, nil)
	exchange("POST", base+"/signout", a.AccessToken, nil)
	exchange("GET", "/admin/v1/apps/"+e.app+"/users?limit=1", e.adminToken, nil)
	exchange("GET", "/admin/v1/apps/"+e.app+"/users/"+s.User.ID, e.adminToken, nil)
	exchange("POST", "/admin/v1/apps/"+e.app+"/users/"+s.User.ID+"/block", e.adminToken, nil)
	exchange("POST", "/admin/v1/apps/"+e.app+"/users/"+s.User.ID+"/unblock", e.adminToken, nil)
	exchange("GET", "/admin/v1/apps/"+e.app+"/users/unope", e.adminToken, nil)
	for range 4 { // the last one over the limit: 429 with Retry-After
		exchange("POST", base+"/signin", "", authapi.Credentials{Email: email, Password: "wrong-password"})
	}
	exchange("POST", "/v1/apps/nope/auth/signin", "", authapi.Credentials{Email: email, Password: "password-1"})
}
