// Package oidctest runs, for tests, the providers users sign in with: a
// real OpenID Provider built from github.com/zitadel/oidc/v3 (its pkg/op
// over the library's in-memory example storage, with a minimal login
// form) and a small stand-in for GitHub's OAuth2 endpoints. Both listen on
// a free port and stop when the test ends.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The user of the GitHub stand-in.
const (
	GitHubUserID = "4242"
	GitHubLogin  = "octo"
	// GitHubEmail is the primary verified one of the user's emails.
	GitHubEmail = "octo@example.com"
)

// The OP's test user (storage.NewUserStore of the example storage).
const (
	Username = "test-user@127.0.0.1"
	Password = "verysecure"
	Subject  = "id1"
	Email    = "test-user@zitadel.ch"
)

// OP is a running OpenID Provider.
type OP struct {
	Issuer string
	// TamperNonce makes the provider put another nonce in its ID tokens
	// than the authorization request asked for.
	TamperNonce atomic.Bool

	rewrite atomic.Pointer[rewrite]
}

type rewrite struct {
	claims  func(map[string]any)
	foreign bool
}

// RewriteIDTokens makes the token endpoint answer with ID tokens whose
// claims f has changed, signed again with the provider's own key (the
// same key id), or with another key if foreignKey: tokens a client must
// refuse for their claims (audience, issuer, expiry) or their signature
// alone. A nil f stops rewriting.
func (o *OP) RewriteIDTokens(f func(claims map[string]any), foreignKey bool) {
	if f == nil {
		o.rewrite.Store(nil)
		return
	}
	o.rewrite.Store(&rewrite{claims: f, foreign: foreignKey})
}

// rewriting is the token endpoint's middleware for RewriteIDTokens.
func (o *OP) rewriting(next http.Handler, key op.SigningKey, foreign *rsa.PrivateKey) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := o.rewrite.Load()
		if rw == nil || r.URL.Path != "/oauth/token" {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var body map[string]any
		if rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &body) == nil {
			if idt, ok := body["id_token"].(string); ok {
				signWith := key.Key()
				if rw.foreign {
					signWith = foreign
				}
				body["id_token"] = resign(idt, rw.claims, key.ID(), signWith)
			}
		}
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.Code)
		if body != nil {
			_ = json.NewEncoder(w).Encode(body)
		} else {
			_, _ = w.Write(rec.Body.Bytes())
		}
	})
}

// resign changes a JWT's claims with f and signs it with key (RS256,
// header kid).
func resign(jwt string, f func(map[string]any), kid string, key any) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return jwt
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return jwt
	}
	var claims map[string]any
	if json.Unmarshal(raw, &claims) != nil {
		return jwt
	}
	f(claims)
	payload, _ := json.Marshal(claims)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		panic(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

// tamperingStorage is the example storage, except that it can rewrite
// the nonce of an authorization request before the provider keeps it, so
// the ID token the provider signs carries a nonce the client never sent.
type tamperingStorage struct {
	*storage.Storage
	op *OP
}

func (s *tamperingStorage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	if s.op.TamperNonce.Load() {
		cp := *req
		cp.Nonce = "not-" + req.Nonce
		req = &cp
	}
	return s.Storage.CreateAuthRequest(ctx, req, userID)
}

// StartOP runs an OpenID Provider on a free port with one confidential
// web client (clientID, secret) allowed to redirect to callbackURL.
func StartOP(t *testing.T, clientID, secret, callbackURL string) *OP {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	o := &OP{Issuer: "http://" + srv.Listener.Addr().String()}
	st := &tamperingStorage{
		Storage: storage.NewStorageWithClients(storage.NewUserStore(o.Issuer),
			map[string]*storage.Client{clientID: storage.WebClient(clientID, secret, callbackURL)}),
		op: o,
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:      sha256.Sum256([]byte("test OP token encryption key")),
		CodeMethodS256: true,
		AuthMethodPost: true,
	}, st, op.StaticIssuer(o.Issuer), op.WithAllowInsecure(),
		op.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	// The login UI: the example storage sends the browser to
	// /login/username?authRequestID=…; a correct password marks the
	// request done and goes back to the provider's callback.
	callback := op.AuthCallbackURL(provider)
	mux := http.NewServeMux()
	mux.Handle("POST /login/username", op.NewIssuerInterceptor(provider.IssuerFromRequest).HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.FormValue("id")
		if err := st.CheckUsernamePassword(r.FormValue("username"), r.FormValue("password"), id); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, callback(r.Context(), id), http.StatusFound)
	}))
	mux.Handle("/", provider)
	key, err := st.SigningKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = o.rewriting(mux, key, foreign)
	srv.Start()
	t.Cleanup(srv.Close)
	return o
}

