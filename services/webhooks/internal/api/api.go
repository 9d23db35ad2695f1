// Package api serves the webhooks management API (docs/webhooks.md,
// docs/webhooks-openapi.yaml): an app's endpoints, their secrets, delivery
// log and replays. Every call is authenticated with one of the app's API
// keys ("Authorization: Bearer <app>.<keyId>:<secret>"), verified as the
// gateway's REST API verifies them (internal/keys); a key bounded by
// capabilities needs "admin" on every room ("*"), since an endpoint sees
// every room's events.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/httpjson"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/webhooks"
	"github.com/roomcast/roomcast/services/webhooks/internal/safenet"
	"github.com/roomcast/roomcast/services/webhooks/internal/store"
)

const maxBody = 64 << 10

// Keys verifies API keys (internal/keys).
type Keys interface {
	Verify(ctx context.Context, cred string) (token.Key, bool)
}

// Config configures the API.
type Config struct {
	Store         *store.Store
	Keys          Keys
	AllowPrivate  bool
	SecretOverlap time.Duration
	// Changed is called after a replay (wakes the dispatcher).
	Changed func()
	Log     *slog.Logger
}

// API serves the endpoints.
type API struct{ cfg Config }

// New creates the API.
func New(cfg Config) *API {
	if cfg.Changed == nil {
		cfg.Changed = func() {}
	}
	return &API{cfg: cfg}
}

type apiError struct {
	status int
	code   protocol.Code
	msg    string
}

func errorf(status int, code protocol.Code, format string, args ...any) *apiError {
	return &apiError{status, code, fmt.Sprintf(format, args...)}
}

type handler func(r *http.Request, app string) (int, any, *apiError)

// Mount registers the routes.
func (a *API) Mount(mux *http.ServeMux) {
	p := webhooks.PathEndpoints
	a.route(mux, "POST "+p, a.create)
	a.route(mux, "GET "+p, a.list)
	a.route(mux, "GET "+p+"/{id}", a.get)
	a.route(mux, "PATCH "+p+"/{id}", a.update)
	a.route(mux, "DELETE "+p+"/{id}", a.delete)
	a.route(mux, "POST "+p+"/{id}/rotate-secret", a.rotate)
	a.route(mux, "GET "+p+"/{id}/deliveries", a.deliveries)
	a.route(mux, "POST "+p+"/{id}/replay", a.replay)
}

func (a *API) route(mux *http.ServeMux, pattern string, h handler) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		app, aerr := a.authenticate(r)
		status, body := 0, any(nil)
		if aerr == nil {
			status, body, aerr = h(r, app)
		}
		if aerr != nil {
			writeJSON(w, aerr.status, webhooks.Error{Error: webhooks.ErrorBody{Code: aerr.code, Message: aerr.msg}})
			return
		}
		if status == http.StatusNoContent {
			w.WriteHeader(status)
			return
		}
		writeJSON(w, status, body)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, status, v)
}

func (a *API) authenticate(r *http.Request) (string, *apiError) {
	cred, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || cred == "" {
		return "", errorf(http.StatusUnauthorized, protocol.CodeUnauthorized, `send "Authorization: Bearer <API key>"`)
	}
	k, ok := a.cfg.Keys.Verify(r.Context(), cred)
	if !ok {
		a.cfg.Log.Info("api: credential rejected", "key_fp", token.Fingerprint(cred))
		return "", errorf(http.StatusUnauthorized, protocol.CodeUnauthorized, "invalid API key")
	}
	if k.Caps != nil && !k.Caps.Allows("*", token.OpAdmin) {
		return "", errorf(http.StatusForbidden, protocol.CodeForbidden, `managing webhooks needs an API key with "admin" on "*"`)
	}
	return k.App, nil
}

func decode(r *http.Request, v any, optional bool) *apiError {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if optional && errors.Is(err, io.EOF) {
			return nil
		}
		s := err.Error()
		if len(s) > 200 {
			s = s[:200] + "…"
		}
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "body is not valid JSON for this endpoint: %s", s)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "body has data after the JSON value")
	}
	return nil
}

