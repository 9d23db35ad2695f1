package api

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/services/auth/internal/abuse"
	"github.com/roomcast/roomcast/services/auth/internal/oauthlogin"
	"github.com/roomcast/roomcast/services/auth/internal/store"
)

// OAuth/OIDC sign-in (docs/users-api.md): the admin endpoints that set an
// app's providers, and the browser's start and callback endpoints, which
// answer with redirects. POST /oauth/exchange, which turns the login code
// into a session, is in users.go.

// mountOAuth registers the OAuth routes.
func (a *API) mountOAuth(mux *http.ServeMux) {
	a.route(mux, "PUT /admin/v1/apps/{app}/oauth-providers/{provider}", a.admin(a.putOAuthProvider))
	a.route(mux, "GET /admin/v1/apps/{app}/oauth-providers", a.admin(a.listOAuthProviders))
	a.route(mux, "GET /admin/v1/apps/{app}/oauth-providers/{provider}", a.admin(a.getOAuthProvider))
	a.route(mux, "DELETE /admin/v1/apps/{app}/oauth-providers/{provider}", a.admin(a.deleteOAuthProvider))
	a.redirectRoute(mux, "GET /v1/apps/{app}/auth/oauth/{provider}/start", a.oauthStart)
	a.redirectRoute(mux, "GET /v1/apps/{app}/auth/oauth/{provider}/callback", a.oauthCallback)
}

// OAuthStore gives oauthlogin the store's providers and the redirect URIs
// of the apps' user policies.
type OAuthStore struct{ Store *store.Store }

// OAuthProvider implements oauthlogin.Providers.
func (s OAuthStore) OAuthProvider(ctx context.Context, app, name string) (oauthlogin.Provider, error) {
	p, err := s.Store.OAuthProvider(ctx, app, name)
	if errors.Is(err, store.ErrNotFound) {
		return oauthlogin.Provider{}, oauthlogin.ErrNotFound
	}
	if err != nil {
		return oauthlogin.Provider{}, err
	}
	return oauthlogin.Provider{
		App: p.App, Name: p.Name, Kind: p.Kind, Issuer: p.Issuer,
		ClientID: p.ClientID, ClientSecret: string(p.ClientSecret), Scopes: p.Scopes,
		AuthURL: p.AuthURL, TokenURL: p.TokenURL, UserURL: p.UserURL, EmailsURL: p.EmailsURL,
	}, nil
}

// RedirectURIs implements oauthlogin.RedirectPolicy.
func (s OAuthStore) RedirectURIs(ctx context.Context, app string) ([]string, error) {
	p, err := s.Store.GetUserPolicy(ctx, app)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauthlogin.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return p.RedirectURIs, nil
}

var errOAuthFailed = errorf(http.StatusBadRequest, authapi.CodeOAuthFailed, "OAuth sign-in failed: bad, expired or replayed state, or the provider refused; start again")

// oauthError maps a flow error to an API error, logging unexpected ones.
func (a *API) oauthError(op string, err error) *Error {
	switch {
	case errors.Is(err, oauthlogin.ErrFailed):
		return errOAuthFailed
	case errors.Is(err, oauthlogin.ErrNotFound):
		return errorf(http.StatusNotFound, protocol.CodeNotFound, "no such app, OAuth provider or user policy")
	case errors.Is(err, oauthlogin.ErrRedirectURI):
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "redirect_uri must be one of the app's user policy redirect_uris")
	}
	a.log.Warn(op+" failed", "err", err)
	return errorf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "the OAuth provider or Redis is unavailable; retry later")
}

// oauthStoreError is storeError with a not-found message that fits.
func (a *API) oauthStoreError(op string, err error) *Error {
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, protocol.CodeNotFound, "no such app or OAuth provider")
	}
	return a.storeError(op, err)
}

// redirectRoute registers a browser endpoint: h answers with where to
// send the browser, or an error answered as JSON.
func (a *API) redirectRoute(mux *http.ServeMux, pattern string, h func(w http.ResponseWriter, r *http.Request) (string, *Error)) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		loc, aerr := h(w, r)
		if aerr != nil {
			a.requests.WithLabelValues(pattern, string(aerr.Code)).Inc()
			writeJSON(w, aerr.Status, authapi.Error{Error: authapi.ErrorBody{Code: aerr.Code, Message: aerr.Message}})
			return
		}
		a.requests.WithLabelValues(pattern, "").Inc()
		w.Header().Set("Cache-Control", "no-store")
		// The login code must not leak to the app's page's subresources
		// through Referer.
		w.Header().Set("Referrer-Policy", "no-referrer")
		http.Redirect(w, r, loc, http.StatusFound)
	})
}

