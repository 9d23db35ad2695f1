package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/seal"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/services/auth/authtest"
	"github.com/roomcast/roomcast/services/auth/internal/abuse"
	"github.com/roomcast/roomcast/services/auth/internal/accounts"
	"github.com/roomcast/roomcast/services/auth/internal/mail"
	"github.com/roomcast/roomcast/services/auth/internal/online"
	"github.com/roomcast/roomcast/services/auth/internal/store"
)

// usersServer is an auth API with accounts over a fresh database and
// Redis prefix, mails captured, an app "shop" with a key and a policy.
type usersServer struct {
	url    string
	mail   *mail.Capture
	store  *store.Store
	key    authapi.Key
	logs   *lockedBuffer
	online *online.Tracker
	rdb    *redis.Client
	prefix string
}

// roomy limits: none of the tests below reaches them unless it means to.
var roomy = accounts.Limits{
	SignInAccount: abuse.Rate{N: 100, Period: time.Hour}, SignInIP: abuse.Rate{N: 1000, Period: time.Hour},
	CodeAccount: abuse.Rate{N: 100, Period: time.Hour}, CodeIP: abuse.Rate{N: 1000, Period: time.Hour},
	MailAccount: abuse.Rate{N: 100, Period: time.Hour}, MailIP: abuse.Rate{N: 1000, Period: time.Hour},
	SignupIP: abuse.Rate{N: 1000, Period: time.Hour}, RefreshIP: abuse.Rate{N: 1000, Period: time.Hour},
}

func newUsersServer(t *testing.T, limits accounts.Limits, policy authapi.UserPolicy) *usersServer {
	t.Helper()
	pool := authtest.Pool(t)
	ctx := context.Background()
	rdb, prefix := testenv.Redis(t)
	sealer, _ := seal.New(bytes.Repeat([]byte{5}, 32))
	us := &usersServer{mail: &mail.Capture{}, store: store.New(pool, sealer), logs: &lockedBuffer{}, rdb: rdb, prefix: prefix}
	if _, err := us.store.RotateSigningKeyIfOlder(ctx, 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(us.logs, nil))
	acc := accounts.New(us.store, rdb, sealer, us.mail, accounts.Config{CodeAttempts: 3, Limits: limits, Prefix: prefix}, log)
	us.online = online.New(rdb, prefix, accounts.IsUserID)
	mux := http.NewServeMux()
	New(Config{
		Store: us.store, AdminToken: adminToken, ServiceToken: serviceToken, Log: log, Registry: prometheus.NewRegistry(),
		TokenDefaultTTL: time.Hour, TokenMaxTTL: 24 * time.Hour, SigningKeyOverlap: 25 * time.Hour,
		Accounts: acc, Online: us.online,
	}).Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	us.url = srv.URL

	if r := us.do(t, "POST", "/admin/v1/apps", adminToken, authapi.CreateApp{ID: "shop"}); r.status != 201 {
		t.Fatalf("create app: %d %s", r.status, r.raw)
	}
	r := us.do(t, "POST", "/admin/v1/apps/shop/keys", adminToken, authapi.CreateKey{Caps: token.Capabilities{
		"chat.*": {token.OpJoin, token.OpPublish, token.OpPresence}, "user.*": {token.OpJoin}}})
	if r.status != 201 || json.Unmarshal(r.raw, &us.key) != nil {
		t.Fatalf("create key: %d %s", r.status, r.raw)
	}
	policy.Key = us.key.ID
	if policy.Caps == nil {
		policy.Caps = token.Capabilities{"chat.*": {token.OpJoin, token.OpPublish}, "user.{user}": {token.OpJoin}}
	}
	if r := us.do(t, "PUT", "/admin/v1/apps/shop/user-policy", adminToken, policy); r.status != 200 {
		t.Fatalf("put policy: %d %s", r.status, r.raw)
	}
	return us
}

func (us *usersServer) do(t *testing.T, method, path, cred string, body any) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, _ := http.NewRequest(method, us.url+path, rd)
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	req.Header.Set("User-Agent", "users-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, raw: raw, header: resp.Header}
}

