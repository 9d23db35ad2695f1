// Package rest is the gateway's HTTP API for backends: publish one message
// or a batch into rooms, with the same guarantees as a WebSocket publish
// (offsets, idempotency keys, broker confirms). docs/openapi.yaml describes
// it.
//
// Callers authenticate with "Authorization: Bearer <credential>", where the
// credential is an API key ("<app>.<keyId>:<secret>", which may publish to
// every room of its app) or a client token with the publish capability on
// each room it publishes to.
package rest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/envelope"
	"github.com/roomcast/roomcast/pkg/httpjson"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/services/gateway/config"
	"github.com/roomcast/roomcast/services/gateway/internal/hub"
)

// MaxBatch is the most messages one batch request may carry.
const MaxBatch = 100

// Publisher is what the API needs of the hub.
type Publisher interface {
	Append(ctx context.Context, env envelope.Envelope, idemKey string) (*hub.Published, error)
	Broadcast(ctx context.Context, p *hub.Published) error
}

// API serves the REST endpoints.
type API struct {
	cfg      *config.Config
	keys     token.Keyring
	verifier *token.Verifier
	pub      Publisher
	log      *slog.Logger
	presence PresenceReader // nil: no presence endpoints
	history  HistoryReader  // nil: no history endpoint
}

// New creates the API.
func New(cfg *config.Config, keys token.Keyring, verifier *token.Verifier, pub Publisher, log *slog.Logger) *API {
	return &API{cfg: cfg, keys: keys, verifier: verifier, pub: pub, log: log}
}

// Mount registers the endpoints on mux.
func (a *API) Mount(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/messages", a.publish)
	mux.HandleFunc("POST /v1/messages/batch", a.publishBatch)
	if a.presence != nil {
		mux.HandleFunc("GET /v1/rooms/{room}/presence", a.presenceGet)
		mux.HandleFunc("GET /v1/rooms/{room}/presence/count", a.presenceCount)
	}
	a.mountHistory(mux)
}

