package conn

import (
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// LiveMetrics pushes live room metrics (internal/live).
type LiveMetrics interface {
	Subscribe(app, room string, interval time.Duration, push func(protocol.RoomMetrics)) (cancel func())
}

// liveMetrics handles metrics.subscribe and metrics.unsubscribe. A
// subscription needs the metrics capability on the room, not membership;
// subscribing again to the same room replaces the interval.
func (c *Conn) liveMetrics(cmd *protocol.Command) {
	if cmd.Op == protocol.OpMetricsUnsubscribe {
		if perr := protocol.ValidateRoom(cmd.Room, c.d.Config.MaxRoomNameBytes); perr != nil {
			c.replyError(cmd.ID, perr)
			return
		}
		c.liveMu.Lock()
		cancel, ok := c.liveSubs[cmd.Room]
		delete(c.liveSubs, cmd.Room)
		c.liveMu.Unlock()
		if !ok {
			c.replyError(cmd.ID, protocol.NewError(protocol.CodeNotJoined, "not subscribed to this room's metrics"))
			return
		}
		cancel()
		c.d.Metrics.LiveMetricsSubscriptions.Dec()
		c.Reply(&protocol.Reply{ID: cmd.ID, Room: cmd.Room})
		return
	}
	if perr := c.checkRoom(cmd, token.OpMetrics); perr != nil {
		c.replyError(cmd.ID, perr)
		return
	}
	if c.d.Live == nil {
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeUnavailable, "live metrics are not available on this node"))
		return
	}
	interval := time.Duration(cmd.IntervalMS) * time.Millisecond
	if interval == 0 {
		interval = protocol.MetricsIntervalDefaultMS * time.Millisecond
	}
	c.liveMu.Lock()
	if c.liveSubs == nil {
		c.liveSubs = map[string]func(){}
	}
	old, had := c.liveSubs[cmd.Room]
	if !had && len(c.liveSubs) >= c.d.Config.MaxRooms {
		c.liveMu.Unlock()
		c.replyError(cmd.ID, protocol.Errorf(protocol.CodeTooManyRooms, "a connection may watch the metrics of at most %d rooms", c.d.Config.MaxRooms))
		return
	}
	room := cmd.Room
	// The reply goes out before the first push: Subscribe pushes only
	// after one interval.
	c.Reply(&protocol.Reply{ID: cmd.ID, Room: room})
	c.liveSubs[room] = c.d.Live.Subscribe(c.claims.App, room, interval, func(m protocol.RoomMetrics) {
		c.sendFrame(&protocol.ServerFrame{Metrics: &m})
	})
	c.liveMu.Unlock()
	if had {
		old()
	} else {
		c.d.Metrics.LiveMetricsSubscriptions.Inc()
	}
}

// stopLiveMetrics ends the connection's subscriptions.
func (c *Conn) stopLiveMetrics() {
	c.liveMu.Lock()
	subs := c.liveSubs
	c.liveSubs = nil
	c.liveMu.Unlock()
	for _, cancel := range subs {
		cancel()
		c.d.Metrics.LiveMetricsSubscriptions.Dec()
	}
}