const up = "/v1/apps/shop/auth"

// code is the newest code mailed to email for kind.
func (us *usersServer) code(t *testing.T, email string, kind mail.Kind) string {
	t.Helper()
	m, ok := us.mail.Last(email, kind)
	if !ok || len(m.Code) != 6 {
		t.Fatalf("no %s code mailed to %s (mails: %+v)", kind, email, us.mail.Sent())
	}
	return m.Code
}

func session(t *testing.T, r response) authapi.SignInResult {
	t.Helper()
	var s authapi.SignInResult
	if r.status != 200 || json.Unmarshal(r.raw, &s) != nil {
		t.Fatalf("want a session: %d %s", r.status, r.raw)
	}
	if !s.MFARequired && (s.AccessToken == "" || s.RefreshToken == "" || s.SessionID == "" || s.User == nil) {
		t.Fatalf("incomplete session: %s", r.raw)
	}
	return s
}

func want(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	if r.status != status || (code != "" && r.code() != code) {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, r.raw, status, code)
	}
}

// signUp signs email up and verifies it, returning the first session.
func (us *usersServer) signUp(t *testing.T, email, pw string) authapi.SignInResult {
	t.Helper()
	want(t, "sign-up", us.do(t, "POST", up+"/signup", "", authapi.Credentials{Email: email, Password: pw}), 202, "")
	return session(t, us.do(t, "POST", up+"/verify", "", authapi.CodeRequest{Email: email, Code: us.code(t, email, mail.KindVerify)}))
}

// verifyToken checks an access token the way a gateway does.
func (us *usersServer) verifyToken(t *testing.T, tok string) *token.Claims {
	t.Helper()
	keys, err := us.store.PublishedSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ring := []token.Key{{App: "shop", ID: us.key.ID, Caps: us.key.Caps}}
	for _, k := range keys {
		ring = append(ring, token.Key{ID: k.ID, Public: k.Public})
	}
	v := token.Verifier{Keys: token.NewStaticKeyring(ring...)}
	c, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("a gateway would refuse the access token: %v", err)
	}
	return c
}

func TestUserSessionLifecycle(t *testing.T) {
	t.Parallel()
	us := newUsersServer(t, roomy, authapi.UserPolicy{Signup: true})
	first := us.signUp(t, "Ada@Example.com", "correct horse")
	if !first.User.EmailVerified || !accounts.IsUserID(first.User.ID) {
		t.Fatalf("user after verify: %+v", first.User)
	}
	claims := us.verifyToken(t, first.AccessToken)
	if claims.Subject != first.User.ID || claims.APIKey != us.key.ID || claims.App != "shop" ||
		!claims.Caps.Allows("user."+first.User.ID, token.OpJoin) || claims.Caps.Allows("user.someone-else", token.OpJoin) {
		t.Fatalf("claims: %+v", claims)
	}

	// Sign in again, with another case of the email.
	s := session(t, us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "ada@example.COM", Password: "correct horse"}))
	if s.User.ID != first.User.ID || s.SessionID == first.SessionID {
		t.Fatalf("second sign-in: %+v", s)
	}
	r := us.do(t, "GET", up+"/me", s.AccessToken, nil)
	if r.status != 200 || !strings.Contains(string(r.raw), first.User.ID) {
		t.Fatalf("me: %d %s", r.status, r.raw)
	}
	var list authapi.Sessions
	r = us.do(t, "GET", up+"/sessions", s.AccessToken, nil)
	if json.Unmarshal(r.raw, &list) != nil || len(list.Sessions) != 2 {
		t.Fatalf("sessions: %s", r.raw)
	}
	for _, se := range list.Sessions {
		if se.Current != (se.ID == s.SessionID) || se.UserAgent != "users-test" || se.IP == "" {
			t.Fatalf("session %+v", se)
		}
	}

	// Refresh: same session, new tokens; the old access token stays valid
	// until it expires, the old refresh token does not.
	n := session(t, us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: s.RefreshToken}))
	if n.SessionID != s.SessionID || n.RefreshToken == s.RefreshToken || n.AccessToken == s.AccessToken {
		t.Fatalf("refresh: %+v", n)
	}
	us.verifyToken(t, n.AccessToken)

	// Revoke the first session from the second.
	want(t, "revoke session", us.do(t, "DELETE", up+"/sessions/"+first.SessionID, n.AccessToken, nil), 204, "")
	want(t, "revoked session's access token", us.do(t, "GET", up+"/me", first.AccessToken, nil), 401, "invalid_credentials")
	want(t, "revoked session's refresh", us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: first.RefreshToken}), 401, "invalid_credentials")
	want(t, "revoke someone else's", us.do(t, "DELETE", up+"/sessions/snope", n.AccessToken, nil), 404, "not_found")

	// Sign out: the refresh token no longer works.
	want(t, "sign-out", us.do(t, "POST", up+"/signout", n.AccessToken, nil), 204, "")
	want(t, "refresh after sign-out", us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: n.RefreshToken}), 401, "invalid_credentials")
	want(t, "me after sign-out", us.do(t, "GET", up+"/me", n.AccessToken, nil), 401, "invalid_credentials")

	// Sign out by refresh token.
	s3 := session(t, us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "ada@example.com", Password: "correct horse"}))
	want(t, "sign-out by refresh token", us.do(t, "POST", up+"/signout", "", authapi.RefreshRequest{RefreshToken: s3.RefreshToken}), 204, "")
	want(t, "refresh after sign-out", us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: s3.RefreshToken}), 401, "invalid_credentials")

	// Codes, passwords and tokens never reach the log.
	for _, secret := range []string{"correct horse", s.RefreshToken, s.AccessToken, n.RefreshToken} {
		if strings.Contains(us.logs.String(), secret) {
			t.Fatalf("a secret reached the log: %s", token.Fingerprint(secret))
		}
	}
}

