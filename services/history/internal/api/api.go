// Package api is the history service's internal read API, which gateways
// call (pkg/history.Client) to page the archive. Every request carries the
// cluster's service token; the gateways do the per-client authorization.
package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/roomcast/roomcast/pkg/history"
	"github.com/roomcast/roomcast/pkg/httpjson"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// Reader is what the API needs of the store.
type Reader interface {
	Epochs(ctx context.Context, app, room string) ([]string, error)
	Read(ctx context.Context, r history.ReadRequest) ([]protocol.Message, error)
}

// API serves the internal endpoints.
type API struct {
	store Reader
	token string
	log   *slog.Logger
}

// New creates the API; an empty token refuses every request.
func New(st Reader, serviceToken string, log *slog.Logger) *API {
	return &API{store: st, token: serviceToken, log: log}
}

// Mount registers the endpoints on mux.
func (a *API) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET "+history.EpochsPath, a.guard(a.epochs))
	mux.HandleFunc("GET "+history.MessagesPath, a.guard(a.messages))
}

func (a *API) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if a.token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
			writeJSON(w, http.StatusUnauthorized, errorBody("unauthorized", "service token required"))
			return
		}
		h(w, r)
	}
}

func (a *API) epochs(w http.ResponseWriter, r *http.Request) {
	app, room := r.URL.Query().Get("app"), r.URL.Query().Get("room")
	if app == "" || room == "" {
		writeJSON(w, http.StatusBadRequest, errorBody("bad_request", "app and room are required"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	eps, err := a.store.Epochs(ctx, app, room)
	if err != nil {
		a.fail(w, err)
		return
	}
	if eps == nil {
		eps = []string{}
	}
	writeJSON(w, http.StatusOK, history.EpochsResponse{Epochs: eps})
}

func (a *API) messages(w http.ResponseWriter, r *http.Request) {
	req, err := history.ParseReadRequest(r.URL.Query())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody("bad_request", err.Error()))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	msgs, err := a.store.Read(ctx, req)
	if err != nil {
		a.fail(w, err)
		return
	}
	out := history.MessagesResponse{Messages: make([]history.ArchivedMessage, len(msgs))}
	for i, m := range msgs {
		out.Messages[i] = history.ArchivedMessage{Offset: m.Offset, Epoch: m.Epoch, Event: m.Event, From: m.From, Data: m.Data,
			Binary: m.Binary, Timestamp: m.Timestamp}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) fail(w http.ResponseWriter, err error) {
	if !errors.Is(err, context.Canceled) {
		a.log.Warn("read failed", "err", err)
	}
	writeJSON(w, http.StatusServiceUnavailable, errorBody("unavailable", "archive unavailable; retry"))
}

func errorBody(code, msg string) map[string]any {
	return map[string]any{"error": map[string]string{"code": code, "message": msg}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	httpjson.Write(w, status, v)
}
