// Package api is the auth service's HTTP API: the admin API (apps, API
// keys, signing keys) guarded by the admin credential, token issuance for
// backends (POST /v1/tokens, authenticated by an API key), the public JWKS,
// and the gateways' key feed guarded by the service credential.
// docs/auth-api.md and docs/auth-openapi.yaml describe it.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/clientip"
	"github.com/roomcast/roomcast/pkg/httpjson"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/seal"
	"github.com/roomcast/roomcast/services/auth/internal/abuse"
	"github.com/roomcast/roomcast/services/auth/internal/accounts"
	"github.com/roomcast/roomcast/services/auth/internal/oauthlogin"
	"github.com/roomcast/roomcast/services/auth/internal/store"
)

// maxBody caps every request body: the largest is a key's capabilities.
const maxBody = 256 << 10

// Config is what the API needs.
type Config struct {
	Store *store.Store
	// AdminToken guards /admin/...; ServiceToken guards /internal/...
	// (empty: refused).
	AdminToken   string
	ServiceToken string
	// Notify announces a change of the API keys or signing keys to
	// gateways. It must not block for long.
	Notify func()
	Log    *slog.Logger
	// Registry receives the API's metrics.
	Registry *prometheus.Registry
	// TokenDefaultTTL and TokenMaxTTL bound POST /v1/tokens;
	// SigningKeyOverlap is the default overlap of a signing key rotation.
	TokenDefaultTTL   time.Duration
	TokenMaxTTL       time.Duration
	SigningKeyOverlap time.Duration

	// OAuth runs OAuth/OIDC sign-ins (nil: those endpoints answer 404);
	// PublicURL is AUTH_PUBLIC_URL, the base of the provider callback.
	OAuth     *oauthlogin.Flow
	PublicURL string
	// OAuthLimiter (nil: no limit) counts OAuth starts and callbacks per
	// client IP against OAuthLimitIP (AUTH_OAUTH_LIMIT_IP).
	OAuthLimiter *abuse.Limiter
	OAuthLimitIP abuse.Rate

	// Accounts serves the end-user endpoints (nil: not mounted); Online
	// tells the admin API whether a user is connected; TrustedProxies
	// are AUTH_TRUSTED_PROXIES, for the client IP the abuse limits count.
	Accounts       *accounts.Service
	Online         accounts.Online
	TrustedProxies clientip.Proxies
}

// API serves the endpoints.
type API struct {
	cfg          Config
	log          *slog.Logger
	requests     *prometheus.CounterVec
	tokensIssued prometheus.Counter
}

// New creates the API.
func New(cfg Config) *API {
	if cfg.Notify == nil {
		cfg.Notify = func() {}
	}
	a := &API{
		cfg: cfg,
		log: cfg.Log,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roomcast_auth_requests_total",
			Help: "Requests answered, by route and error code (\"\" for success).",
		}, []string{"route", "code"}),
		tokensIssued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roomcast_auth_tokens_issued_total",
			Help: "Tokens issued by POST /v1/tokens.",
		}),
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(a.requests, a.tokensIssued)
	}
	return a
}

// Mount registers the endpoints on mux.
func (a *API) Mount(mux *http.ServeMux) {
	a.route(mux, "POST /admin/v1/apps", a.admin(a.createApp))
	a.route(mux, "GET /admin/v1/apps", a.admin(a.listApps))
	a.route(mux, "POST /admin/v1/apps/{app}/keys", a.admin(a.createKey))
	a.route(mux, "GET /admin/v1/apps/{app}/keys", a.admin(a.listKeys))
	a.route(mux, "POST /admin/v1/apps/{app}/keys/{key}/rotate", a.admin(a.rotateKey))
	a.route(mux, "POST /admin/v1/apps/{app}/keys/{key}/revoke", a.admin(a.revokeKey))
	a.route(mux, "GET /admin/v1/signing-keys", a.admin(a.listSigningKeys))
	a.route(mux, "POST /admin/v1/signing-keys/rotate", a.admin(a.rotateSigningKey))
	a.route(mux, "POST "+authapi.PathTokens, a.issueToken)
	a.route(mux, "GET "+authapi.PathJWKS, a.jwks)
	a.mountOAuth(mux)
	a.mountUsers(mux)
	mux.HandleFunc("GET "+authapi.PathInternalKeys, func(w http.ResponseWriter, r *http.Request) {
		a.serve(w, r, authapi.PathInternalKeys, a.service(func(r *http.Request) (int, any, *Error) { return a.internalKeys(w, r) }))
	})
}

// handler answers a request with a value to encode or an error.
type handler func(r *http.Request) (status int, body any, err *Error)

// Error is an API error: HTTP status, stable code, message.
type Error struct {
	Status  int
	Code    protocol.Code
	Message string
}

func errorf(status int, code protocol.Code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

var (
	errUnauthorized = errorf(http.StatusUnauthorized, protocol.CodeUnauthorized, `send "Authorization: Bearer <credential>" with a valid credential`)
)

// route registers h under pattern, counting answers by route and code.
func (a *API) route(mux *http.ServeMux, pattern string, h handler) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { a.serve(w, r, pattern, h) })
}

func (a *API) serve(w http.ResponseWriter, r *http.Request, route string, h handler) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	status, body, aerr := h(r)
	if aerr != nil {
		a.requests.WithLabelValues(route, string(aerr.Code)).Inc()
		writeJSON(w, aerr.Status, authapi.Error{Error: authapi.ErrorBody{Code: aerr.Code, Message: aerr.Message}})
		return
	}
	a.requests.WithLabelValues(route, "").Inc()
	if status == http.StatusNotModified || status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, status, v)
}

// bearer returns the request's bearer credential.
func bearer(r *http.Request) (string, bool) {
	cred, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return cred, ok && cred != ""
}

// admin guards h with the admin credential (constant-time comparison).
func (a *API) admin(h handler) handler {
	return func(r *http.Request) (int, any, *Error) {
		cred, ok := bearer(r)
		if !ok || !seal.EqualStrings(cred, a.cfg.AdminToken) {
			return 0, nil, errUnauthorized
		}
		return h(r)
	}
}

// decode reads a JSON body into v; an empty body leaves v as it is when
// optional.
func decode(r *http.Request, v any, optional bool) *Error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if optional && errors.Is(err, io.EOF) {
			return nil
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, protocol.CodeBadRequest, "request body over %d bytes", maxBody)
		}
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "body is not valid JSON for this endpoint: %v", boundedErr(err))
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "body has data after the JSON value")
	}
	return nil
}

// boundedErr shortens a decoder error, which may quote the request.
func boundedErr(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// storeError maps a store error to an API error, logging unexpected ones.
func (a *API) storeError(op string, err error) *Error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, protocol.CodeNotFound, "no such app or key")
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, authapi.CodeConflict, "already exists")
	case errors.Is(err, store.ErrKeyRevoked):
		return errorf(http.StatusForbidden, protocol.CodeForbidden, "the API key is revoked or expired")
	case errors.Is(err, store.ErrBadKey):
		return errorf(http.StatusUnauthorized, protocol.CodeUnauthorized, "invalid API key")
	case errors.Is(err, store.ErrNoSigningKey):
		a.log.Error(op + ": no active signing key")
		return errorf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "no signing key yet; retry later")
	}
	a.log.Error(op+" failed", "err", err)
	return errorf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "database unavailable; retry later")
}