func TestRefreshReuseRevokesTheFamily(t *testing.T) {
	t.Parallel()
	us := newUsersServer(t, roomy, authapi.UserPolicy{Signup: true})
	s := us.signUp(t, "reuse@example.com", "password-1")
	n1 := session(t, us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: s.RefreshToken}))
	n2 := session(t, us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: n1.RefreshToken}))
	// The thief replays the first token: the whole family goes.
	want(t, "reused refresh token", us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: s.RefreshToken}), 401, "refresh_reused")
	want(t, "the family's newest refresh token", us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: n2.RefreshToken}), 401, "invalid_credentials")
	want(t, "the family's access token at the auth service", us.do(t, "GET", up+"/me", n2.AccessToken, nil), 401, "invalid_credentials")
	want(t, "garbage refresh token", us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: "rt_nope"}), 401, "invalid_credentials")
	// Other sessions of the user are untouched.
	other := session(t, us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "reuse@example.com", Password: "password-1"}))
	session(t, us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: other.RefreshToken}))
}

// Unknown and known emails get byte-identical answers on every endpoint
// that takes an email.
func TestNoEnumeration(t *testing.T) {
	t.Parallel()
	us := newUsersServer(t, roomy, authapi.UserPolicy{Signup: true})
	us.signUp(t, "known@example.com", "password-1")
	cases := []struct {
		path string
		body func(email string) any
	}{
		{"/signup", func(e string) any { return authapi.Credentials{Email: e, Password: "password-2"} }},
		{"/verify/resend", func(e string) any { return authapi.EmailRequest{Email: e} }},
		{"/signin", func(e string) any { return authapi.Credentials{Email: e, Password: "wrong-password"} }},
		{"/signin/code", func(e string) any { return authapi.EmailRequest{Email: e} }},
		{"/signin/code/verify", func(e string) any { return authapi.CodeRequest{Email: e, Code: "000000"} }},
		{"/verify", func(e string) any { return authapi.CodeRequest{Email: e, Code: "000000"} }},
		{"/password/reset", func(e string) any { return authapi.EmailRequest{Email: e} }},
		{"/password/reset/confirm", func(e string) any {
			return authapi.ResetConfirm{Email: e, Code: "000000", Password: "password-3"}
		}},
	}
	for _, c := range cases {
		known := us.do(t, "POST", up+c.path, "", c.body("known@example.com"))
		unknown := us.do(t, "POST", up+c.path, "", c.body("unknown@example.com"))
		if known.status != unknown.status || !bytes.Equal(known.raw, unknown.raw) || known.status >= 500 {
			t.Errorf("%s: known %d %s, unknown %d %s", c.path, known.status, known.raw, unknown.status, unknown.raw)
		}
	}
	// The owner of the known address heard about the second sign-up; the
	// unknown address got a code (it is a new account now).
	if _, ok := us.mail.Last("known@example.com", mail.KindExisting); !ok {
		t.Fatal("no 'you already have an account' mail")
	}
}

