package rest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/httpjson"
	"github.com/roomcast/roomcast/pkg/presence"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// PresenceReader reads presence sets (pkg/presence.Store).
type PresenceReader interface {
	Get(ctx context.Context, app, room, cursor string, limit int) ([]protocol.PresenceMember, string, error)
	Count(ctx context.Context, app, room string) (protocol.PresenceCount, error)
}

// WithPresence enables the presence endpoints.
func (a *API) WithPresence(p PresenceReader) *API {
	a.presence = p
	return a
}

// Member is one member of a presence set, as REST returns it.
type Member struct {
	ClientID     string          `json:"client_id"`
	ConnectionID string          `json:"connection_id"`
	Data         json.RawMessage `json:"data,omitempty"`
	Since        int64           `json:"since"`
}

// MembersPage is one page of a room's presence set.
type MembersPage struct {
	Room    string   `json:"room"`
	Members []Member `json:"members"`
	// Cursor fetches the next page; absent on the last one.
	Cursor string `json:"cursor,omitempty"`
}

// Count is a room's presence counts.
type Count struct {
	Room        string `json:"room"`
	Clients     int    `json:"clients"`
	Connections int    `json:"connections"`
}

// presenceRoom authenticates a presence read and returns the caller's app
// and the room, or answers the request itself.
func (a *API) presenceRoom(w http.ResponseWriter, r *http.Request) (app, room string, ok bool) {
	c, perr := a.authenticate(r)
	if perr == nil {
		room = r.PathValue("room")
		perr = protocol.ValidateRoom(room, a.cfg.MaxRoomNameBytes)
	}
	if perr == nil && c.caps != nil && !c.caps.Allows(room, token.OpPresence) {
		perr = protocol.NewError(protocol.CodeForbidden, "credential does not allow presence on this room")
	}
	if perr != nil {
		writeErr(w, perr)
		return "", "", false
	}
	return c.app, room, true
}

func (a *API) presenceGet(w http.ResponseWriter, r *http.Request) {
	app, room, ok := a.presenceRoom(w, r)
	if !ok {
		return
	}
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > presence.MaxPageSize {
			writeErr(w, protocol.Errorf(protocol.CodeBadRequest, "limit must be an integer from 1 to %d", presence.MaxPageSize))
			return
		}
		limit = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	members, next, err := a.presence.Get(ctx, app, room, r.URL.Query().Get("cursor"), limit)
	switch {
	case errors.Is(err, presence.ErrCursor):
		writeErr(w, protocol.NewError(protocol.CodeBadRequest, "cursor is not one a previous page returned"))
		return
	case err != nil:
		a.log.Warn("rest: presence get failed", "room", room, "err", err)
		writeErr(w, protocol.NewError(protocol.CodeUnavailable, "presence unavailable; retry"))
		return
	}
	page := MembersPage{Room: room, Members: make([]Member, len(members)), Cursor: next}
	for i, m := range members {
		page.Members[i] = Member{ClientID: m.ClientID, ConnectionID: m.ConnectionID, Data: m.Data, Since: m.Since}
	}
	httpjson.Write(w, http.StatusOK, page)
}

func (a *API) presenceCount(w http.ResponseWriter, r *http.Request) {
	app, room, ok := a.presenceRoom(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	n, err := a.presence.Count(ctx, app, room)
	if err != nil {
		a.log.Warn("rest: presence count failed", "room", room, "err", err)
		writeErr(w, protocol.NewError(protocol.CodeUnavailable, "presence unavailable; retry"))
		return
	}
	httpjson.Write(w, http.StatusOK, Count{Room: room, Clients: n.Clients, Connections: n.Connections})
}
