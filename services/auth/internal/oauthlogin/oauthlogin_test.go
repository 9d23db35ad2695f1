package oauthlogin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/services/auth/authtest/oidctest"
)

const (
	testApp      = "demo"
	appRedirect  = "https://app.example.com/auth/done?from=test"
	testCallback = "http://127.0.0.1:1/v1/apps/demo/auth/oauth/corp/callback" // never served: the test browser stops there
)

// memProviders and memPolicy are in-memory stand-ins for the store (the
// Flow's own small interfaces; Redis and the providers are real).
type memProviders map[string]Provider

func (m memProviders) OAuthProvider(_ context.Context, app, name string) (Provider, error) {
	p, ok := m[app+"/"+name]
	if !ok {
		return Provider{}, ErrNotFound
	}
	return p, nil
}

type memPolicy map[string][]string

func (m memPolicy) RedirectURIs(_ context.Context, app string) ([]string, error) {
	uris, ok := m[app]
	if !ok {
		return nil, ErrNotFound
	}
	return uris, nil
}

type oidcEnv struct {
	flow *Flow
	op   *oidctest.OP
	rdb  *redis.Client
}

// newOIDCEnv runs an OpenID Provider with client "roomcast" and a Flow
// whose app "demo" has provider "corp" pointing at it.
func newOIDCEnv(t *testing.T) *oidcEnv {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	o := oidctest.StartOP(t, "roomcast", "client-secret-1", testCallback)
	flow := New(Config{
		Redis: rdb, Prefix: prefix,
		Providers: memProviders{testApp + "/corp": {
			App: testApp, Name: "corp", Kind: KindOIDC, Issuer: o.Issuer,
			ClientID: "roomcast", ClientSecret: "client-secret-1", Scopes: []string{"email", "profile"},
		}},
		Policies: memPolicy{testApp: {"https://other.example.com/cb", appRedirect}},
	})
	return &oidcEnv{flow: flow, op: o, rdb: rdb}
}