func TestBruteForceIsThrottled(t *testing.T) {
	t.Parallel()
	limits := roomy
	limits.SignInAccount = abuse.Rate{N: 5, Period: time.Hour}
	limits.CodeAccount = abuse.Rate{N: 5, Period: time.Hour}
	us := newUsersServer(t, limits, authapi.UserPolicy{Signup: true})
	us.signUp(t, "victim@example.com", "password-1")
	for i := range 5 {
		want(t, "wrong password", us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "victim@example.com", Password: "guess-" + string(rune('a'+i))}), 401, "invalid_credentials")
	}
	r := us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "victim@example.com", Password: "password-1"})
	want(t, "6th sign-in", r, 429, "rate_limited")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	// The same for an unknown email: throttling tells nothing either.
	for range 5 {
		us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "ghost@example.com", Password: "guess-xx"})
	}
	want(t, "6th sign-in of an unknown email", us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "ghost@example.com", Password: "x"}), 429, "rate_limited")

	// Codes: 3 wrong tries void the code (CodeAttempts), and the account
	// is throttled after 5 checks whatever the codes.
	want(t, "sign-in code", us.do(t, "POST", up+"/signin/code", "", authapi.EmailRequest{Email: "victim@example.com"}), 202, "")
	code := us.code(t, "victim@example.com", mail.KindSignIn)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for range 3 {
		want(t, "wrong code", us.do(t, "POST", up+"/signin/code/verify", "", authapi.CodeRequest{Email: "victim@example.com", Code: wrong}), 401, "invalid_credentials")
	}
	want(t, "right code after 3 wrong ones", us.do(t, "POST", up+"/signin/code/verify", "", authapi.CodeRequest{Email: "victim@example.com", Code: code}), 401, "invalid_credentials")
	// 5 checks so far, counting the verification at sign-up.
	want(t, "6th check", us.do(t, "POST", up+"/signin/code/verify", "", authapi.CodeRequest{Email: "victim@example.com", Code: wrong}), 429, "rate_limited")
}

func TestSignInCodeAndPasswordReset(t *testing.T) {
	t.Parallel()
	us := newUsersServer(t, roomy, authapi.UserPolicy{Signup: true})
	old := us.signUp(t, "reset@example.com", "password-1")
	want(t, "sign-in code", us.do(t, "POST", up+"/signin/code", "", authapi.EmailRequest{Email: "reset@example.com"}), 202, "")
	byCode := session(t, us.do(t, "POST", up+"/signin/code/verify", "", authapi.CodeRequest{Email: "reset@example.com", Code: us.code(t, "reset@example.com", mail.KindSignIn)}))
	if byCode.User.ID != old.User.ID {
		t.Fatal("sign-in code signed in another user")
	}
	want(t, "reset", us.do(t, "POST", up+"/password/reset", "", authapi.EmailRequest{Email: "reset@example.com"}), 202, "")
	code := us.code(t, "reset@example.com", mail.KindReset)
	want(t, "weak new password", us.do(t, "POST", up+"/password/reset/confirm", "", authapi.ResetConfirm{Email: "reset@example.com", Code: code, Password: "short"}), 400, "weak_password")
	s := session(t, us.do(t, "POST", up+"/password/reset/confirm", "", authapi.ResetConfirm{Email: "reset@example.com", Code: code, Password: "password-2"}))
	want(t, "a code works once", us.do(t, "POST", up+"/password/reset/confirm", "", authapi.ResetConfirm{Email: "reset@example.com", Code: code, Password: "password-3"}), 401, "invalid_credentials")
	for _, se := range []authapi.SignInResult{old, byCode} {
		want(t, "refresh of a session from before the reset", us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: se.RefreshToken}), 401, "invalid_credentials")
	}
	session(t, us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: s.RefreshToken}))
	want(t, "old password", us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "reset@example.com", Password: "password-1"}), 401, "invalid_credentials")
	session(t, us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "reset@example.com", Password: "password-2"}))
}

