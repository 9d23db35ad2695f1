// Package oauthlogin signs end users in through an app's OAuth 2.0 /
// OpenID Connect providers (docs/users-api.md): the authorization-code
// flow with PKCE (S256) for any OIDC provider (discovery, ID token
// signature, issuer, audience, expiry and nonce checked by
// github.com/coreos/go-oidc) and for GitHub-style OAuth2 (no ID token: the
// user and their emails come from two JSON endpoints).
//
// Start keeps the flow's state in Redis under a random one-use key; the
// callback consumes it, exchanges the code, checks the identity and hands
// the app a one-use, 60-second login code, which Redeem turns into the
// Identity (POST /oauth/exchange links it to a user). The login code
// travels in a redirect URL instead of the session itself, so no token
// ever sits in a browser's history or a proxy's log.
package oauthlogin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"
)

// Provider kinds.
const (
	KindOIDC   = "oidc"
	KindGitHub = "github"
)

// LoginCodeTTL is how long a login code can be redeemed.
const LoginCodeTTL = 60 * time.Second

// GitHub's own endpoints, for a "github" provider that names none.
const (
	GitHubAuthURL   = "https://github.com/login/oauth/authorize"
	GitHubTokenURL  = "https://github.com/login/oauth/access_token"
	GitHubUserURL   = "https://api.github.com/user"
	GitHubEmailsURL = "https://api.github.com/user/emails"
)

// Default scopes by kind.
var (
	DefaultOIDCScopes   = []string{oidc.ScopeOpenID, "email", "profile"}
	DefaultGitHubScopes = []string{"read:user", "user:email"}
)

// Errors. The API answers ErrFailed with oauth_failed.
var (
	// ErrNotFound: no such provider, or the app has no user policy.
	ErrNotFound = errors.New("oauthlogin: no such provider or user policy")
	// ErrRedirectURI: the app's redirect_uri is not one of its user
	// policy's redirect_uris.
	ErrRedirectURI = errors.New("oauthlogin: redirect_uri is not registered in the app's user policy")
	// ErrFailed: bad, expired or replayed state or login code, nonce
	// mismatch, a code or token the provider refused, an ID token that
	// does not verify.
	ErrFailed = errors.New("oauthlogin: sign-in failed")
	// ErrUnavailable: Redis or the provider's discovery did not answer.
	ErrUnavailable = errors.New("oauthlogin: unavailable")
)

// Provider is an app's configured provider.
type Provider struct {
	App, Name    string
	Kind         string
	Issuer       string // kind oidc
	ClientID     string
	ClientSecret string
	Scopes       []string
	// AuthURL, TokenURL, UserURL, EmailsURL: kind github (empty:
	// GitHub's own).
	AuthURL, TokenURL, UserURL, EmailsURL string
}

// Identity is who the provider says signed in. Provider is the provider's
// name in the app; (Provider, Subject) is stable for a user.
type Identity struct {
	Provider      string `json:"provider"`
	Subject       string `json:"subject"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified"`
	Name          string `json:"name,omitempty"`
}

// Providers finds an app's provider; an error wrapping ErrNotFound if it
// has none of that name.
type Providers interface {
	OAuthProvider(ctx context.Context, app, name string) (Provider, error)
}

// RedirectPolicy gives the redirect URIs an app allows (its user policy's
// redirect_uris); an error wrapping ErrNotFound if the app has no policy.
type RedirectPolicy interface {
	RedirectURIs(ctx context.Context, app string) ([]string, error)
}

// Config is what a Flow needs.
type Config struct {
	Redis *redis.Client
	// Prefix is ROOMCAST_REDIS_PREFIX: keys are <prefix>auth:oauth:….
	Prefix    string
	Providers Providers
	Policies  RedirectPolicy
	// StateTTL is how long a started sign-in may take (default 10m).
	StateTTL time.Duration
	// HTTPClient calls the providers (default: 10 s timeout).
	HTTPClient *http.Client
	Log        *slog.Logger
}

// Flow runs sign-ins. It is safe for concurrent use.
type Flow struct {
	cfg Config

	mu        sync.Mutex
	discovery map[string]cachedProvider // by issuer
}

type cachedProvider struct {
	p       *oidc.Provider
	fetched time.Time
}

// discoveryTTL bounds how long a discovery document (and with it the key
// set's URL) is reused; the key set itself refreshes on unknown key ids.
const discoveryTTL = time.Hour