func (a *API) storeError(op string, err error) *apiError {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, protocol.CodeNotFound, "no such endpoint")
	case errors.Is(err, store.ErrCursor):
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "invalid cursor")
	}
	a.cfg.Log.Error("api: "+op, "err", err)
	return errorf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "the database is unavailable; try again")
}

// MaxHeaders and friends bound an endpoint's settings.
const (
	MaxHeaders     = 20
	MaxBatchSize   = 100
	MaxDescription = 500
)

// reserved headers are set by the service and cannot be overridden.
var reserved = map[string]bool{"Content-Type": true, "Content-Length": true, "Host": true, "User-Agent": true,
	"Webhook-Id": true, "Webhook-Timestamp": true, "Webhook-Signature": true, "Transfer-Encoding": true, "Connection": true}

// validate checks an endpoint's settings.
func (a *API) validate(ctx context.Context, e *webhooks.Endpoint) *apiError {
	if err := safenet.CheckURL(ctx, e.URL, a.cfg.AllowPrivate); err != nil {
		if errors.Is(err, safenet.ErrNotAllowed) {
			return errorf(http.StatusUnprocessableEntity, webhooks.CodeURLNotAllowed, "%v (set WEBHOOKS_ALLOW_PRIVATE for local development)", err)
		}
		return errorf(http.StatusUnprocessableEntity, webhooks.CodeInvalidURL, "%v", err)
	}
	if len(e.Types) == 0 {
		e.Types = append([]string(nil), webhooks.DefaultTypes...)
	}
	seen := map[string]bool{}
	types := e.Types[:0]
	for _, t := range e.Types {
		if !webhooks.ValidType(t) {
			return errorf(http.StatusUnprocessableEntity, webhooks.CodeInvalidEventType, "unknown event type %q (known: %s)", t, strings.Join(webhooks.Types, ", "))
		}
		if !seen[t] {
			seen[t] = true
			types = append(types, t)
		}
	}
	e.Types = types
	if e.Headers == nil {
		e.Headers = map[string]string{}
	}
	if len(e.Headers) > MaxHeaders {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "at most %d custom headers", MaxHeaders)
	}
	for k, v := range e.Headers {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		// httpguts is what net/http checks when sending: a name or value
		// it refuses would fail every delivery of the endpoint.
		if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) || reserved[ck] || len(k)+len(v) > 1024 {
			return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "header %q cannot be set (reserved or malformed)", k)
		}
	}
	if e.BatchSize < 0 || e.BatchSize > MaxBatchSize {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "batch_size must be 0–%d", MaxBatchSize)
	}
	e.BatchSize = max(e.BatchSize, 1)
	if len(e.Description) > MaxDescription {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "description over %d bytes", MaxDescription)
	}
	return nil
}

func (a *API) create(r *http.Request, app string) (int, any, *apiError) {
	var req webhooks.CreateEndpoint
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	e := webhooks.Endpoint{App: app, URL: req.URL, Description: req.Description, Types: req.Types, Headers: req.Headers,
		Enabled: req.Enabled == nil || *req.Enabled, BatchSize: req.BatchSize}
	if err := a.validate(r.Context(), &e); err != nil {
		return 0, nil, err
	}
	out, err := a.cfg.Store.CreateEndpoint(r.Context(), e)
	if err != nil {
		return 0, nil, a.storeError("create endpoint", err)
	}
	a.cfg.Log.Info("endpoint created", "app", app, "endpoint", out.ID, "secret_fp", token.Fingerprint(out.Secret))
	return http.StatusCreated, out, nil
}

func (a *API) list(r *http.Request, app string) (int, any, *apiError) {
	eps, err := a.cfg.Store.Endpoints(r.Context(), app)
	if err != nil {
		return 0, nil, a.storeError("list endpoints", err)
	}
	return http.StatusOK, webhooks.Endpoints{Endpoints: eps}, nil
}

func (a *API) get(r *http.Request, app string) (int, any, *apiError) {
	e, err := a.cfg.Store.Endpoint(r.Context(), app, r.PathValue("id"))
	if err != nil {
		return 0, nil, a.storeError("get endpoint", err)
	}
	return http.StatusOK, e, nil
}