// callbackURL is this service's callback for app's provider: under
// AUTH_PUBLIC_URL, or, without it (development), the request's own host.
func (a *API) callbackURL(r *http.Request, app, provider string) string {
	base := strings.TrimSuffix(a.cfg.PublicURL, "/")
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return base + "/v1/apps/" + url.PathEscape(app) + "/auth/oauth/" + url.PathEscape(provider) + "/callback"
}

// oauthAllow counts an OAuth start or callback against the client IP's
// limit: each start keeps a state in Redis, each callback presents one.
func (a *API) oauthAllow(w http.ResponseWriter, r *http.Request) *Error {
	if a.cfg.OAuthLimiter == nil {
		return nil
	}
	err := a.cfg.OAuthLimiter.Allow(r.Context(), abuse.Check{
		Name: "oauth_ip", Rate: a.cfg.OAuthLimitIP, Key: a.cfg.TrustedProxies.Of(r),
	})
	if le, ok := abuse.IsLimited(err); ok {
		secs := max(int(math.Ceil(le.RetryAfter.Seconds())), 1)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return errorf(http.StatusTooManyRequests, authapi.CodeRateLimited, "too many OAuth sign-ins from this address; retry after %d s", secs)
	}
	if err != nil {
		a.log.Warn("oauth limit check failed", "err", err)
		return errorf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "Redis is unavailable; retry later")
	}
	return nil
}

// binderCookie is the cookie that ties a sign-in's callback to the
// browser that started it, scoped to the callback's path; maxAge < 0
// deletes it.
func binderCookie(callbackURL, state, binder string, maxAge int) *http.Cookie {
	u, _ := url.Parse(callbackURL)
	return &http.Cookie{
		Name: oauthlogin.BinderCookie(state), Value: binder, Path: u.EscapedPath(), MaxAge: maxAge,
		HttpOnly: true, Secure: u.Scheme == "https",
		// Lax: sent on the provider's top-level redirect to the callback.
		SameSite: http.SameSiteLaxMode,
	}
}

func (a *API) oauthStart(w http.ResponseWriter, r *http.Request) (string, *Error) {
	app, provider := r.PathValue("app"), r.PathValue("provider")
	if a.cfg.OAuth == nil {
		return "", errorf(http.StatusNotFound, protocol.CodeNotFound, "OAuth sign-in is not configured")
	}
	if aerr := a.oauthAllow(w, r); aerr != nil {
		return "", aerr
	}
	callback := a.callbackURL(r, app, provider)
	st, err := a.cfg.OAuth.Start(r.Context(), app, provider, r.URL.Query().Get("redirect_uri"), callback)
	if err != nil {
		return "", a.oauthError("oauth start", err)
	}
	http.SetCookie(w, binderCookie(callback, st.State, st.Binder, int(a.cfg.OAuth.StateTTL().Seconds())))
	return st.AuthURL, nil
}

func (a *API) oauthCallback(w http.ResponseWriter, r *http.Request) (string, *Error) {
	app, provider := r.PathValue("app"), r.PathValue("provider")
	if a.cfg.OAuth == nil {
		return "", errorf(http.StatusNotFound, protocol.CodeNotFound, "OAuth sign-in is not configured")
	}
	if aerr := a.oauthAllow(w, r); aerr != nil {
		return "", aerr
	}
	state := r.URL.Query().Get("state")
	var binder string
	if c, err := r.Cookie(oauthlogin.BinderCookie(state)); err == nil {
		binder = c.Value
		http.SetCookie(w, binderCookie(a.callbackURL(r, app, provider), state, "", -1))
	}
	loc, err := a.cfg.OAuth.Callback(r.Context(), app, provider, r.URL.Query(), binder)
	if err != nil {
		// Why it failed is for the operator; the browser learns only
		// oauth_failed. The error never quotes a code or a secret.
		a.log.Info("oauth sign-in failed", "app", app, "provider", provider, "err", err)
		if loc == "" {
			return "", a.oauthError("oauth callback", err)
		}
	}
	return loc, nil
}

// Limits on what an admin may store for a provider.
const (
	maxOAuthField  = 2048
	maxOAuthScopes = 32
)

// absURL checks an http(s) URL without a fragment.
func absURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.Fragment == "" && len(s) <= maxOAuthField
}

func badProvider(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, protocol.CodeBadRequest, format, args...)
}