// New creates a Flow.
func New(cfg Config) *Flow {
	if cfg.StateTTL <= 0 {
		cfg.StateTTL = 10 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Flow{cfg: cfg, discovery: map[string]cachedProvider{}}
}

// state is what Start keeps for the callback.
type state struct {
	App         string `json:"app"`
	Provider    string `json:"provider"`
	Verifier    string `json:"verifier"`
	Nonce       string `json:"nonce"`
	RedirectURI string `json:"redirect_uri"` // the app's
	CallbackURL string `json:"callback_url"` // ours, as sent to the provider
	// BinderHash is the SHA-256 of the browser binder (see Start).
	BinderHash string `json:"binder_hash"`
}

// Keys hold a hash of the state or login code, so the key space does not
// list live secrets to whoever can SCAN Redis.
func (f *Flow) stateKey(st string) string {
	return f.cfg.Prefix + "auth:oauth:state:" + hashHex(st)
}

func (f *Flow) loginKey(app, code string) string {
	return f.cfg.Prefix + "auth:oauth:login:" + app + ":" + hashHex(code)
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// random returns 256 random bits, base64url.
func random() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func failed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFailed, fmt.Sprintf(format, args...))
}

// Started is a begun sign-in.
type Started struct {
	// AuthURL is where to send the browser: the provider.
	AuthURL string
	// State is the state parameter in AuthURL.
	State string
	// Binder must come back with the callback from the same browser (the
	// API keeps it in a cookie): a callback URL alone, lured into another
	// browser, signs nobody in there (login CSRF, RFC 6749 §10.12).
	Binder string
}

// Start begins a sign-in of app's user with provider. redirectURI is
// where the app wants the login code, and must be one of its policy's
// redirect_uris; callbackURL is this service's callback for the provider
// (it must be registered there).
func (f *Flow) Start(ctx context.Context, app, provider, redirectURI, callbackURL string) (Started, error) {
	uris, err := f.cfg.Policies.RedirectURIs(ctx, app)
	if err != nil {
		return Started{}, err
	}
	if redirectURI == "" || !slices.Contains(uris, redirectURI) {
		return Started{}, ErrRedirectURI
	}
	p, err := f.cfg.Providers.OAuthProvider(ctx, app, provider)
	if err != nil {
		return Started{}, err
	}
	conf, _, err := f.oauthConfig(ctx, p, callbackURL)
	if err != nil {
		return Started{}, err
	}
	out := Started{State: random(), Binder: random()}
	st := state{
		App: app, Provider: provider, Verifier: oauth2.GenerateVerifier(), Nonce: random(),
		RedirectURI: redirectURI, CallbackURL: callbackURL, BinderHash: hashHex(out.Binder),
	}
	raw, _ := json.Marshal(st)
	if err := f.cfg.Redis.Set(ctx, f.stateKey(out.State), raw, f.cfg.StateTTL).Err(); err != nil {
		return Started{}, fmt.Errorf("%w: store state: %w", ErrUnavailable, err)
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(st.Verifier)}
	if p.Kind == KindOIDC {
		opts = append(opts, oidc.Nonce(st.Nonce))
	}
	out.AuthURL = conf.AuthCodeURL(out.State, opts...)
	return out, nil
}

// Callback finishes a sign-in from the provider's redirect to
// /oauth/{provider}/callback with query q, in the browser that presents
// binder (Started.Binder). It returns where to send the browser: the
// app's redirect_uri with ?login_code=… on success, or with
// ?error=oauth_failed on failure once the state is known (err then says
// why, for the log). redirect is empty when the state is unknown: the
// caller answers oauth_failed itself.
func (f *Flow) Callback(ctx context.Context, app, provider string, q url.Values, binder string) (redirect string, err error) {
	key := q.Get("state")
	if key == "" {
		return "", failed("no state")
	}
	raw, err := f.cfg.Redis.GetDel(ctx, f.stateKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return "", failed("unknown, expired or used state")
	}
	if err != nil {
		return "", fmt.Errorf("%w: read state: %w", ErrUnavailable, err)
	}
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", fmt.Errorf("%w: stored state: %w", ErrFailed, err)
	}
	if st.App != app || st.Provider != provider {
		// The state was made for another app's or provider's callback.
		return "", failed("state of another app or provider")
	}
	fail := func(err error) (string, error) {
		return withQuery(st.RedirectURI, "error", "oauth_failed"), err
	}
	if subtle.ConstantTimeCompare([]byte(hashHex(binder)), []byte(st.BinderHash)) != 1 {
		return fail(failed("the callback came from another browser than the start (no or wrong binder cookie)"))
	}
	if e := q.Get("error"); e != "" {
		return fail(failed("provider answered error %.100q", e))
	}
	code := q.Get("code")
	if code == "" {
		return fail(failed("no code"))
	}
	id, err := f.identify(ctx, st, code)
	if err != nil {
		return fail(err)
	}
	loginCode := random()
	idRaw, _ := json.Marshal(id)
	if err := f.cfg.Redis.Set(ctx, f.loginKey(app, loginCode), idRaw, LoginCodeTTL).Err(); err != nil {
		return fail(fmt.Errorf("%w: store login code: %w", ErrUnavailable, err))
	}
	return withQuery(st.RedirectURI, "login_code", loginCode), nil
}