// start begins a sign-in.
func (e *oidcEnv) start(t *testing.T) Started {
	t.Helper()
	st, err := e.flow.Start(context.Background(), testApp, "corp", appRedirect, testCallback)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// callbackQuery drives a browser through the provider and returns the
// query the provider sent back to our callback.
func callbackQuery(t *testing.T, authURL string) url.Values {
	t.Helper()
	back := oidctest.NewBrowser(t).SignInAtOP(authURL)
	if got := back.Scheme + "://" + back.Host + back.Path; got != testCallback {
		t.Fatalf("provider redirected to %s, want the callback %s", back, testCallback)
	}
	return back.Query()
}

// appRedirected checks that redirect goes to the app's redirect_uri (its
// own query kept) and returns its query.
func appRedirected(t *testing.T, redirect string) url.Values {
	t.Helper()
	u, err := url.Parse(redirect)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme+"://"+u.Host+u.Path != "https://app.example.com/auth/done" || q.Get("from") != "test" {
		t.Fatalf("redirect to %s, want the app's redirect_uri", redirect)
	}
	return q
}

func TestOIDCSignIn(t *testing.T) {
	t.Parallel()
	e := newOIDCEnv(t)
	ctx := context.Background()

	started := e.start(t)
	authURL := started.AuthURL
	au, _ := url.Parse(authURL)
	aq := au.Query()
	if aq.Get("code_challenge_method") != "S256" || aq.Get("code_challenge") == "" || aq.Get("nonce") == "" || aq.Get("state") != started.State {
		t.Fatalf("authorization URL lacks PKCE S256, nonce or state: %s", authURL)
	}
	if !strings.Contains(aq.Get("scope"), "openid") {
		t.Fatalf("scope %q lacks openid", aq.Get("scope"))
	}
	// The state lives in Redis, short-lived.
	if ttl := e.rdb.TTL(ctx, e.flow.stateKey(aq.Get("state"))).Val(); ttl <= 0 || ttl > 10*time.Minute {
		t.Fatalf("state TTL %s", ttl)
	}

	q := callbackQuery(t, authURL)
	redirect, err := e.flow.Callback(ctx, testApp, "corp", q, started.Binder)
	if err != nil {
		t.Fatalf("callback: %v", err)
	}
	loginCode := appRedirected(t, redirect).Get("login_code")
	if loginCode == "" {
		t.Fatalf("redirect %s has no login_code", redirect)
	}
	if ttl := e.rdb.TTL(ctx, e.flow.loginKey(testApp, loginCode)).Val(); ttl <= 0 || ttl > LoginCodeTTL {
		t.Fatalf("login code TTL %s, want ≤ %s", ttl, LoginCodeTTL)
	}

	// Another app cannot redeem it (and does not burn it).
	if _, err := e.flow.Redeem(ctx, "other", loginCode); !errors.Is(err, ErrFailed) {
		t.Fatalf("redeem for another app: %v", err)
	}
	id, err := e.flow.Redeem(ctx, testApp, loginCode)
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{Provider: "corp", Subject: oidctest.Subject, Email: oidctest.Email, EmailVerified: true}
	if id.Provider != want.Provider || id.Subject != want.Subject || id.Email != want.Email || !id.EmailVerified {
		t.Fatalf("identity %+v, want %+v", id, want)
	}

	// A login code works once.
	if _, err := e.flow.Redeem(ctx, testApp, loginCode); !errors.Is(err, ErrFailed) {
		t.Fatalf("replayed login code: %v", err)
	}
	// A state works once: the replayed callback has no redirect to go to.
	if redirect, err := e.flow.Callback(ctx, testApp, "corp", q, started.Binder); !errors.Is(err, ErrFailed) || redirect != "" {
		t.Fatalf("replayed state: %q, %v", redirect, err)
	}
}

func TestOIDCBadState(t *testing.T) {
	t.Parallel()
	e := newOIDCEnv(t)
	ctx := context.Background()
	started := e.start(t)
	q := callbackQuery(t, started.AuthURL)

	for name, state := range map[string]string{"missing": "", "made up": "bogus-state", "altered": q.Get("state") + "x"} {
		bad := url.Values{"code": {q.Get("code")}, "state": {state}}
		if redirect, err := e.flow.Callback(ctx, testApp, "corp", bad, started.Binder); !errors.Is(err, ErrFailed) || redirect != "" {
			t.Errorf("%s state: %q, %v", name, redirect, err)
		}
	}
	// A state is bound to its app and provider: presented at another
	// provider's callback it fails (and is spent).
	if redirect, err := e.flow.Callback(ctx, testApp, "other", q, started.Binder); !errors.Is(err, ErrFailed) || redirect != "" {
		t.Fatalf("state at another provider: %q, %v", redirect, err)
	}
	if _, err := e.flow.Callback(ctx, testApp, "corp", q, started.Binder); !errors.Is(err, ErrFailed) {
		t.Fatalf("state reused after a failure: %v", err)
	}
}

func TestOIDCNonceMismatch(t *testing.T) {
	t.Parallel()
	e := newOIDCEnv(t)
	// The provider signs an ID token whose nonce is not the one we sent.
	e.op.TamperNonce.Store(true)
	started := e.start(t)
	redirect, err := e.flow.Callback(context.Background(), testApp, "corp", callbackQuery(t, started.AuthURL), started.Binder)
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "nonce") {
		t.Fatalf("callback with a foreign nonce: %v", err)
	}
	q := appRedirected(t, redirect)
	if q.Get("error") != "oauth_failed" || q.Get("login_code") != "" {
		t.Fatalf("redirect %s, want error=oauth_failed and no login code", redirect)
	}
}

