package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/seal"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/services/auth/authtest"
	"github.com/roomcast/roomcast/services/auth/authtest/oidctest"
	"github.com/roomcast/roomcast/services/auth/internal/abuse"
	"github.com/roomcast/roomcast/services/auth/internal/oauthlogin"
	"github.com/roomcast/roomcast/services/auth/internal/store"
)

const (
	oauthAppRedirect = "https://app.example.com/auth/callback"
	opClientSecret   = "op-client-secret-0123456789"
)

type oauthServer struct {
	*testServer
	logs *lockedBuffer
	flow *oauthlogin.Flow
	op   *oidctest.OP
}

// newOAuthServer runs the API with OAuth sign-in (PublicURL set to its own
// address), app "demo" with a user policy allowing oauthAppRedirect, and
// an OpenID Provider whose client "roomcast" may redirect to the API's
// callback for provider "corp".
func newOAuthServer(t *testing.T, limit ...abuse.Rate) *oauthServer {
	t.Helper()
	pool := authtest.Pool(t)
	ctx := context.Background()
	sealer, _ := seal.New(bytes.Repeat([]byte{3}, 32))
	st := store.New(pool, sealer)
	rdb, prefix := testenv.Redis(t)

	ts := &testServer{store: st, pool: pool}
	logs := &lockedBuffer{}
	srv := httptest.NewUnstartedServer(nil)
	ts.url = "http://" + srv.Listener.Addr().String()
	flow := oauthlogin.New(oauthlogin.Config{
		Redis: rdb, Prefix: prefix, Providers: OAuthStore{Store: st}, Policies: OAuthStore{Store: st},
	})
	mux := http.NewServeMux()
	var limiter *abuse.Limiter
	if len(limit) > 0 {
		limiter = abuse.New(rdb, prefix)
	} else {
		limit = []abuse.Rate{{}}
	}
	New(Config{
		Store: st, AdminToken: adminToken, ServiceToken: serviceToken,
		Log:             slog.New(slog.NewJSONHandler(logs, nil)),
		Registry:        prometheus.NewRegistry(),
		TokenDefaultTTL: time.Hour, TokenMaxTTL: 24 * time.Hour, SigningKeyOverlap: 25 * time.Hour,
		OAuth: flow, PublicURL: ts.url + "/", OAuthLimiter: limiter, OAuthLimitIP: limit[0],
	}).Mount(mux)
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)

	if _, err := st.CreateApp(ctx, "demo", ""); err != nil {
		t.Fatal(err)
	}
	key, err := st.CreateKey(ctx, "demo", "users", token.Capabilities{"chat.*": {token.OpJoin}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutUserPolicy(ctx, store.UserPolicy{
		App: "demo", KeyID: key.ID, Caps: token.Capabilities{"chat.*": {token.OpJoin}},
		AccessTTL: 5 * time.Minute, RefreshTTL: time.Hour, RedirectURIs: []string{oauthAppRedirect},
	}); err != nil {
		t.Fatal(err)
	}
	op := oidctest.StartOP(t, "roomcast", opClientSecret, ts.url+"/v1/apps/demo/auth/oauth/corp/callback")
	return &oauthServer{testServer: ts, logs: logs, flow: flow, op: op}
}

// lockedBuffer lets the server log while the test reads the log.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (s *oauthServer) putCorp(t *testing.T) {
	t.Helper()
	r := s.do(t, "PUT", "/admin/v1/apps/demo/oauth-providers/corp", adminToken, authapi.PutOAuthProvider{
		Kind: "oidc", Issuer: s.op.Issuer, ClientID: "roomcast", ClientSecret: opClientSecret, Scopes: []string{"openid", "email"},
	})
	if r.status != 201 {
		t.Fatalf("put provider: %d %s", r.status, r.raw)
	}
}