// Redeem turns a login code of app into the identity that signed in; a
// code works once, within LoginCodeTTL. Other codes: ErrFailed.
func (f *Flow) Redeem(ctx context.Context, app, loginCode string) (Identity, error) {
	if loginCode == "" {
		return Identity{}, failed("no login code")
	}
	raw, err := f.cfg.Redis.GetDel(ctx, f.loginKey(app, loginCode)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Identity{}, failed("unknown, expired or used login code")
	}
	if err != nil {
		return Identity{}, fmt.Errorf("%w: read login code: %w", ErrUnavailable, err)
	}
	var id Identity
	if err := json.Unmarshal(raw, &id); err != nil {
		return Identity{}, fmt.Errorf("%w: stored login code: %w", ErrFailed, err)
	}
	return id, nil
}

// withQuery adds name=value to u's query.
func withQuery(u, name, value string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u // the policy's URIs are validated when set
	}
	q := p.Query()
	q.Set(name, value)
	p.RawQuery = q.Encode()
	return p.String()
}

// oauthConfig builds the OAuth2 client of p; for OIDC also the discovered
// provider.
func (f *Flow) oauthConfig(ctx context.Context, p Provider, callbackURL string) (*oauth2.Config, *oidc.Provider, error) {
	conf := &oauth2.Config{ClientID: p.ClientID, ClientSecret: p.ClientSecret, RedirectURL: callbackURL, Scopes: p.Scopes}
	switch p.Kind {
	case KindOIDC:
		op, err := f.discover(ctx, p.Issuer)
		if err != nil {
			return nil, nil, err
		}
		conf.Endpoint = op.Endpoint()
		if len(conf.Scopes) == 0 {
			conf.Scopes = DefaultOIDCScopes
		}
		if !slices.Contains(conf.Scopes, oidc.ScopeOpenID) {
			conf.Scopes = append([]string{oidc.ScopeOpenID}, conf.Scopes...)
		}
		return conf, op, nil
	case KindGitHub:
		conf.Endpoint = oauth2.Endpoint{AuthURL: or(p.AuthURL, GitHubAuthURL), TokenURL: or(p.TokenURL, GitHubTokenURL)}
		if len(conf.Scopes) == 0 {
			conf.Scopes = DefaultGitHubScopes
		}
		return conf, nil, nil
	}
	return nil, nil, fmt.Errorf("oauthlogin: provider %s.%s has unknown kind %q", p.App, p.Name, p.Kind)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// discover returns the OIDC provider of issuer, from the cache while it
// is fresh.
func (f *Flow) discover(ctx context.Context, issuer string) (*oidc.Provider, error) {
	f.mu.Lock()
	c, ok := f.discovery[issuer]
	f.mu.Unlock()
	if ok && time.Since(c.fetched) < discoveryTTL {
		return c.p, nil
	}
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, f.cfg.HTTPClient), issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: OIDC discovery of %s: %w", ErrUnavailable, issuer, err)
	}
	f.mu.Lock()
	f.discovery[issuer] = cachedProvider{p: op, fetched: time.Now()}
	f.mu.Unlock()
	return op, nil
}

// identify exchanges the code (with the PKCE verifier) and returns who
// signed in.
func (f *Flow) identify(ctx context.Context, st state, code string) (Identity, error) {
	p, err := f.cfg.Providers.OAuthProvider(ctx, st.App, st.Provider)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: provider: %w", ErrFailed, err)
	}
	conf, op, err := f.oauthConfig(ctx, p, st.CallbackURL)
	if err != nil {
		return Identity{}, err
	}
	hctx := context.WithValue(ctx, oauth2.HTTPClient, f.cfg.HTTPClient)
	tok, err := conf.Exchange(hctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return Identity{}, failed("code exchange: %s", bounded(err))
	}
	if p.Kind == KindGitHub {
		return f.githubIdentity(hctx, p, tok)
	}
	return f.oidcIdentity(hctx, p, op, st, tok)
}