func TestOIDCIDTokenChecks(t *testing.T) {
	t.Parallel()
	e := newOIDCEnv(t)
	// The provider answers with ID tokens that are wrong in one way each;
	// all but the foreign-key one carry the provider's valid signature.
	cases := []struct {
		name    string
		claims  func(map[string]any)
		foreign bool
		want    string
	}{
		{"another audience", func(c map[string]any) { c["aud"] = []string{"someone-else"} }, false, "audience"},
		{"another issuer", func(c map[string]any) { c["iss"] = "https://evil.example.com" }, false, "different provider"},
		{"expired", func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }, false, "expired"},
		{"signed by another key", func(map[string]any) {}, true, "signature"},
		{"untouched (control)", func(map[string]any) {}, false, ""},
	}
	for _, c := range cases {
		e.op.RewriteIDTokens(c.claims, c.foreign)
		started := e.start(t)
		redirect, err := e.flow.Callback(context.Background(), testApp, "corp", callbackQuery(t, started.AuthURL), started.Binder)
		if c.want == "" {
			if err != nil || appRedirected(t, redirect).Get("login_code") == "" {
				t.Fatalf("%s: %v %s", c.name, err, redirect)
			}
			continue
		}
		if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "ID token") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an ID token %s failure", c.name, err, c.want)
		}
		if q := appRedirected(t, redirect); q.Get("error") != "oauth_failed" || q.Get("login_code") != "" {
			t.Errorf("%s: sent to %s", c.name, redirect)
		}
	}
}

func TestOIDCReplayedCode(t *testing.T) {
	t.Parallel()
	e := newOIDCEnv(t)
	ctx := context.Background()
	started := e.start(t)
	q := callbackQuery(t, started.AuthURL)

	// A second state with the same verifier and nonce, so that only the
	// code's reuse can make the provider refuse the second exchange.
	raw, err := e.rdb.Get(ctx, e.flow.stateKey(q.Get("state"))).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.Set(ctx, e.flow.stateKey("second-state"), raw, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}

	if _, err := e.flow.Callback(ctx, testApp, "corp", q, started.Binder); err != nil {
		t.Fatalf("first callback: %v", err)
	}
	replay := url.Values{"code": {q.Get("code")}, "state": {"second-state"}}
	redirect, err := e.flow.Callback(ctx, testApp, "corp", replay, started.Binder)
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "code exchange") {
		t.Fatalf("replayed code: %v", err)
	}
	if appRedirected(t, redirect).Get("error") != "oauth_failed" {
		t.Fatalf("redirect %s, want error=oauth_failed", redirect)
	}
}

func TestOIDCWrongVerifier(t *testing.T) {
	t.Parallel()
	e := newOIDCEnv(t)
	ctx := context.Background()
	started := e.start(t)
	q := callbackQuery(t, started.AuthURL)
	// Swap the stored PKCE verifier: the provider must refuse the code.
	key := e.flow.stateKey(q.Get("state"))
	raw := e.rdb.Get(ctx, key).Val()
	if err := e.rdb.Set(ctx, key, strings.Replace(raw, `"verifier":"`, `"verifier":"x`, 1), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.flow.Callback(ctx, testApp, "corp", q, started.Binder); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "code exchange") {
		t.Fatalf("callback with another verifier: %v", err)
	}
}

func TestOIDCOtherBrowser(t *testing.T) {
	t.Parallel()
	e := newOIDCEnv(t)
	// An attacker's callback URL (their code and state) opened in a
	// victim's browser, which has not the attacker's binder, signs
	// nobody in there.
	for name, binder := range map[string]string{"no binder": "", "another binder": e.start(t).Binder} {
		started := e.start(t)
		redirect, err := e.flow.Callback(context.Background(), testApp, "corp", callbackQuery(t, started.AuthURL), binder)
		if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "another browser") {
			t.Fatalf("%s: %v", name, err)
		}
		if q := appRedirected(t, redirect); q.Get("error") != "oauth_failed" || q.Get("login_code") != "" {
			t.Fatalf("%s: sent to %s", name, redirect)
		}
	}
}

func TestOIDCProviderError(t *testing.T) {
	t.Parallel()
	e := newOIDCEnv(t)
	started := e.start(t)
	// The user declined at the provider.
	q := url.Values{"error": {"access_denied"}, "state": {started.State}}
	redirect, err := e.flow.Callback(context.Background(), testApp, "corp", q, started.Binder)
	if !errors.Is(err, ErrFailed) || appRedirected(t, redirect).Get("error") != "oauth_failed" {
		t.Fatalf("provider error: %q, %v", redirect, err)
	}
}