// get sends a GET from browser b (nil: a fresh one), following no
// redirects.
func get(t *testing.T, b *oidctest.Browser, u string) *http.Response {
	t.Helper()
	if b == nil {
		b = oidctest.NewBrowser(t)
	}
	resp, err := b.Client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func errCode(t *testing.T, resp *http.Response) string {
	t.Helper()
	raw, _ := io.ReadAll(resp.Body)
	var e authapi.Error
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("%d %s: not a JSON error", resp.StatusCode, raw)
	}
	return string(e.Error.Code)
}

func TestOAuthProvidersAdmin(t *testing.T) {
	t.Parallel()
	s := newOAuthServer(t)
	base := "/admin/v1/apps/demo/oauth-providers"
	if r := s.do(t, "PUT", base+"/corp", "", authapi.PutOAuthProvider{Kind: "oidc"}); r.status != 401 {
		t.Fatalf("without the admin credential: %d", r.status)
	}
	bad := map[string]any{
		"unknown kind":           authapi.PutOAuthProvider{Kind: "saml", ClientID: "c"},
		"oidc without issuer":    authapi.PutOAuthProvider{Kind: "oidc", ClientID: "c"},
		"issuer not a URL":       authapi.PutOAuthProvider{Kind: "oidc", Issuer: "accounts.example.com", ClientID: "c"},
		"oidc with endpoints":    authapi.PutOAuthProvider{Kind: "oidc", Issuer: "https://id.example.com", ClientID: "c", TokenURL: "https://x/t"},
		"github with issuer":     authapi.PutOAuthProvider{Kind: "github", Issuer: "https://id.example.com", ClientID: "c"},
		"github bad URL":         authapi.PutOAuthProvider{Kind: "github", ClientID: "c", UserURL: "ftp://x/user"},
		"no client id":           authapi.PutOAuthProvider{Kind: "oidc", Issuer: "https://id.example.com"},
		"scope with a space":     authapi.PutOAuthProvider{Kind: "oidc", Issuer: "https://id.example.com", ClientID: "c", Scopes: []string{"a b"}},
		"unknown field":          `{"kind":"oidc","issuer":"https://id.example.com","client_id":"c","secret":"x"}`,
		"provider id with a dot": nil,
	}
	for name, body := range bad {
		path := base + "/corp"
		if body == nil {
			path, body = base+"/a.b", authapi.PutOAuthProvider{Kind: "oidc", Issuer: "https://id.example.com", ClientID: "c"}
		}
		if r := s.do(t, "PUT", path, adminToken, body); r.status != 400 || r.code() != "bad_request" {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	if r := s.do(t, "PUT", "/admin/v1/apps/nope/oauth-providers/corp", adminToken, authapi.PutOAuthProvider{Kind: "oidc", Issuer: "https://id.example.com", ClientID: "c"}); r.status != 404 {
		t.Fatalf("provider of a missing app: %d %s", r.status, r.raw)
	}

	s.putCorp(t)
	// Replacing it without a secret keeps the secret.
	r := s.do(t, "PUT", base+"/corp", adminToken, authapi.PutOAuthProvider{Kind: "oidc", Issuer: s.op.Issuer, ClientID: "roomcast"})
	var p authapi.OAuthProvider
	if err := json.Unmarshal(r.raw, &p); r.status != 200 || err != nil || !p.HasClientSecret || len(p.Scopes) != 0 {
		t.Fatalf("replace: %d %s", r.status, r.raw)
	}
	if p.CallbackURL != s.url+"/v1/apps/demo/auth/oauth/corp/callback" {
		t.Fatalf("callback_url %q", p.CallbackURL)
	}
	if r := s.do(t, "PUT", base+"/gh", adminToken, authapi.PutOAuthProvider{Kind: "github", ClientID: "gh", ClientSecret: "gh-secret-0123456789"}); r.status != 201 {
		t.Fatalf("github provider: %d %s", r.status, r.raw)
	}
	listed := s.do(t, "GET", base, adminToken, nil)
	r = listed
	var list authapi.OAuthProviders
	if err := json.Unmarshal(r.raw, &list); r.status != 200 || err != nil || len(list.Providers) != 2 || list.Providers[0].ID != "corp" || list.Providers[1].Kind != "github" {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", base+"/gh", adminToken, nil); r.status != 200 || !strings.Contains(string(r.raw), `"has_client_secret":true`) {
		t.Fatalf("get: %d %s", r.status, r.raw)
	}
	if r := s.do(t, "GET", "/admin/v1/apps/nope/oauth-providers", adminToken, nil); r.status != 404 {
		t.Fatalf("list of a missing app: %d", r.status)
	}
	del, _ := http.NewRequest("DELETE", s.url+base+"/gh", nil)
	del.Header.Set("Authorization", "Bearer "+adminToken)
	if resp, err := http.DefaultClient.Do(del); err != nil || resp.StatusCode != 204 {
		t.Fatalf("delete: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if r := s.do(t, "GET", base+"/gh", adminToken, nil); r.status != 404 || r.code() != "not_found" {
		t.Fatalf("deleted provider: %d %s", r.status, r.raw)
	}
	// No secret in any answer or in the log.
	for _, secret := range []string{opClientSecret, "gh-secret-0123456789"} {
		if bytes.Contains(r.raw, []byte(secret)) || bytes.Contains(listed.raw, []byte(secret)) || strings.Contains(s.logs.String(), secret) {
			t.Fatalf("secret %q leaked", secret)
		}
	}
}

func TestOAuthSignInOverHTTP(t *testing.T) {
	t.Parallel()
	s := newOAuthServer(t)
	s.putCorp(t)
	start := s.url + "/v1/apps/demo/auth/oauth/corp/start?redirect_uri=" + url.QueryEscape(oauthAppRedirect)

	// start → provider → login → our callback → the app, with a login code.
	b := oidctest.NewBrowser(t)
	resp := get(t, b, start)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("start: %d %v", resp.StatusCode, resp.Header)
	}
	authURL := resp.Header.Get("Location")
	if !strings.HasPrefix(authURL, s.op.Issuer) {
		t.Fatalf("start redirected to %s, want the provider", authURL)
	}
	// The binder cookie: for the callback only, not for scripts.
	cookies := resp.Cookies()
	if len(cookies) != 1 || !strings.HasPrefix(cookies[0].Name, "rc_oauth_") || !cookies[0].HttpOnly ||
		cookies[0].Path != "/v1/apps/demo/auth/oauth/corp/callback" || cookies[0].SameSite != http.SameSiteLaxMode || cookies[0].MaxAge <= 0 {
		t.Fatalf("start set cookies %v, want one binder cookie", cookies)
	}
	back := b.SignInAtOP(authURL)
	if !strings.HasPrefix(back.String(), s.url+"/v1/apps/demo/auth/oauth/corp/callback?") {
		t.Fatalf("provider redirected to %s, want our callback", back)
	}
	// The callback URL opened in another browser (login CSRF: an
	// attacker's code and state in a victim's browser) fails there...
	if resp := get(t, nil, back.String()); resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "error=oauth_failed") {
		t.Fatalf("callback without the binder cookie: %d to %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// ...and spends the state, so sign in again, in one browser.
	b = oidctest.NewBrowser(t)
	back = b.SignInAtOP(get(t, b, start).Header.Get("Location"))
	resp = get(t, b, back.String())
	loc, _ := resp.Location()
	if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), oauthAppRedirect+"?") || loc.Query().Get("login_code") == "" {
		t.Fatalf("callback: %d to %v", resp.StatusCode, loc)
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatal("the callback's redirect may leak the login code through Referer")
	}
	id, err := s.flow.Redeem(context.Background(), "demo", loc.Query().Get("login_code"))
	if err != nil || id.Subject != oidctest.Subject || id.Email != oidctest.Email || !id.EmailVerified || id.Provider != "corp" {
		t.Fatalf("redeem: %+v %v", id, err)
	}
	if _, err := s.flow.Redeem(context.Background(), "demo", loc.Query().Get("login_code")); err == nil {
		t.Fatal("a login code redeemed twice")
	}

	// The replayed callback (same state and code): a JSON oauth_failed.
	if resp := get(t, b, back.String()); resp.StatusCode != 400 || errCode(t, resp) != "oauth_failed" {
		t.Fatalf("replayed callback: %d", resp.StatusCode)
	}
	// A made-up state: the same.
	if resp := get(t, b, s.url+"/v1/apps/demo/auth/oauth/corp/callback?code=x&state=made-up"); resp.StatusCode != 400 || errCode(t, resp) != "oauth_failed" {
		t.Fatalf("bad state: %d", resp.StatusCode)
	}

	// A nonce the provider got wrong: back to the app with an error.
	s.op.TamperNonce.Store(true)
	b = oidctest.NewBrowser(t)
	resp = get(t, b, b.SignInAtOP(get(t, b, start).Header.Get("Location")).String())
	loc, _ = resp.Location()
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("error") != "oauth_failed" || loc.Query().Get("login_code") != "" {
		t.Fatalf("nonce mismatch: %d to %v", resp.StatusCode, loc)
	}
	if !strings.Contains(s.logs.String(), "nonce does not match") {
		t.Fatal("the log does not say why the sign-in failed")
	}
	for _, secret := range []string{opClientSecret, loc.Query().Get("code")} {
		if secret != "" && strings.Contains(s.logs.String(), secret) {
			t.Fatalf("%q reached the log", secret)
		}
	}
}

func TestOAuthStartErrors(t *testing.T) {
	t.Parallel()
	s := newOAuthServer(t)
	s.putCorp(t)
	cases := []struct {
		name, path string
		status     int
		code       string
	}{
		{"unregistered redirect_uri", "/v1/apps/demo/auth/oauth/corp/start?redirect_uri=" + url.QueryEscape("https://evil.example.com/cb"), 400, "bad_request"},
		{"no redirect_uri", "/v1/apps/demo/auth/oauth/corp/start", 400, "bad_request"},
		{"unknown provider", "/v1/apps/demo/auth/oauth/nope/start?redirect_uri=" + url.QueryEscape(oauthAppRedirect), 404, "not_found"},
		{"app without a policy", "/v1/apps/other/auth/oauth/corp/start?redirect_uri=" + url.QueryEscape(oauthAppRedirect), 404, "not_found"},
	}
	for _, c := range cases {
		resp := get(t, nil, s.url+c.path)
		if code := errCode(t, resp); resp.StatusCode != c.status || code != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, resp.StatusCode, code, c.status, c.code)
		}
	}
}

func TestOAuthLimitPerIP(t *testing.T) {
	t.Parallel()
	s := newOAuthServer(t, abuse.Rate{N: 3, Period: time.Hour})
	s.putCorp(t)
	start := s.url + "/v1/apps/demo/auth/oauth/corp/start?redirect_uri=" + url.QueryEscape(oauthAppRedirect)
	// A start and its callback count one each.
	b := oidctest.NewBrowser(t)
	if resp := get(t, b, b.SignInAtOP(get(t, b, start).Header.Get("Location")).String()); resp.StatusCode != http.StatusFound {
		t.Fatalf("sign-in within the limit: %d", resp.StatusCode)
	}
	if resp := get(t, nil, start); resp.StatusCode != http.StatusFound {
		t.Fatalf("third request: %d", resp.StatusCode)
	}
	for _, u := range []string{start, s.url + "/v1/apps/demo/auth/oauth/corp/callback?state=x&code=y"} {
		resp := get(t, nil, u)
		if code := errCode(t, resp); resp.StatusCode != http.StatusTooManyRequests || code != "rate_limited" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("over the limit: %d %s, Retry-After %q", resp.StatusCode, code, resp.Header.Get("Retry-After"))
		}
	}
}