func (a *API) update(r *http.Request, app string) (int, any, *apiError) {
	var req webhooks.UpdateEndpoint
	if err := decode(r, &req, false); err != nil {
		return 0, nil, err
	}
	e, err := a.cfg.Store.Endpoint(r.Context(), app, r.PathValue("id"))
	if err != nil {
		return 0, nil, a.storeError("update endpoint", err)
	}
	if req.URL != nil {
		e.URL = *req.URL
	}
	if req.Description != nil {
		e.Description = *req.Description
	}
	if req.Types != nil {
		e.Types = req.Types
	}
	if req.Headers != nil {
		e.Headers = *req.Headers
	}
	if req.Enabled != nil {
		e.Enabled = *req.Enabled
	}
	if req.BatchSize != nil {
		e.BatchSize = *req.BatchSize
	}
	if aerr := a.validate(r.Context(), &e); aerr != nil {
		return 0, nil, aerr
	}
	out, err := a.cfg.Store.UpdateEndpoint(r.Context(), e)
	if err != nil {
		return 0, nil, a.storeError("update endpoint", err)
	}
	return http.StatusOK, out, nil
}

func (a *API) delete(r *http.Request, app string) (int, any, *apiError) {
	if err := a.cfg.Store.DeleteEndpoint(r.Context(), app, r.PathValue("id")); err != nil {
		return 0, nil, a.storeError("delete endpoint", err)
	}
	return http.StatusNoContent, nil, nil
}

func (a *API) rotate(r *http.Request, app string) (int, any, *apiError) {
	var req webhooks.RotateSecret
	if err := decode(r, &req, true); err != nil {
		return 0, nil, err
	}
	overlap := a.cfg.SecretOverlap
	if req.Overlap != "" {
		d, err := time.ParseDuration(req.Overlap)
		if err != nil || d < 0 || d > 30*24*time.Hour {
			return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, "overlap must be a duration between 0s and 720h")
		}
		overlap = d
	}
	id := r.PathValue("id")
	secret, err := a.cfg.Store.RotateSecret(r.Context(), app, id, overlap)
	if err != nil {
		return 0, nil, a.storeError("rotate secret", err)
	}
	e, err := a.cfg.Store.Endpoint(r.Context(), app, id)
	if err != nil {
		return 0, nil, a.storeError("rotate secret", err)
	}
	e.Secret = secret
	a.cfg.Log.Info("endpoint secret rotated", "app", app, "endpoint", id, "overlap", overlap.String(), "secret_fp", token.Fingerprint(secret))
	return http.StatusOK, e, nil
}

func (a *API) deliveries(r *http.Request, app string) (int, any, *apiError) {
	q := r.URL.Query()
	state := q.Get("state")
	switch state {
	case "", webhooks.StatePending, webhooks.StateDelivered, webhooks.StateDead:
	default:
		return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, "state must be pending, delivered or dead")
	}
	limit := 50
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, "limit must be 1–500")
		}
		limit = n
	}
	out, err := a.cfg.Store.Deliveries(r.Context(), app, r.PathValue("id"), state, q.Get("cursor"), limit)
	if err != nil {
		return 0, nil, a.storeError("deliveries", err)
	}
	return http.StatusOK, out, nil
}

func (a *API) replay(r *http.Request, app string) (int, any, *apiError) {
	var req webhooks.Replay
	if err := decode(r, &req, true); err != nil {
		return 0, nil, err
	}
	ids := make([]int64, 0, len(req.DeliveryIDs))
	for _, s := range req.DeliveryIDs {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return 0, nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, "delivery id %q is not one of this API's", s)
		}
		ids = append(ids, n)
	}
	n, err := a.cfg.Store.Replay(r.Context(), app, r.PathValue("id"), ids)
	if err != nil {
		return 0, nil, a.storeError("replay", err)
	}
	if n > 0 {
		a.cfg.Changed()
	}
	return http.StatusOK, webhooks.Replayed{Replayed: n}, nil
}