// oidcIdentity verifies the ID token (signature, issuer, audience,
// expiry, then our nonce and the access token's hash) and reads the user
// from it, or from the userinfo endpoint when it carries no email.
func (f *Flow) oidcIdentity(ctx context.Context, p Provider, op *oidc.Provider, st state, tok *oauth2.Token) (Identity, error) {
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return Identity{}, failed("no ID token in the token response")
	}
	idt, err := op.Verifier(&oidc.Config{ClientID: p.ClientID}).Verify(oidc.ClientContext(ctx, f.cfg.HTTPClient), rawID)
	if err != nil {
		return Identity{}, failed("ID token: %s", bounded(err))
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		return Identity{}, failed("ID token nonce does not match the sign-in's")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return Identity{}, failed("ID token at_hash: %s", bounded(err))
		}
	}
	if idt.Subject == "" {
		return Identity{}, failed("ID token without a subject")
	}
	var claims userClaims
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, failed("ID token claims: %s", bounded(err))
	}
	if claims.Email == "" && op.UserInfoEndpoint() != "" {
		ui, err := op.UserInfo(oidc.ClientContext(ctx, f.cfg.HTTPClient), oauth2.StaticTokenSource(tok))
		if err != nil {
			return Identity{}, failed("userinfo: %s", bounded(err))
		}
		if ui.Subject != idt.Subject {
			return Identity{}, failed("userinfo is of another subject than the ID token")
		}
		var more userClaims
		if err := ui.Claims(&more); err != nil {
			return Identity{}, failed("userinfo claims: %s", bounded(err))
		}
		claims.Email, claims.EmailVerified = more.Email, more.EmailVerified
		if claims.Name == "" {
			claims.Name = more.Name
		}
	}
	return Identity{
		Provider: p.Name, Subject: idt.Subject,
		Email: claims.Email, EmailVerified: claims.Email != "" && bool(claims.EmailVerified), Name: claims.Name,
	}, nil
}

type userClaims struct {
	Email         string   `json:"email"`
	EmailVerified flexBool `json:"email_verified"`
	Name          string   `json:"name"`
}

// flexBool accepts true and "true": some providers send email_verified
// as a string.
type flexBool bool

func (b *flexBool) UnmarshalJSON(raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case bool:
		*b = flexBool(x)
	case string:
		*b = flexBool(x == "true")
	default:
		*b = false
	}
	return nil
}

// githubIdentity reads the user and their emails: the subject is the
// numeric user id (logins can be renamed), the email the primary verified
// one, else any verified one, else the profile's public email, unverified.
func (f *Flow) githubIdentity(ctx context.Context, p Provider, tok *oauth2.Token) (Identity, error) {
	client := oauth2.NewClient(ctx, oauth2.StaticTokenSource(tok))
	var user struct {
		ID    json.Number `json:"id"`
		Login string      `json:"login"`
		Name  string      `json:"name"`
		Email string      `json:"email"`
	}
	if err := getJSON(ctx, client, or(p.UserURL, GitHubUserURL), &user); err != nil {
		return Identity{}, failed("user: %s", bounded(err))
	}
	if _, err := strconv.ParseInt(user.ID.String(), 10, 64); err != nil {
		return Identity{}, failed("user without a numeric id")
	}
	id := Identity{Provider: p.Name, Subject: user.ID.String(), Name: or(user.Name, user.Login), Email: user.Email}
	var emails []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	if err := getJSON(ctx, client, or(p.EmailsURL, GitHubEmailsURL), &emails); err != nil {
		// Without the user:email scope there is no list: keep the public
		// email, unverified.
		f.cfg.Log.Info("oauth: github emails unavailable", "app", p.App, "provider", p.Name, "err", bounded(err))
		return id, nil
	}
	best := -1
	for i, e := range emails {
		if e.Verified && e.Email != "" && (best < 0 || e.Primary && !emails[best].Primary) {
			best = i
		}
	}
	if best >= 0 {
		id.Email, id.EmailVerified = emails[best].Email, true
	}
	return id, nil
}

func getJSON(ctx context.Context, client *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return json.Unmarshal(body, v)
}

// bounded shortens an error from a provider, which may quote its answer.
func bounded(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// BinderCookie is the name of the cookie that carries the binder of the
// sign-in with this state: one per sign-in, so sign-ins in two tabs do
// not undo each other.
func BinderCookie(state string) string { return "rc_oauth_" + hashHex(state)[:16] }

// StateTTL is how long a started sign-in may take.
func (f *Flow) StateTTL() time.Duration { return f.cfg.StateTTL }
