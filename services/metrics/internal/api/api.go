// Package api is the usage API:
//
//	GET /v1/apps/{app}/stats?from=&to=&unit=minute|hour|day
//	GET /v1/apps/{app}/rooms/{room}/stats?from=&to=&unit=...
//
// authenticated with an API key of the app ("Authorization: Bearer
// <app>.<keyId>:<secret>"). Errors are {"error":{"code","message"}} with a
// code from pkg/protocol.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/httpjson"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/services/metrics/internal/store"
)

// Store reads usage.
type Store interface {
	Stats(ctx context.Context, app, room string, from, to time.Time, unit string) ([]store.Bucket, error)
}

// Keys verifies API keys (pkg/auth/apikeys).
type Keys interface {
	Verify(ctx context.Context, cred string) (token.Key, bool)
}

// API serves the usage API.
type API struct {
	store      Store
	keys       Keys
	maxBuckets int
	maxRoom    int
	log        *slog.Logger
	now        func() time.Time
}

// New returns the API.
func New(st Store, keys Keys, maxBuckets int, log *slog.Logger) *API {
	return &API{store: st, keys: keys, maxBuckets: maxBuckets, maxRoom: 1024, log: log, now: time.Now}
}

// Mount registers the routes on mux.
func (a *API) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/apps/{app}/stats", a.stats)
	mux.HandleFunc("GET /v1/apps/{app}/rooms/{room}/stats", a.stats)
}

// Response is the body of a stats answer.
type Response struct {
	App     string   `json:"app"`
	Room    string   `json:"room,omitempty"`
	Unit    string   `json:"unit"`
	From    string   `json:"from"`
	To      string   `json:"to"`
	Buckets []Bucket `json:"buckets"`
	Totals  Totals   `json:"totals"`
}

// Bucket is one unit of time.
type Bucket struct {
	Start              string `json:"start"`
	Connections        int64  `json:"connections"`
	PeakConnections    int64  `json:"peak_connections"`
	CurrentConnections int64  `json:"current_connections"`
	Messages           int64  `json:"messages"`
	Bytes              int64  `json:"bytes"`
	PeakPresence       int64  `json:"peak_presence"`
	CurrentPresence    int64  `json:"current_presence"`
}

// Totals sum the counters and take the highest peaks over the range; the
// current values are those at its end.
type Totals struct {
	Connections        int64 `json:"connections"`
	PeakConnections    int64 `json:"peak_connections"`
	CurrentConnections int64 `json:"current_connections"`
	Messages           int64 `json:"messages"`
	Bytes              int64 `json:"bytes"`
	PeakPresence       int64 `json:"peak_presence"`
	CurrentPresence    int64 `json:"current_presence"`
}

func (a *API) stats(w http.ResponseWriter, r *http.Request) {
	app, room := r.PathValue("app"), r.PathValue("room")
	cred, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || cred == "" {
		writeErr(w, protocol.NewError(protocol.CodeUnauthorized, `send "Authorization: Bearer <API key>"`))
		return
	}
	key, ok := a.keys.Verify(r.Context(), cred)
	if !ok {
		writeErr(w, protocol.NewError(protocol.CodeUnauthorized, "unknown, revoked or invalid API key"))
		return
	}
	if key.App != app {
		writeErr(w, protocol.NewError(protocol.CodeForbidden, "the API key belongs to another app"))
		return
	}
	if room != "" {
		if perr := protocol.ValidateRoom(room, a.maxRoom); perr != nil {
			writeErr(w, perr)
			return
		}
	}
	q := r.URL.Query()
	unit := q.Get("unit")
	if unit == "" {
		unit = store.Minute
	}
	d, ok := store.UnitDuration(unit)
	if !ok {
		writeErr(w, protocol.NewError(protocol.CodeBadRequest, `unit must be "minute", "hour" or "day"`))
		return
	}
	to, err := parseTime(q.Get("to"), a.now())
	if err != nil {
		writeErr(w, protocol.NewError(protocol.CodeBadRequest, "to: "+err.Error()))
		return
	}
	from, err := parseTime(q.Get("from"), to.Add(-60*d))
	if err != nil {
		writeErr(w, protocol.NewError(protocol.CodeBadRequest, "from: "+err.Error()))
		return
	}
	// Buckets are whole units: from rounds down, to rounds up.
	from = from.UTC().Truncate(d)
	if t := to.UTC().Truncate(d); !t.Equal(to.UTC()) {
		to = t.Add(d)
	} else {
		to = t
	}
	switch {
	case !from.Before(to):
		writeErr(w, protocol.NewError(protocol.CodeBadRequest, "from must be before to"))
		return
	case to.Sub(from)/d > time.Duration(a.maxBuckets):
		writeErr(w, protocol.Errorf(protocol.CodeBadRequest, "the range holds more than %d %ss; narrow it or use a larger unit", a.maxBuckets, unit))
		return
	}
	buckets, err := a.store.Stats(r.Context(), app, room, from, to, unit)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return
		}
		a.log.Warn("stats query failed", "err", err)
		writeErr(w, protocol.NewError(protocol.CodeUnavailable, "usage store unavailable; retry"))
		return
	}
	resp := Response{App: app, Room: room, Unit: unit, From: from.Format(time.RFC3339), To: to.Format(time.RFC3339), Buckets: make([]Bucket, len(buckets))}
	for i, b := range buckets {
		resp.Buckets[i] = Bucket{Start: b.Start.Format(time.RFC3339), Connections: b.Connections, PeakConnections: b.PeakConnections,
			CurrentConnections: b.CurrentConnections, Messages: b.Messages, Bytes: b.Bytes, PeakPresence: b.PeakPresence, CurrentPresence: b.CurrentPresence}
		t := &resp.Totals
		t.Connections += b.Connections
		t.Messages += b.Messages
		t.Bytes += b.Bytes
		t.PeakConnections = max(t.PeakConnections, b.PeakConnections)
		t.PeakPresence = max(t.PeakPresence, b.PeakPresence)
		t.CurrentConnections, t.CurrentPresence = b.CurrentConnections, b.CurrentPresence
	}
	httpjson.Write(w, http.StatusOK, resp)
}

// parseTime reads RFC 3339 or unix milliseconds; "" is def.
func parseTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errors.New("want RFC 3339 (2006-01-02T15:04:05Z) or unix milliseconds")
	}
	return t, nil
}

func writeErr(w http.ResponseWriter, perr *protocol.Error) {
	status := http.StatusBadRequest
	switch perr.Code {
	case protocol.CodeUnauthorized:
		status = http.StatusUnauthorized
	case protocol.CodeForbidden:
		status = http.StatusForbidden
	case protocol.CodeUnavailable:
		status = http.StatusServiceUnavailable
	}
	httpjson.WriteError(w, status, perr.Code, perr.Message)
}