func TestUnverifiedAndBlockedUsers(t *testing.T) {
	t.Parallel()
	us := newUsersServer(t, roomy, authapi.UserPolicy{Signup: true})
	want(t, "sign-up", us.do(t, "POST", up+"/signup", "", authapi.Credentials{Email: "slow@example.com", Password: "password-1"}), 202, "")
	want(t, "unverified, wrong password", us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "slow@example.com", Password: "password-x"}), 401, "invalid_credentials")
	want(t, "unverified, right password", us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "slow@example.com", Password: "password-1"}), 403, "email_not_verified")
	session(t, us.do(t, "POST", up+"/verify", "", authapi.CodeRequest{Email: "slow@example.com", Code: us.code(t, "slow@example.com", mail.KindVerify)}))

	s := us.signUp(t, "bad@example.com", "password-1")
	r := us.do(t, "POST", "/admin/v1/apps/shop/users/"+s.User.ID+"/block", adminToken, nil)
	if r.status != 200 || !strings.Contains(string(r.raw), `"blocked":true`) {
		t.Fatalf("block: %d %s", r.status, r.raw)
	}
	want(t, "blocked sign-in", us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "bad@example.com", Password: "password-1"}), 401, "invalid_credentials")
	want(t, "blocked refresh", us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: s.RefreshToken}), 401, "invalid_credentials")
	want(t, "blocked bearer", us.do(t, "GET", up+"/me", s.AccessToken, nil), 401, "invalid_credentials")
	want(t, "blocked sign-in code", us.do(t, "POST", up+"/signin/code", "", authapi.EmailRequest{Email: "bad@example.com"}), 202, "")
	if _, ok := us.mail.Last("bad@example.com", mail.KindSignIn); ok {
		t.Fatal("a blocked user got a sign-in code")
	}
	want(t, "unblock", us.do(t, "POST", "/admin/v1/apps/shop/users/"+s.User.ID+"/unblock", adminToken, nil), 200, "")
	want(t, "refresh of a session revoked by the block", us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: s.RefreshToken}), 401, "invalid_credentials")
	session(t, us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "bad@example.com", Password: "password-1"}))

	// Admin: list pages, get shows online status.
	r = us.do(t, "GET", "/admin/v1/apps/shop/users?limit=1", adminToken, nil)
	var page authapi.Users
	if json.Unmarshal(r.raw, &page) != nil || len(page.Users) != 1 || page.Next == "" {
		t.Fatalf("page 1: %s", r.raw)
	}
	r = us.do(t, "GET", "/admin/v1/apps/shop/users?limit=1&after="+page.Next, adminToken, nil)
	var page2 authapi.Users
	if json.Unmarshal(r.raw, &page2) != nil || len(page2.Users) != 1 || page2.Next != "" || page2.Users[0].ID == page.Users[0].ID {
		t.Fatalf("page 2: %s", r.raw)
	}
	r = us.do(t, "GET", "/admin/v1/apps/shop/users/"+s.User.ID, adminToken, nil)
	if r.status != 200 || !strings.Contains(string(r.raw), `"online":false`) || !strings.Contains(string(r.raw), `"blocked":false`) {
		t.Fatalf("get user: %d %s", r.status, r.raw)
	}
	want(t, "no such user", us.do(t, "GET", "/admin/v1/apps/shop/users/unope", adminToken, nil), 404, "not_found")
	want(t, "users without admin", us.do(t, "GET", "/admin/v1/apps/shop/users", "", nil), 401, "unauthorized")
}

