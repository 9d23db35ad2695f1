package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/pkg/sdk/users"
	"github.com/roomcast/roomcast/services/auth/authtest/oidctest"
)

// TestOAuthSignInEndToEnd: an end user signs in through an OpenID Provider
// run by the test (github.com/zitadel/oidc/v3) with the auth binary in
// between — start, the provider's login form, the auth service's
// callback, the app's redirect_uri with a login code, POST /oauth/exchange
// — and connects to a gateway as that user. Signing in again finds the
// same user; a replayed login code, a replayed callback and an ID token
// with a foreign nonce all fail with oauth_failed.
func TestOAuthSignInEndToEnd(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const (
		app         = "sso"
		appRedirect = "https://app.example.com/auth/callback"
	)
	secret := "op-secret-" + randomHex(16)
	e.remember(secret)

	key := e.newKey(t, app, "chat.*=join,publish")
	if st := e.admin(t, http.MethodPut, "/admin/v1/apps/"+app+"/user-policy", authapi.UserPolicy{
		Key: key.ID, Caps: token.Capabilities{"chat.*": {token.OpJoin, token.OpPublish}}, Signup: true,
		RedirectURIs: []string{appRedirect},
	}); st != http.StatusOK {
		t.Fatalf("PUT user-policy: %d", st)
	}
	// AUTH_PUBLIC_URL is unset: the callback is on the address the
	// browser used.
	op := oidctest.StartOP(t, "roomcast-e2e", secret, e.auth.HTTPURL()+"/v1/apps/"+app+"/auth/oauth/corp/callback")
	if st := e.admin(t, http.MethodPut, "/admin/v1/apps/"+app+"/oauth-providers/corp", authapi.PutOAuthProvider{
		Kind: authapi.OAuthKindOIDC, Issuer: op.Issuer, ClientID: "roomcast-e2e", ClientSecret: secret,
	}); st != http.StatusCreated {
		t.Fatalf("PUT oauth provider: %d", st)
	}

	uc, err := users.New(users.Config{AuthURL: e.auth.HTTPURL(), App: app, OnTokens: func(tk users.Tokens) {
		e.remember(tk.AccessToken, tk.RefreshToken)
	}})
	if err != nil {
		t.Fatal(err)
	}
	// signIn runs the browser's part and returns where the auth service
	// finally sent it.
	signIn := func() *url.URL {
		t.Helper()
		b := oidctest.NewBrowser(t)
		authURL := b.Get(uc.OAuthStartURL("corp", appRedirect))
		callback := b.SignInAtOP(authURL.String())
		e.remember(callback.Query().Get("code"))
		done := b.Get(callback.String())
		if !strings.HasPrefix(done.String(), appRedirect+"?") {
			t.Fatalf("the callback sent the browser to %s, want the app's redirect_uri", done)
		}
		if lc := done.Query().Get("login_code"); lc != "" {
			e.remember(lc)
		}
		return done
	}

	done := signIn()
	loginCode := done.Query().Get("login_code")
	s, mfa, err := uc.Exchange(ctx, loginCode)
	if err != nil || mfa != nil {
		t.Fatalf("exchange: %v %+v", err, mfa)
	}
	u := s.User()
	if u.Email != oidctest.Email || !u.EmailVerified || !strings.HasPrefix(u.ID, "u") {
		t.Fatalf("signed-in user %+v, want the provider's verified email", u)
	}
	if _, _, err := uc.Exchange(ctx, loginCode); !users.HasCode(err, string(authapi.CodeOAuthFailed)) {
		t.Fatalf("replayed login code: %v, want oauth_failed", err)
	}

	// The user connects to the gateway as themselves.
	rt, err := client.Dial(ctx, client.Config{URL: e.gateways[0].WSURL(), TokenProvider: s.TokenProvider()})
	if err != nil {
		t.Fatalf("connect as the OAuth user: %v", err)
	}
	defer rt.Close()
	if id := rt.Info().ClientID; id != u.ID {
		t.Fatalf("connected as %q, want the user id %q", id, u.ID)
	}
	if _, err := rt.Join(ctx, "chat.lobby"); err != nil {
		t.Fatalf("join: %v", err)
	}

	// The same provider identity signs the same user in again.
	s2, _, err := uc.Exchange(ctx, signIn().Query().Get("login_code"))
	if err != nil || s2.User().ID != u.ID || s2.ID() == s.ID() {
		t.Fatalf("second sign-in: %v; user %s session %s, want user %s in a new session", err, s2.User().ID, s2.ID(), u.ID)
	}

	// A replayed callback (its state is spent): JSON oauth_failed.
	b := oidctest.NewBrowser(t)
	callback := b.SignInAtOP(b.Get(uc.OAuthStartURL("corp", appRedirect)).String())
	for i, want := range []int{http.StatusFound, http.StatusBadRequest} {
		resp, err := b.Client.Get(callback.String())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("callback #%d: %d %s, want %d", i+1, resp.StatusCode, body, want)
		}
		if want == http.StatusBadRequest {
			var ae authapi.Error
			if json.Unmarshal(body, &ae) != nil || ae.Error.Code != authapi.CodeOAuthFailed {
				t.Fatalf("replayed callback: %s, want oauth_failed", body)
			}
		} else if lc, _ := resp.Location(); lc == nil || lc.Query().Get("login_code") == "" {
			t.Fatalf("callback #1 sent the browser to %v, want a login code", lc)
		} else {
			e.remember(lc.Query().Get("login_code"))
		}
	}

	// The provider signs an ID token with a nonce the service never sent.
	op.TamperNonce.Store(true)
	if done := signIn(); done.Query().Get("error") != "oauth_failed" || done.Query().Get("login_code") != "" {
		t.Fatalf("nonce mismatch: sent to %s, want error=oauth_failed", done)
	}
	op.TamperNonce.Store(false)

	checkOAuthSpec(t, e, app, appRedirect, op)
}

