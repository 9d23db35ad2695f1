package client

import (
	"context"
	"errors"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// Presence. A presence subscription is followed like a room: the Client
// keeps its position in the room's presence channel (the internal name
// protocol.PresenceChannel(room) in c.rooms) and a reconnect subscribes
// again with since, so no event is missed or repeated. Entered rooms are
// entered again after every reconnect: when the session was resumed the
// server has kept the member and the same data changes nothing; when it was
// not, this brings the member back.

// joinCommand is the command that (re-)joins a followed name: a room, or
// a room's presence channel.
func joinCommand(name string, since *protocol.Position) *protocol.Command {
	if room, ok := protocol.ChannelRoom(name); ok {
		return &protocol.Command{Op: protocol.OpPresenceSubscribe, Room: room, Since: since}
	}
	return &protocol.Command{Op: protocol.OpJoin, Room: name, Since: since}
}

// leaveCommand is the command that stops following a name.
func leaveCommand(name string) *protocol.Command {
	if room, ok := protocol.ChannelRoom(name); ok {
		return &protocol.Command{Op: protocol.OpPresenceUnsubscribe, Room: room}
	}
	return &protocol.Command{Op: protocol.OpLeave, Room: name}
}

// recovery fills in the room fields of a RoomRecovery for a followed name.
func recovery(name string, rr RoomRecovery) RoomRecovery {
	rr.Room, rr.Presence = protocol.ChannelRoom(name)
	return rr
}

// name is the followed name a RoomRecovery reports on.
func (r RoomRecovery) name() string {
	if r.Presence {
		return protocol.PresenceChannel(r.Room)
	}
	return r.Room
}

// SubscribePresence subscribes to a room's presence events: from the
// returned position of the room's presence stream on, every join, update
// and leave reaches the OnPresence handler, in order, across reconnects
// too, until UnsubscribePresence. It needs the presence capability on the
// room, not membership. Register the handler first.
func (c *Client) SubscribePresence(ctx context.Context, room string) (protocol.Position, error) {
	name := protocol.PresenceChannel(room)
	var added *roomState
	prepare := func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.rooms[name]; !ok {
			added = &roomState{}
			c.rooms[name] = added
		}
	}
	r, sent, err := c.do(ctx, &protocol.Command{Op: protocol.OpPresenceSubscribe, Room: room}, false, prepare, c.joinHook(name, nil))
	if err != nil {
		var re *ReplyError
		if added != nil && (errors.As(err, &re) || !sent) {
			c.mu.Lock()
			if c.rooms[name] == added {
				delete(c.rooms, name)
			}
			c.mu.Unlock()
		}
		return protocol.Position{}, err
	}
	return position(r), nil
}

// UnsubscribePresence stops a room's presence events.
func (c *Client) UnsubscribePresence(ctx context.Context, room string) error {
	name := protocol.PresenceChannel(room)
	c.mu.Lock()
	_, subscribed := c.rooms[name]
	delete(c.rooms, name)
	c.mu.Unlock()
	_, _, err := c.do(ctx, leaveCommand(name), false, nil, nil)
	var re *ReplyError
	switch {
	case !subscribed:
	case errors.As(err, &re) && re.Code == protocol.CodeNotJoined, errors.Is(err, ErrDisconnected):
		return nil // the subscription ended with its connection
	}
	return err
}

// OnPresence sets the handler for a room's presence events, replacing any
// previous one; nil removes it. It runs on the delivery goroutine, in
// order with the room's messages.
func (c *Client) OnPresence(room string, h func(protocol.PresenceEvent)) {
	c.handlersMu.Lock()
	defer c.handlersMu.Unlock()
	if h == nil {
		delete(c.presenceHandlers, room)
		return
	}
	c.presenceHandlers[room] = h
}

// EnterPresence enters a joined room's presence with data (one JSON value,
// or nil), or updates the data if already entered. The member stays
// entered across reconnects until LeavePresence, Leave or Close.
func (c *Client) EnterPresence(ctx context.Context, room string, data []byte) error {
	_, _, err := c.do(ctx, &protocol.Command{Op: protocol.OpPresenceEnter, Room: room, Data: data}, true, nil, nil)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.entered[room] = data
	c.mu.Unlock()
	return nil
}

// LeavePresence leaves a room's presence.
func (c *Client) LeavePresence(ctx context.Context, room string) error {
	c.mu.Lock()
	_, was := c.entered[room]
	delete(c.entered, room)
	c.mu.Unlock()
	_, _, err := c.do(ctx, &protocol.Command{Op: protocol.OpPresenceLeave, Room: room}, false, nil, nil)
	var re *ReplyError
	switch {
	case !was:
	case errors.As(err, &re) && re.Code == protocol.CodeNotPresent, errors.Is(err, ErrDisconnected):
		return nil // the member went with its connection
	}
	return err
}

// PresenceMembers returns every member of a room's presence set, reading
// it page by page (pageSize ≤ 0: the server's default).
func (c *Client) PresenceMembers(ctx context.Context, room string, pageSize int) ([]protocol.PresenceMember, error) {
	var all []protocol.PresenceMember
	cursor := ""
	for {
		r, _, err := c.do(ctx, &protocol.Command{Op: protocol.OpPresenceGet, Room: room, Cursor: cursor, Limit: pageSize}, true, nil, nil)
		if err != nil {
			return nil, err
		}
		all = append(all, r.Members...)
		if r.Cursor == "" {
			return all, nil
		}
		cursor = r.Cursor
	}
}

// PresenceCount returns a room's distinct clients and connections.
func (c *Client) PresenceCount(ctx context.Context, room string) (protocol.PresenceCount, error) {
	r, _, err := c.do(ctx, &protocol.Command{Op: protocol.OpPresenceCount, Room: room}, true, nil, nil)
	if err != nil {
		return protocol.PresenceCount{}, err
	}
	if r.Count == nil {
		return protocol.PresenceCount{}, nil
	}
	return *r.Count, nil
}

// reenter enters every entered room again on a new connection.
func (c *Client) reenter(ctx context.Context, w *wire) {
	c.mu.Lock()
	entered := make(map[string][]byte, len(c.entered))
	for room, data := range c.entered {
		entered[room] = data
	}
	c.mu.Unlock()
	for room, data := range entered {
		if _, err := w.request(ctx, &protocol.Command{Op: protocol.OpPresenceEnter, Room: room, Data: data}, nil); err != nil {
			c.log.Warn("roomcast: presence enter after reconnect failed", "room", room, "err", err)
		}
	}
	c.rewatch(ctx, w)
}
