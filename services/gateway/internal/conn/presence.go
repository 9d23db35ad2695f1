package conn

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/hibiken/asynq"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/presence"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// Presence: the connection validates a change, records it locally (so it
// can leave on close and re-enter after a lost lease) and enqueues it for
// the presence service, which applies it and publishes the event. Reads
// (get, count) go straight to Redis. Subscribing is joining the room's
// presence channel in the hub, so presence events are ordered and
// recoverable exactly like room messages.

// presenceState is the connection's presence: room → member data. Guarded
// by presenceMu, because the lease loop re-enters from another goroutine.
type presenceState struct {
	rooms   map[string][]byte // nil until the first enter: most connections never enter
	lastSeq int64
}

func (p *presenceState) set(room string, data []byte) {
	if p.rooms == nil {
		p.rooms = make(map[string][]byte)
	}
	p.rooms[room] = data
}

// memberID is the connection's presence identity: its session, which a
// resumed connection keeps, or the connection id when Redis had no session.
func (c *Conn) memberID() string {
	if id := c.SessionID(); id != "" {
		return id
	}
	return c.ID
}

// nextSeq orders this connection's presence changes: unix microseconds,
// strictly increasing. Callers hold presenceMu.
func (c *Conn) nextSeq() int64 {
	seq := time.Now().UnixMicro()
	if seq <= c.pres.lastSeq {
		seq = c.pres.lastSeq + 1
	}
	c.pres.lastSeq = seq
	return seq
}

// emitChange enqueues one change. Callers hold presenceMu.
func (c *Conn) emitChange(typ, room string, data []byte) {
	now := time.Now()
	c.d.Events.Emit(typ, events.PresenceChange{
		V: events.Version, App: c.claims.App, Room: room, ClientID: c.claims.ClientID(),
		MemberID: c.memberID(), ConnID: c.ID, Node: c.d.Config.NodeID,
		Data: json.RawMessage(data), Seq: c.nextSeq(), At: now.UnixMilli(),
	})
}

// presenceOn reports whether this cluster runs the presence service (the
// gateway enqueues presence changes); if not, it answers cmd.
func (c *Conn) presenceOn(cmd *protocol.Command) bool {
	if c.d.Events != nil && c.d.Events.Wants(events.TypePresenceEnter) {
		return true
	}
	c.replyError(cmd.ID, protocol.NewError(protocol.CodeUnavailable, "presence is not enabled on this cluster (GATEWAY_EVENT_CONSUMERS)"))
	return false
}

func (c *Conn) presenceEnter(cmd *protocol.Command) {
	if perr := c.checkRoom(cmd, token.OpPresence); perr != nil {
		c.replyError(cmd.ID, perr)
		return
	}
	if !c.presenceOn(cmd) {
		return
	}
	if !c.rooms.has(cmd.Room) {
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeNotJoined, "join the room before entering its presence"))
		return
	}
	if perr := c.checkPresenceData(cmd); perr != nil {
		c.replyError(cmd.ID, perr)
		return
	}
	c.presenceMu.Lock()
	typ := events.TypePresenceEnter
	if _, ok := c.pres.rooms[cmd.Room]; ok {
		typ = events.TypePresenceUpdate
	}
	c.pres.set(cmd.Room, cmd.Data)
	c.emitChange(typ, cmd.Room, cmd.Data)
	c.presenceMu.Unlock()
	c.Reply(&protocol.Reply{ID: cmd.ID, Room: cmd.Room})
}

func (c *Conn) presenceUpdate(cmd *protocol.Command) {
	if perr := c.checkRoom(cmd, token.OpPresence); perr != nil {
		c.replyError(cmd.ID, perr)
		return
	}
	if !c.presenceOn(cmd) {
		return
	}
	if perr := c.checkPresenceData(cmd); perr != nil {
		c.replyError(cmd.ID, perr)
		return
	}
	c.presenceMu.Lock()
	_, ok := c.pres.rooms[cmd.Room]
	if ok {
		c.pres.rooms[cmd.Room] = cmd.Data
		c.emitChange(events.TypePresenceUpdate, cmd.Room, cmd.Data)
	}
	c.presenceMu.Unlock()
	if !ok {
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeNotPresent, "enter the room's presence before updating it"))
		return
	}
	c.Reply(&protocol.Reply{ID: cmd.ID, Room: cmd.Room})
}

func (c *Conn) presenceLeave(cmd *protocol.Command) {
	if perr := protocol.ValidateRoom(cmd.Room, c.d.Config.MaxRoomNameBytes); perr != nil {
		c.replyError(cmd.ID, perr)
		return
	}
	if !c.leavePresence(cmd.Room) {
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeNotPresent, "not in this room's presence"))
		return
	}
	c.Reply(&protocol.Reply{ID: cmd.ID, Room: cmd.Room})
}

// leavePresence leaves a room's presence at once; it reports whether the
// connection was present there.
func (c *Conn) leavePresence(room string) bool {
	c.presenceMu.Lock()
	defer c.presenceMu.Unlock()
	if _, ok := c.pres.rooms[room]; !ok {
		return false
	}
	delete(c.pres.rooms, room)
	c.emitChange(events.TypePresenceLeave, room, nil)
	return true
}