func TestAnonymousUpgradeKeepsTheID(t *testing.T) {
	t.Parallel()
	us := newUsersServer(t, roomy, authapi.UserPolicy{Signup: true, Anonymous: true})
	anon := session(t, us.do(t, "POST", up+"/anonymous", "", nil))
	if !anon.User.Anonymous || anon.User.Email != "" {
		t.Fatalf("anonymous user: %+v", anon.User)
	}
	us.verifyToken(t, anon.AccessToken)
	us.signUp(t, "taken@example.com", "password-1")
	// Upgrading to a taken address answers the same and changes nothing.
	want(t, "upgrade to a taken email", us.do(t, "POST", up+"/upgrade", anon.AccessToken, authapi.Credentials{Email: "taken@example.com", Password: "password-2"}), 202, "")
	want(t, "upgrade", us.do(t, "POST", up+"/upgrade", anon.AccessToken, authapi.Credentials{Email: "anon@example.com", Password: "password-2"}), 202, "")
	v := session(t, us.do(t, "POST", up+"/verify", "", authapi.CodeRequest{Email: "anon@example.com", Code: us.code(t, "anon@example.com", mail.KindVerify)}))
	if v.User.ID != anon.User.ID || v.User.Anonymous || v.User.Email != "anon@example.com" || !v.User.EmailVerified {
		t.Fatalf("after upgrade: %+v (was %s)", v.User, anon.User.ID)
	}
	s := session(t, us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "anon@example.com", Password: "password-2"}))
	if s.User.ID != anon.User.ID {
		t.Fatal("sign-in after upgrade: another user")
	}
	want(t, "upgrade a normal user", us.do(t, "POST", up+"/upgrade", s.AccessToken, authapi.Credentials{Email: "x@example.com", Password: "password-2"}), 409, "conflict")

	closed := newUsersServer(t, roomy, authapi.UserPolicy{})
	want(t, "anonymous when the policy forbids it", closed.do(t, "POST", up+"/anonymous", "", nil), 403, "signup_disabled")
	want(t, "sign-up when the policy forbids it", closed.do(t, "POST", up+"/signup", "", authapi.Credentials{Email: "a@example.com", Password: "password-1"}), 403, "signup_disabled")
}