func TestStartChecks(t *testing.T) {
	t.Parallel()
	e := newOIDCEnv(t)
	ctx := context.Background()
	cases := []struct {
		name, app, provider, redirect string
		want                          error
	}{
		{"unregistered redirect_uri", testApp, "corp", "https://evil.example.com/cb", ErrRedirectURI},
		{"redirect_uri prefix of a registered one", testApp, "corp", "https://app.example.com/auth/done", ErrRedirectURI},
		{"no redirect_uri", testApp, "corp", "", ErrRedirectURI},
		{"unknown provider", testApp, "nope", appRedirect, ErrNotFound},
		{"app without a policy", "other", "corp", appRedirect, ErrNotFound},
	}
	for _, c := range cases {
		if _, err := e.flow.Start(ctx, c.app, c.provider, c.redirect, testCallback); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}

	// A provider whose discovery document cannot be fetched: unavailable,
	// and nothing is cached, so it works once the provider answers.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	flow := New(Config{
		Redis: e.rdb, Prefix: e.flow.cfg.Prefix,
		Providers: memProviders{testApp + "/down": {App: testApp, Name: "down", Kind: KindOIDC, Issuer: down.URL, ClientID: "c"}},
		Policies:  memPolicy{testApp: {appRedirect}},
	})
	if _, err := flow.Start(ctx, testApp, "down", appRedirect, testCallback); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("provider down: %v, want ErrUnavailable", err)
	}
	if len(flow.discovery) != 0 {
		t.Fatal("a failed discovery was cached")
	}
}

func TestGitHubSignIn(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	gh := oidctest.StartGitHub(t, "gh-client", "gh-secret")
	flow := New(Config{
		Redis: rdb, Prefix: prefix,
		Providers: memProviders{testApp + "/github": {
			App: testApp, Name: "github", Kind: KindGitHub, ClientID: "gh-client", ClientSecret: "gh-secret",
			AuthURL: gh.URL + "/login/oauth/authorize", TokenURL: gh.URL + "/login/oauth/access_token",
			UserURL: gh.URL + "/user", EmailsURL: gh.URL + "/user/emails",
		}},
		Policies: memPolicy{testApp: {appRedirect}},
	})
	ctx := context.Background()
	started, err := flow.Start(ctx, testApp, "github", appRedirect, testCallback)
	if err != nil {
		t.Fatal(err)
	}
	authURL := started.AuthURL
	if au, _ := url.Parse(authURL); au.Query().Get("nonce") != "" || !strings.Contains(au.Query().Get("scope"), "user:email") {
		t.Fatalf("authorization URL %s: a nonce is for OIDC only; the default scopes read the emails", authURL)
	}
	q := oidctest.NewBrowser(t).Get(authURL).Query()
	redirect, err := flow.Callback(ctx, testApp, "github", q, started.Binder)
	if err != nil {
		t.Fatal(err)
	}
	id, err := flow.Redeem(ctx, testApp, appRedirected(t, redirect).Get("login_code"))
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{Provider: "github", Subject: oidctest.GitHubUserID, Email: oidctest.GitHubEmail, EmailVerified: true, Name: oidctest.GitHubLogin}
	if id != want {
		t.Fatalf("identity %+v, want %+v", id, want)
	}

	// The spent code, presented with a fresh state, is refused by the
	// provider.
	started, _ = flow.Start(ctx, testApp, "github", appRedirect, testCallback)
	q2 := oidctest.NewBrowser(t).Get(started.AuthURL).Query()
	q2.Set("code", q.Get("code"))
	if redirect, err := flow.Callback(ctx, testApp, "github", q2, started.Binder); !errors.Is(err, ErrFailed) || appRedirected(t, redirect).Get("error") != "oauth_failed" {
		t.Fatalf("replayed GitHub code: %q, %v", redirect, err)
	}
}