// Browser follows no redirects by itself, so each hop can be checked.
// It keeps cookies, like a browser.
type Browser struct {
	t *testing.T
	// Client sends the Browser's requests (for a step a test checks more
	// closely than Redirect does).
	Client *http.Client
}

// NewBrowser returns a Browser that fails t on errors.
func NewBrowser(t *testing.T) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{t: t, Client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Redirect sends req and returns the absolute Location of its 302/303.
func (b *Browser) Redirect(req *http.Request) *url.URL {
	b.t.Helper()
	resp, err := b.Client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("%s %s: %d %s, want a redirect", req.Method, req.URL, resp.StatusCode, body)
	}
	loc, err := resp.Location()
	if err != nil {
		b.t.Fatal(err)
	}
	return loc
}

// Get is Redirect of a GET of u.
func (b *Browser) Get(u string) *url.URL {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.Redirect(req)
}

// SignInAtOP takes the browser from the provider's authorization URL
// through its login form to the redirect back to the client, and returns
// that redirect (the client's callback with code and state).
func (b *Browser) SignInAtOP(authURL string) *url.URL {
	b.t.Helper()
	login := b.Get(authURL)
	if login.Path != "/login/username" {
		b.t.Fatalf("authorize sent the browser to %s, want the login form", login)
	}
	form := url.Values{"username": {Username}, "password": {Password}, "id": {login.Query().Get("authRequestID")}}
	req, _ := http.NewRequest(http.MethodPost, login.String(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	back := b.Redirect(req)
	return b.Get(back.String())
}

// GitHub stands in for GitHub's OAuth2 endpoints (authorize, token,
// user, emails). It is not OIDC: no ID token, no discovery. Codes are
// one-use and bound to the PKCE challenge and redirect URI.
type GitHub struct {
	// URL is the base: /login/oauth/authorize, /login/oauth/access_token,
	// /user and /user/emails are under it.
	URL              string
	clientID, secret string

	mu     sync.Mutex
	codes  map[string]ghGrant // code → grant
	tokens map[string]bool
	n      int
}

type ghGrant struct{ challenge, redirectURI string }

// StartGitHub runs a GitHub stand-in for one OAuth app (clientID, secret).
func StartGitHub(t *testing.T, clientID, secret string) *GitHub {
	t.Helper()
	g := &GitHub{clientID: clientID, secret: secret, codes: map[string]ghGrant{}, tokens: map[string]bool{}}
	mux := http.NewServeMux()
	// authorize: the user approves at once.
	mux.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != clientID || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
			http.Error(w, "bad authorization request", http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.n++
		code := fmt.Sprintf("ghcode%d", g.n)
		g.codes[code] = ghGrant{challenge: q.Get("code_challenge"), redirectURI: q.Get("redirect_uri")}
		g.mu.Unlock()
		back, _ := url.Parse(q.Get("redirect_uri"))
		bq := back.Query()
		bq.Set("code", code)
		bq.Set("state", q.Get("state"))
		back.RawQuery = bq.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	})
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		id, sec, ok := r.BasicAuth()
		if !ok {
			id, sec = r.FormValue("client_id"), r.FormValue("client_secret")
		}
		w.Header().Set("Content-Type", "application/json")
		if id != clientID || subtle.ConstantTimeCompare([]byte(sec), []byte(secret)) != 1 {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		g.mu.Lock()
		grant, ok := g.codes[r.FormValue("code")]
		delete(g.codes, r.FormValue("code"))
		g.mu.Unlock()
		sum := sha256.Sum256([]byte(r.FormValue("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != grant.challenge || r.FormValue("redirect_uri") != grant.redirectURI {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"bad_verification_code"}`)
			return
		}
		g.mu.Lock()
		g.n++
		tok := fmt.Sprintf("gho_%d", g.n)
		g.tokens[tok] = true
		g.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]string{"access_token": tok, "token_type": "bearer", "scope": "read:user,user:email"})
	})
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			g.mu.Lock()
			ok := g.tokens[tok]
			g.mu.Unlock()
			if !ok {
				http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			h(w, r)
		}
	}
	mux.HandleFunc("GET /user", authed(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"id":4242,"login":"octo","name":"","email":"public@example.com"}`)
	}))
	mux.HandleFunc("GET /user/emails", authed(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `[{"email":"old@example.com","primary":false,"verified":true},`+
			`{"email":"unverified@example.com","primary":false,"verified":false},`+
			`{"email":"octo@example.com","primary":true,"verified":true}]`)
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}