func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTOTPSignIn(t *testing.T) {
	t.Parallel()
	us := newUsersServer(t, roomy, authapi.UserPolicy{Signup: true})
	s := us.signUp(t, "mfa@example.com", "password-1")
	r := us.do(t, "POST", up+"/mfa/totp/enroll", s.AccessToken, nil)
	var e authapi.TOTPEnrollment
	if r.status != 200 || json.Unmarshal(r.raw, &e) != nil || e.Secret == "" || !strings.HasPrefix(e.OTPAuthURI, "otpauth://totp/") || len(e.QRPNG) == 0 {
		t.Fatalf("enroll: %d %.200s", r.status, r.raw)
	}
	now := time.Now()
	want(t, "confirm with a wrong code", us.do(t, "POST", up+"/mfa/totp/confirm", s.AccessToken, authapi.TOTPCode{Code: "000000x"}), 401, "mfa_invalid")
	r = us.do(t, "POST", up+"/mfa/totp/confirm", s.AccessToken, authapi.TOTPCode{Code: totpCode(t, e.Secret, now)})
	var rc authapi.RecoveryCodes
	if r.status != 200 || json.Unmarshal(r.raw, &rc) != nil || len(rc.RecoveryCodes) != 10 {
		t.Fatalf("confirm: %d %s", r.status, r.raw)
	}
	want(t, "enroll again", us.do(t, "POST", up+"/mfa/totp/enroll", s.AccessToken, nil), 409, "conflict")

	// Sign-in now needs the second factor.
	first := session(t, us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "mfa@example.com", Password: "password-1"}))
	if !first.MFARequired || first.MFAToken == "" || first.AccessToken != "" || len(first.Methods) != 1 || first.Methods[0] != "totp" {
		t.Fatalf("sign-in with TOTP on: %+v", first)
	}
	want(t, "the code used to confirm, replayed", us.do(t, "POST", up+"/mfa/challenge", "", authapi.MFAChallenge{MFAToken: first.MFAToken, Code: totpCode(t, e.Secret, now)}), 401, "mfa_invalid")
	next := totpCode(t, e.Secret, now.Add(30*time.Second))
	done := session(t, us.do(t, "POST", up+"/mfa/challenge", "", authapi.MFAChallenge{MFAToken: first.MFAToken, Code: next}))
	if done.User.ID != s.User.ID || len(done.User.MFA) != 1 {
		t.Fatalf("after challenge: %+v", done.User)
	}
	want(t, "an mfa_token works once", us.do(t, "POST", up+"/mfa/challenge", "", authapi.MFAChallenge{MFAToken: first.MFAToken, Code: next}), 401, "mfa_invalid")

	// A recovery code works once.
	second := session(t, us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "mfa@example.com", Password: "password-1"}))
	session(t, us.do(t, "POST", up+"/mfa/challenge", "", authapi.MFAChallenge{MFAToken: second.MFAToken, RecoveryCode: strings.ToUpper(rc.RecoveryCodes[0])}))
	third := session(t, us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "mfa@example.com", Password: "password-1"}))
	want(t, "a used recovery code", us.do(t, "POST", up+"/mfa/challenge", "", authapi.MFAChallenge{MFAToken: third.MFAToken, RecoveryCode: rc.RecoveryCodes[0]}), 401, "mfa_invalid")
	session(t, us.do(t, "POST", up+"/mfa/challenge", "", authapi.MFAChallenge{MFAToken: third.MFAToken, RecoveryCode: rc.RecoveryCodes[1]}))

	// An mfa_token takes 5 tries: then even a good recovery code is
	// refused (and stays unused).
	fourth := session(t, us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "mfa@example.com", Password: "password-1"}))
	for range 5 {
		want(t, "wrong code", us.do(t, "POST", up+"/mfa/challenge", "", authapi.MFAChallenge{MFAToken: fourth.MFAToken, Code: "000000"}), 401, "mfa_invalid")
	}
	want(t, "6th try of an mfa_token", us.do(t, "POST", up+"/mfa/challenge", "", authapi.MFAChallenge{MFAToken: fourth.MFAToken, RecoveryCode: rc.RecoveryCodes[3]}), 401, "mfa_invalid")
	fifth := session(t, us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "mfa@example.com", Password: "password-1"}))
	session(t, us.do(t, "POST", up+"/mfa/challenge", "", authapi.MFAChallenge{MFAToken: fifth.MFAToken, RecoveryCode: rc.RecoveryCodes[3]}))

	// Disabling takes a code; then sign-in is one step again.
	want(t, "disable without a valid code", us.do(t, "POST", up+"/mfa/totp/disable", done.AccessToken, authapi.TOTPCode{Code: "123"}), 401, "mfa_invalid")
	want(t, "disable", us.do(t, "POST", up+"/mfa/totp/disable", done.AccessToken, authapi.TOTPCode{Code: rc.RecoveryCodes[2]}), 204, "")
	if s := session(t, us.do(t, "POST", up+"/signin", "", authapi.Credentials{Email: "mfa@example.com", Password: "password-1"})); s.MFARequired {
		t.Fatal("MFA still required after disable")
	}
}