// checkOAuthSpec checks the OAuth endpoints' answers, errors and
// redirects included, against docs/auth-openapi.yaml.
func checkOAuthSpec(t *testing.T, e *authEnv, app, appRedirect string, op *oidctest.OP) {
	t.Helper()
	v, _ := loadSpec(t, "../../docs/auth-openapi.yaml")
	b := oidctest.NewBrowser(t)
	// exchange sends a request (as the browser: cookies kept, redirects
	// not followed), checks the answer against the spec and returns it.
	exchange := func(method, path, cred string, body any, status int) *http.Response {
		t.Helper()
		var js []byte
		if body != nil {
			js, _ = json.Marshal(body)
		}
		u := path
		if !strings.HasPrefix(u, "http") {
			u = e.auth.HTTPURL() + path
		}
		req, _ := http.NewRequest(method, u, bytes.NewReader(js))
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if cred != "" {
			req.Header.Set("Authorization", "Bearer "+cred)
		}
		resp, err := b.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		respBody, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, respBody, status)
		}
		check, _ := http.NewRequest(method, u, bytes.NewReader(js))
		check.Header = req.Header.Clone()
		resp.Body = io.NopCloser(bytes.NewReader(respBody))
		resp.Request = check
		if ok, verrs := v.ValidateHttpResponse(check, resp); !ok {
			for _, ve := range verrs {
				t.Errorf("%s %s → %d does not match docs/auth-openapi.yaml: %s (%s)", method, path, resp.StatusCode, ve.Message, ve.Reason)
			}
		}
		return resp
	}
	admin := "/admin/v1/apps/" + app + "/oauth-providers"
	gh := authapi.PutOAuthProvider{Kind: authapi.OAuthKindGitHub, ClientID: "gh", Scopes: []string{"read:user"}}
	exchange("PUT", admin+"/gh", e.adminToken, gh, http.StatusCreated)
	exchange("PUT", admin+"/gh", e.adminToken, gh, http.StatusOK)
	exchange("PUT", admin+"/gh", e.adminToken, authapi.PutOAuthProvider{Kind: "saml", ClientID: "x"}, http.StatusBadRequest)
	exchange("PUT", "/admin/v1/apps/nope/oauth-providers/gh", e.adminToken, gh, http.StatusNotFound)
	exchange("PUT", admin+"/gh", "", gh, http.StatusUnauthorized)
	exchange("GET", admin, e.adminToken, nil, http.StatusOK)
	exchange("GET", admin+"/corp", e.adminToken, nil, http.StatusOK)
	exchange("DELETE", admin+"/gh", e.adminToken, nil, http.StatusNoContent)
	exchange("GET", admin+"/gh", e.adminToken, nil, http.StatusNotFound)

	start := "/v1/apps/" + app + "/auth/oauth/corp/start?redirect_uri="
	exchange("GET", start+url.QueryEscape("https://evil.example.com/"), "", nil, http.StatusBadRequest)
	exchange("GET", "/v1/apps/"+app+"/auth/oauth/gh/start?redirect_uri="+url.QueryEscape(appRedirect), "", nil, http.StatusNotFound)
	loc, _ := exchange("GET", start+url.QueryEscape(appRedirect), "", nil, http.StatusFound).Location()
	callback := b.SignInAtOP(loc.String())
	e.remember(callback.Query().Get("code"))
	if lc, _ := exchange("GET", callback.String(), "", nil, http.StatusFound).Location(); lc != nil && lc.Query().Get("login_code") != "" {
		e.remember(lc.Query().Get("login_code"))
	}
	exchange("GET", callback.String(), "", nil, http.StatusBadRequest)
}