// Message is one message to publish.
type Message struct {
	Room           string          `json:"room"`
	Data           json.RawMessage `json:"data"`
	Event          string          `json:"event,omitempty"`
	Transient      bool            `json:"transient,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
}

// Result is where a message was stored (no position for transient ones),
// or, in a batch, why that one message was refused.
type Result struct {
	Room   string              `json:"room,omitempty"`
	Offset uint64              `json:"offset,omitempty"`
	Epoch  string              `json:"epoch,omitempty"`
	Error  *httpjson.ErrorBody `json:"error,omitempty"`
}

// Batch is the body of a batch publish.
type Batch struct {
	Messages []Message `json:"messages"`
}

// BatchResult answers a batch, one result per message, in order.
type BatchResult struct {
	Results []Result `json:"results"`
}

// caller is an authenticated request's identity.
type caller struct {
	app  string
	from string             // client id for tokens; "" for API keys
	caps token.Capabilities // nil for static API keys: every room of the app
}

func (c *caller) mayPublish(room string) bool {
	return c.caps == nil || c.caps.Allows(room, token.OpPublish)
}

func (a *API) authenticate(r *http.Request) (*caller, *protocol.Error) {
	cred, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || cred == "" {
		return nil, protocol.NewError(protocol.CodeUnauthorized, `send "Authorization: Bearer <API key or token>"`)
	}
	if strings.Contains(cred, ":") {
		k, err := token.ParseAPIKey(cred)
		if err != nil {
			return nil, protocol.NewError(protocol.CodeUnauthorized, "malformed API key")
		}
		stored, found := a.keys.Lookup(k.ID)
		// Compare even when the key id is unknown, so timing does not tell
		// which key ids exist.
		if !found {
			stored = token.Key{Secret: []byte("no such key, compared anyway")}
		}
		if subtle.ConstantTimeCompare(stored.Secret, k.Secret) != 1 || !found || stored.App != k.App {
			return nil, protocol.NewError(protocol.CodeUnauthorized, "invalid API key")
		}
		return &caller{app: k.App, caps: stored.Caps}, nil // nil (static keys): every room
	}
	claims, err := a.verifier.Verify(cred)
	if err != nil {
		msg := "invalid token"
		if errors.Is(err, token.ErrExpired) {
			msg = "token expired"
		}
		a.log.Info("rest: credential rejected", "err", err, "token_fp", token.Fingerprint(cred))
		return nil, protocol.NewError(protocol.CodeUnauthorized, msg)
	}
	return &caller{app: claims.App, from: claims.ClientID(), caps: claims.Caps}, nil
}

// readJSON decodes the body into v within the size cap.
func (a *API) readJSON(w http.ResponseWriter, r *http.Request, v any) *protocol.Error {
	r.Body = http.MaxBytesReader(w, r.Body, int64(a.cfg.RESTMaxBodyBytes))
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return protocol.Errorf(protocol.CodeMessageTooLarge, "request body over %d bytes", a.cfg.RESTMaxBodyBytes)
		}
		return protocol.Errorf(protocol.CodeBadRequest, "body is not valid JSON for this endpoint: %v", err)
	}
	if dec.More() {
		return protocol.NewError(protocol.CodeBadRequest, "body has data after the JSON value")
	}
	return nil
}

// check validates one message for c.
func (a *API) check(c *caller, m *Message) *protocol.Error {
	cfg := a.cfg
	if perr := protocol.ValidateRoom(m.Room, cfg.MaxRoomNameBytes); perr != nil {
		return perr
	}
	switch {
	case !c.mayPublish(m.Room):
		return protocol.NewError(protocol.CodeForbidden, "token does not allow publish on this room")
	case len(m.Data) == 0:
		return protocol.NewError(protocol.CodeBadRequest, `"data" is required (any JSON value)`)
	case len(m.Data) > cfg.MaxMessageBytes:
		return protocol.Errorf(protocol.CodeMessageTooLarge, "data is %d bytes; the limit is %d", len(m.Data), cfg.MaxMessageBytes)
	case len(m.Event) > cfg.MaxEventBytes || len(m.IdempotencyKey) > cfg.MaxEventBytes:
		return protocol.Errorf(protocol.CodeBadRequest, "event name and idempotency key are limited to %d bytes", cfg.MaxEventBytes)
	case m.Transient && m.IdempotencyKey != "":
		return protocol.NewError(protocol.CodeBadRequest, "transient messages cannot carry an idempotency key")
	}
	return nil
}

func (a *API) envelope(c *caller, m *Message) envelope.Envelope {
	return envelope.Envelope{
		App: c.app, Room: m.Room, Event: m.Event, From: c.from,
		Timestamp: time.Now().UnixMilli(), Transient: m.Transient, Data: compact(m.Data),
	}
}

// compact strips insignificant whitespace, so subscribers get the same
// bytes whichever way a message was published.
func compact(raw json.RawMessage) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw // cannot happen: the decoder validated it
	}
	return buf.Bytes()
}

// status maps an error code to its HTTP status.
func status(code protocol.Code) int {
	switch code {
	case protocol.CodeUnauthorized:
		return http.StatusUnauthorized
	case protocol.CodeForbidden:
		return http.StatusForbidden
	case protocol.CodeMessageTooLarge:
		return http.StatusRequestEntityTooLarge
	case protocol.CodeRateLimited:
		return http.StatusTooManyRequests
	case protocol.CodeUnavailable, protocol.CodePublishFailed:
		return http.StatusServiceUnavailable
	case protocol.CodeInternal:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

func writeErr(w http.ResponseWriter, perr *protocol.Error) {
	httpjson.WriteError(w, status(perr.Code), perr.Code, perr.Message)
}

// begin authenticates the caller and decodes the body into v; on failure
// it answers the request itself and returns ok false.
func (a *API) begin(w http.ResponseWriter, r *http.Request, v any) (c *caller, ok bool) {
	c, perr := a.authenticate(r)
	if perr == nil {
		perr = a.readJSON(w, r, v)
	}
	if perr != nil {
		writeErr(w, perr)
		return nil, false
	}
	return c, true
}

func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	var m Message
	c, ok := a.begin(w, r, &m)
	if !ok {
		return
	}
	if perr := a.check(c, &m); perr != nil {
		writeErr(w, perr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.PublishTimeout)
	defer cancel()
	p, err := a.pub.Append(ctx, a.envelope(c, &m), m.IdempotencyKey)
	if err != nil {
		a.log.Warn("rest publish: append failed", "err", err)
		writeErr(w, protocol.NewError(protocol.CodeUnavailable, "room log unavailable; retry with the same idempotency key"))
		return
	}
	if err := a.pub.Broadcast(ctx, p); err != nil {
		a.log.Warn("rest publish: not confirmed", "err", err)
		writeErr(w, protocol.NewError(protocol.CodePublishFailed, "broker did not confirm; the message may still be delivered — retry with the same idempotency key"))
		return
	}
	httpjson.Write(w, http.StatusOK, result(m.Room, p))
}

func result(room string, p *hub.Published) Result {
	res := Result{Room: room}
	if p.Position != nil {
		res.Offset, res.Epoch = p.Position.Offset, p.Position.Epoch
	}
	return res
}

// publishBatch stores the messages in order (so messages to one room keep
// the request's order), then broadcasts them all at once. A message that
// fails validation or storage gets an error in its result; the others go
// ahead.
func (a *API) publishBatch(w http.ResponseWriter, r *http.Request) {
	var b Batch
	c, ok := a.begin(w, r, &b)
	if !ok {
		return
	}
	if len(b.Messages) == 0 || len(b.Messages) > MaxBatch {
		writeErr(w, protocol.Errorf(protocol.CodeBadRequest, "a batch holds 1 to %d messages, got %d", MaxBatch, len(b.Messages)))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.PublishTimeout)
	defer cancel()
	results := make([]Result, len(b.Messages))
	published := make([]*hub.Published, len(b.Messages))
	for i := range b.Messages {
		m := &b.Messages[i]
		if perr := a.check(c, m); perr != nil {
			results[i] = Result{Room: m.Room, Error: &httpjson.ErrorBody{Code: perr.Code, Message: perr.Message}}
			continue
		}
		p, err := a.pub.Append(ctx, a.envelope(c, m), m.IdempotencyKey)
		if err != nil {
			results[i] = Result{Room: m.Room, Error: &httpjson.ErrorBody{Code: protocol.CodeUnavailable, Message: "room log unavailable; retry with the same idempotency key"}}
			continue
		}
		published[i] = p
	}
	var wg sync.WaitGroup
	for i, p := range published {
		if p == nil {
			continue
		}
		wg.Add(1)
		go func(i int, p *hub.Published) {
			defer wg.Done()
			if err := a.pub.Broadcast(ctx, p); err != nil {
				a.log.Warn("rest batch: not confirmed", "err", err)
				results[i] = Result{Room: b.Messages[i].Room, Error: &httpjson.ErrorBody{Code: protocol.CodePublishFailed, Message: "broker did not confirm; the message may still be delivered — retry with the same idempotency key"}}
				return
			}
			results[i] = result(b.Messages[i].Room, p)
		}(i, p)
	}
	wg.Wait()
	httpjson.Write(w, http.StatusOK, BatchResult{Results: results})
}