// checkOAuthProvider validates a PUT body.
func checkOAuthProvider(req *authapi.PutOAuthProvider) *Error {
	switch req.Kind {
	case authapi.OAuthKindOIDC:
		if !absURL(req.Issuer) || strings.Contains(req.Issuer, "?") {
			return badProvider("an oidc provider needs issuer, an http(s) URL without query or fragment")
		}
		if req.AuthURL != "" || req.TokenURL != "" || req.UserURL != "" || req.EmailsURL != "" {
			return badProvider("an oidc provider takes its endpoints from the issuer's discovery document: no auth_url, token_url, user_url or emails_url")
		}
	case authapi.OAuthKindGitHub:
		if req.Issuer != "" {
			return badProvider("a github provider has no issuer")
		}
		for name, u := range map[string]string{"auth_url": req.AuthURL, "token_url": req.TokenURL, "user_url": req.UserURL, "emails_url": req.EmailsURL} {
			if u != "" && !absURL(u) {
				return badProvider("%s must be an http(s) URL", name)
			}
		}
	default:
		return badProvider(`kind must be "oidc" or "github"`)
	}
	if req.ClientID == "" || len(req.ClientID) > maxOAuthField {
		return badProvider("client_id is required, at most %d bytes", maxOAuthField)
	}
	if len(req.ClientSecret) > maxOAuthField {
		return badProvider("client_secret is limited to %d bytes", maxOAuthField)
	}
	if len(req.Scopes) > maxOAuthScopes {
		return badProvider("at most %d scopes", maxOAuthScopes)
	}
	for _, s := range req.Scopes {
		if s == "" || len(s) > 256 || strings.ContainsAny(s, " \t\r\n\"\\") {
			return badProvider("a scope is 1-256 characters without spaces, quotes or backslashes")
		}
	}
	return nil
}

// oauthProviderView is what the admin API shows of a provider: never its
// secret.
func (a *API) oauthProviderView(r *http.Request, p store.OAuthProvider) authapi.OAuthProvider {
	v := authapi.OAuthProvider{
		App: p.App, ID: p.Name, Kind: p.Kind, Issuer: p.Issuer, ClientID: p.ClientID,
		HasClientSecret: p.HasClientSecret, Scopes: p.Scopes,
		AuthURL: p.AuthURL, TokenURL: p.TokenURL, UserURL: p.UserURL, EmailsURL: p.EmailsURL,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	if v.Scopes == nil {
		v.Scopes = []string{}
	}
	if a.cfg.PublicURL != "" {
		v.CallbackURL = a.callbackURL(r, p.App, p.Name)
	}
	return v
}

func (a *API) putOAuthProvider(r *http.Request) (int, any, *Error) {
	app, name := r.PathValue("app"), r.PathValue("provider")
	if !nameOK(name) {
		return 0, nil, badProvider("provider id must be 1-%d characters of [A-Za-z0-9_-]", token.MaxNameBytes)
	}
	var req authapi.PutOAuthProvider
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	if err := checkOAuthProvider(&req); err != nil {
		return 0, nil, err
	}
	p := store.OAuthProvider{
		App: app, Name: name, Kind: req.Kind, Issuer: req.Issuer, ClientID: req.ClientID, Scopes: req.Scopes,
		AuthURL: req.AuthURL, TokenURL: req.TokenURL, UserURL: req.UserURL, EmailsURL: req.EmailsURL,
	}
	if req.ClientSecret != "" {
		p.ClientSecret = []byte(req.ClientSecret)
	}
	got, created, err := a.cfg.Store.PutOAuthProvider(r.Context(), p)
	if err != nil {
		return 0, nil, a.oauthStoreError("put oauth provider", err)
	}
	a.log.Info("oauth provider set", "app", app, "provider", name, "kind", req.Kind, "created", created)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return status, a.oauthProviderView(r, got), nil
}

func (a *API) getOAuthProvider(r *http.Request) (int, any, *Error) {
	p, err := a.cfg.Store.OAuthProvider(r.Context(), r.PathValue("app"), r.PathValue("provider"))
	if err != nil {
		return 0, nil, a.oauthStoreError("get oauth provider", err)
	}
	return http.StatusOK, a.oauthProviderView(r, p), nil
}

func (a *API) listOAuthProviders(r *http.Request) (int, any, *Error) {
	ps, err := a.cfg.Store.ListOAuthProviders(r.Context(), r.PathValue("app"))
	if err != nil {
		return 0, nil, a.oauthStoreError("list oauth providers", err)
	}
	out := authapi.OAuthProviders{Providers: []authapi.OAuthProvider{}}
	for _, p := range ps {
		out.Providers = append(out.Providers, a.oauthProviderView(r, p))
	}
	return http.StatusOK, out, nil
}

func (a *API) deleteOAuthProvider(r *http.Request) (int, any, *Error) {
	app, name := r.PathValue("app"), r.PathValue("provider")
	if err := a.cfg.Store.DeleteOAuthProvider(r.Context(), app, name); err != nil {
		return 0, nil, a.oauthStoreError("delete oauth provider", err)
	}
	a.log.Info("oauth provider deleted", "app", app, "provider", name)
	return http.StatusNoContent, nil, nil
}