// With mfa_required in the policy, a user without TOTP enrolls with the
// mfa_token before getting a session.
func TestPolicyRequiresMFA(t *testing.T) {
	t.Parallel()
	us := newUsersServer(t, roomy, authapi.UserPolicy{Signup: true, MFARequired: true})
	want(t, "sign-up", us.do(t, "POST", up+"/signup", "", authapi.Credentials{Email: "must@example.com", Password: "password-1"}), 202, "")
	v := session(t, us.do(t, "POST", up+"/verify", "", authapi.CodeRequest{Email: "must@example.com", Code: us.code(t, "must@example.com", mail.KindVerify)}))
	if !v.MFARequired || len(v.Methods) != 1 || v.Methods[0] != "totp_enroll" {
		t.Fatalf("verify under mfa_required: %+v", v)
	}
	want(t, "challenge without TOTP", us.do(t, "POST", up+"/mfa/challenge", "", authapi.MFAChallenge{MFAToken: v.MFAToken, Code: "123456"}), 401, "mfa_invalid")
	r := us.do(t, "POST", up+"/mfa/totp/enroll", "", authapi.TOTPEnroll{MFAToken: v.MFAToken})
	var e authapi.TOTPEnrollment
	if r.status != 200 || json.Unmarshal(r.raw, &e) != nil {
		t.Fatalf("enroll with mfa_token: %d %s", r.status, r.raw)
	}
	r = us.do(t, "POST", up+"/mfa/totp/confirm", "", authapi.TOTPCode{MFAToken: v.MFAToken, Code: totpCode(t, e.Secret, time.Now())})
	var rc authapi.RecoveryCodes
	if r.status != 200 || json.Unmarshal(r.raw, &rc) != nil || rc.Session == nil || rc.Session.AccessToken == "" {
		t.Fatalf("confirm with mfa_token: %d %s", r.status, r.raw)
	}
	us.verifyToken(t, rc.Session.AccessToken)
}

func TestUserPolicyValidation(t *testing.T) {
	t.Parallel()
	us := newUsersServer(t, roomy, authapi.UserPolicy{Signup: true})
	cases := []struct {
		name string
		p    authapi.UserPolicy
	}{
		{"caps beyond the key", authapi.UserPolicy{Key: us.key.ID, Caps: token.Capabilities{"admin.*": {token.OpJoin}}}},
		{"{user} beyond the key", authapi.UserPolicy{Key: us.key.ID, Caps: token.Capabilities{"user.{user}": {token.OpPublish}}}},
		{"unknown key", authapi.UserPolicy{Key: "knope", Caps: token.Capabilities{"chat.*": {token.OpJoin}}}},
		{"no caps", authapi.UserPolicy{Key: us.key.ID}},
		{"bad ttl", authapi.UserPolicy{Key: us.key.ID, Caps: token.Capabilities{"chat.*": {token.OpJoin}}, AccessTTL: "forever"}},
		{"relative redirect", authapi.UserPolicy{Key: us.key.ID, Caps: token.Capabilities{"chat.*": {token.OpJoin}}, RedirectURIs: []string{"/cb"}}},
	}
	for _, c := range cases {
		want(t, c.name, us.do(t, "PUT", "/admin/v1/apps/shop/user-policy", adminToken, c.p), 400, "bad_request")
	}
	r := us.do(t, "GET", "/admin/v1/apps/shop/user-policy", adminToken, nil)
	if r.status != 200 || !strings.Contains(string(r.raw), `"access_ttl":"5m0s"`) {
		t.Fatalf("get policy: %d %s", r.status, r.raw)
	}
	want(t, "app without policy", us.do(t, "POST", "/v1/apps/other/auth/signin", "", authapi.Credentials{Email: "a@b.c", Password: "password-1"}), 404, "not_found")

	// Revoking the policy's key stops user tokens: the app-wide kill switch.
	s := us.signUp(t, "kill@example.com", "password-1")
	want(t, "revoke key", us.do(t, "POST", "/admin/v1/apps/shop/keys/"+us.key.ID+"/revoke", adminToken, nil), 200, "")
	want(t, "refresh after the key's revocation", us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: s.RefreshToken}), 403, "forbidden")
	// A refresh that failed rotated nothing: with a working key again, the
	// same refresh token still works (it is not taken for reuse).
	r = us.do(t, "POST", "/admin/v1/apps/shop/keys", adminToken, authapi.CreateKey{Caps: us.key.Caps})
	var k2 authapi.Key
	if r.status != 201 || json.Unmarshal(r.raw, &k2) != nil {
		t.Fatalf("new key: %d %s", r.status, r.raw)
	}
	want(t, "policy with the new key", us.do(t, "PUT", "/admin/v1/apps/shop/user-policy", adminToken,
		authapi.UserPolicy{Key: k2.ID, Signup: true, Caps: token.Capabilities{"chat.*": {token.OpJoin}}}), 200, "")
	session(t, us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: s.RefreshToken}))
}