func (c *Conn) checkPresenceData(cmd *protocol.Command) *protocol.Error {
	data := cmd.Data
	if cmd.Binary {
		// Presence data is read back as JSON (REST, webhooks, the presence
		// service); only room messages carry binary payloads.
		return protocol.NewError(protocol.CodeBadRequest, "presence data must be JSON, not binary")
	}
	if len(data) > c.d.Config.MaxPresenceDataBytes {
		return protocol.Errorf(protocol.CodeMessageTooLarge, "presence data is %d bytes; the limit is %d", len(data), c.d.Config.MaxPresenceDataBytes)
	}
	return nil
}

func (c *Conn) presenceGet(cmd *protocol.Command) {
	if perr := c.checkRoom(cmd, token.OpPresence); perr != nil {
		c.replyError(cmd.ID, perr)
		return
	}
	if cmd.Limit > presence.MaxPageSize {
		c.replyError(cmd.ID, protocol.Errorf(protocol.CodeBadRequest, "limit must be at most %d", presence.MaxPageSize))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	members, next, err := c.d.Presence.Get(ctx, c.claims.App, cmd.Room, cmd.Cursor, cmd.Limit)
	switch {
	case errors.Is(err, presence.ErrCursor):
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeBadRequest, "cursor is not one a previous page returned"))
		return
	case err != nil:
		c.log.Warn("presence get failed", "room", cmd.Room, "err", err)
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeUnavailable, "presence unavailable; retry"))
		return
	}
	c.Reply(&protocol.Reply{ID: cmd.ID, Room: cmd.Room, Members: members, Cursor: next})
}

func (c *Conn) presenceCount(cmd *protocol.Command) {
	if perr := c.checkRoom(cmd, token.OpPresence); perr != nil {
		c.replyError(cmd.ID, perr)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.d.Presence.Count(ctx, c.claims.App, cmd.Room)
	if err != nil {
		c.log.Warn("presence count failed", "room", cmd.Room, "err", err)
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeUnavailable, "presence unavailable; retry"))
		return
	}
	c.Reply(&protocol.Reply{ID: cmd.ID, Room: cmd.Room, Count: &n})
}

// presenceSubscribe joins the room's presence channel; the hub sends the
// reply (with the channel's position) ahead of its events.
func (c *Conn) presenceSubscribe(cmd *protocol.Command) {
	if perr := c.checkRoom(cmd, token.OpPresence); perr != nil {
		c.replyError(cmd.ID, perr)
		return
	}
	c.joinHub(cmd, protocol.PresenceChannel(cmd.Room))
}

func (c *Conn) presenceUnsubscribe(cmd *protocol.Command) {
	if perr := protocol.ValidateRoom(cmd.Room, c.d.Config.MaxRoomNameBytes); perr != nil {
		c.replyError(cmd.ID, perr)
		return
	}
	channel := protocol.PresenceChannel(cmd.Room)
	if !c.rooms.has(channel) {
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeNotJoined, "not subscribed to this room's presence"))
		return
	}
	c.rooms.remove(channel)
	c.d.Hub.Leave(c.claims.App, channel, c)
	c.Reply(&protocol.Reply{ID: cmd.ID, Room: cmd.Room})
}

// takeOverPresence runs after a resume: the session's members (entered by
// its previous connection, perhaps on another node) become this
// connection's. Entering with the same data changes only who holds them —
// no event — and the previous connection's detach, when it runs, finds
// them held by this one and leaves them alone.
func (c *Conn) takeOverPresence(ctx context.Context) {
	member := c.memberID()
	rooms, err := c.d.Presence.Rooms(ctx, c.claims.App, member)
	if err != nil {
		c.log.Warn("presence takeover failed", "err", err)
		return
	}
	for _, room := range rooms {
		m, ok, err := c.d.Presence.Member(ctx, c.claims.App, room, member)
		if err != nil {
			c.log.Warn("presence takeover failed", "room", room, "err", err)
			continue
		}
		if !ok {
			continue
		}
		c.presenceMu.Lock()
		c.pres.set(room, m.Data)
		c.emitChange(events.TypePresenceEnter, room, m.Data)
		c.presenceMu.Unlock()
	}
}

// dropPresence runs when the connection ends. A deliberate close leaves at
// once; otherwise the members stay for the grace, so a client that resumes
// within it (on any node) causes no presence events.
func (c *Conn) dropPresence() {
	c.presenceMu.Lock()
	defer c.presenceMu.Unlock()
	if len(c.pres.rooms) == 0 || c.d.Events == nil {
		return
	}
	if c.peerClosed {
		for room := range c.pres.rooms {
			c.emitChange(events.TypePresenceLeave, room, nil)
		}
	} else {
		c.d.Events.Emit(events.TypePresenceDetach, events.PresenceDetach{
			V: events.Version, App: c.claims.App, MemberID: c.memberID(), ConnID: c.ID,
			Seq: c.nextSeq(), At: time.Now().UnixMilli(),
		}, asynq.ProcessIn(c.d.Config.PresenceGrace))
	}
	c.pres.rooms = nil
}

// ReenterPresence enqueues the connection's members again. The node's
// lease ran out (Redis was unreachable) and the sweep may have removed
// them; members still there see no change.
func (c *Conn) ReenterPresence() {
	c.presenceMu.Lock()
	defer c.presenceMu.Unlock()
	for room, data := range c.pres.rooms {
		c.emitChange(events.TypePresenceEnter, room, data)
	}
}
