package rest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/history"
	"github.com/roomcast/roomcast/pkg/httpjson"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// HistoryReader pages a room's history (pkg/history.Reader).
type HistoryReader interface {
	Query(ctx context.Context, q history.Query) (history.Page, error)
}

// WithHistory enables GET /v1/rooms/{room}/messages (nil leaves it off).
func (a *API) WithHistory(h HistoryReader) *API {
	a.history = h
	return a
}

// mountHistory registers the history endpoint when enabled.
func (a *API) mountHistory(mux *http.ServeMux) {
	if a.history != nil {
		mux.HandleFunc("GET /v1/rooms/{room}/messages", a.historyGet)
	}
}

// HistoryMessage is one message of a history page.
type HistoryMessage struct {
	Offset uint64          `json:"offset"`
	Epoch  string          `json:"epoch"`
	Event  string          `json:"event,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	// Encoding is protocol.EncodingBase64 when Data is a base64 string of
	// a binary payload.
	Encoding  string `json:"encoding,omitempty"`
	From      string `json:"from,omitempty"`
	Timestamp int64  `json:"ts"`
}

// HistoryPage is one page of a room's history.
type HistoryPage struct {
	Room     string           `json:"room"`
	Messages []HistoryMessage `json:"messages"`
	// Cursor fetches the next page; absent on the last one.
	Cursor string `json:"cursor,omitempty"`
}

// historyPageBytes bounds the data of one REST page.
const historyPageBytes = 4 << 20

func (a *API) historyGet(w http.ResponseWriter, r *http.Request) {
	c, perr := a.authenticate(r)
	room := r.PathValue("room")
	if perr == nil {
		perr = protocol.ValidateRoom(room, a.cfg.MaxRoomNameBytes)
	}
	if perr == nil && c.caps != nil && !c.caps.Allows(room, token.OpHistory) {
		perr = protocol.NewError(protocol.CodeForbidden, "credential does not allow history on this room")
	}
	var q history.Query
	if perr == nil {
		q, perr = parseHistoryQuery(r.URL.Query())
	}
	if perr != nil {
		writeErr(w, perr)
		return
	}
	q.App, q.Room, q.MaxBytes = c.app, room, historyPageBytes
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	page, err := a.history.Query(ctx, q)
	if perr := history.ProtocolError(err); perr != nil {
		if perr.Code == protocol.CodeUnavailable {
			a.log.Warn("rest: history read failed", "room", room, "err", err)
		}
		writeErr(w, perr)
		return
	}
	out := HistoryPage{Room: room, Messages: make([]HistoryMessage, len(page.Messages)), Cursor: page.Cursor}
	for i, m := range page.Messages {
		out.Messages[i] = HistoryMessage{Offset: m.Offset, Epoch: m.Epoch, Event: m.Event, From: m.From, Timestamp: m.Timestamp}
		switch {
		case len(m.Data) == 0:
		case m.Binary || !utf8.Valid(m.Data) || !json.Valid(m.Data):
			// As on the JSON subprotocol: binary payloads in base64. (The
			// reader marks every payload that is not JSON; unmarked data
			// that is not JSON would make an invalid page.)
			b, _ := json.Marshal(base64.StdEncoding.EncodeToString(m.Data))
			out.Messages[i].Data, out.Messages[i].Encoding = b, protocol.EncodingBase64
		default:
			out.Messages[i].Data = m.Data
		}
	}
	httpjson.Write(w, http.StatusOK, out)
}

// parseHistoryQuery reads the query parameters of a history read.
func parseHistoryQuery(v url.Values) (history.Query, *protocol.Error) {
	var q history.Query
	switch v.Get("direction") {
	case "", protocol.DirectionForward:
	case protocol.DirectionBackward:
		q.Backward = true
	default:
		return q, protocol.NewError(protocol.CodeBadRequest, `direction must be "forward" or "backward"`)
	}
	q.Epoch, q.Cursor = v.Get("epoch"), v.Get("cursor")
	for _, p := range []struct {
		name string
		dst  *uint64
	}{{"from_offset", &q.FromOffset}, {"to_offset", &q.ToOffset}} {
		if s := v.Get(p.name); s != "" {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return q, protocol.Errorf(protocol.CodeBadRequest, "%s must be a non-negative integer", p.name)
			}
			*p.dst = n
		}
	}
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"start", &q.Start}, {"end", &q.End}} {
		if s := v.Get(p.name); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return q, protocol.Errorf(protocol.CodeBadRequest, "%s must be unix milliseconds", p.name)
			}
			*p.dst = n
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > history.MaxLimit {
			return q, protocol.Errorf(protocol.CodeBadRequest, "limit must be an integer from 1 to %d", history.MaxLimit)
		}
		q.Limit = n
	}
	return q, nil
}
