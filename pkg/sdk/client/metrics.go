package client

import (
	"context"
	"errors"
	"time"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// WatchMetrics starts live metrics pushes for a room (members, clients,
// connections, message rate, cluster-wide) every interval (1 s to 60 s;
// zero: the server's default of 5 s), delivered to the OnMetrics handler.
// It needs the metrics capability on the room. The server keeps no watch
// across connections; the Client watches again after every reconnect.
func (c *Client) WatchMetrics(ctx context.Context, room string, interval time.Duration) error {
	ms := int(interval / time.Millisecond)
	if _, _, err := c.do(ctx, &protocol.Command{Op: protocol.OpMetricsSubscribe, Room: room, IntervalMS: ms}, true, nil, nil); err != nil {
		return err
	}
	c.mu.Lock()
	c.watched[room] = ms
	c.mu.Unlock()
	return nil
}

// UnwatchMetrics stops a room's live metrics.
func (c *Client) UnwatchMetrics(ctx context.Context, room string) error {
	c.mu.Lock()
	_, was := c.watched[room]
	delete(c.watched, room)
	c.mu.Unlock()
	if !was {
		return nil
	}
	_, _, err := c.do(ctx, &protocol.Command{Op: protocol.OpMetricsUnsubscribe, Room: room}, false, nil, nil)
	if errors.Is(err, ErrDisconnected) {
		return nil // the watch ended with its connection
	}
	return err
}

// OnMetrics sets the handler for a room's live metrics, replacing any
// previous one; nil removes it. It runs on the delivery goroutine.
func (c *Client) OnMetrics(room string, h func(protocol.RoomMetrics)) {
	c.handlersMu.Lock()
	defer c.handlersMu.Unlock()
	if h == nil {
		delete(c.metricsHandlers, room)
		return
	}
	c.metricsHandlers[room] = h
}

// acceptMetrics queues a push of a watched room for its handler. Pushes
// are best effort: one that finds the buffer full is dropped; the next
// comes an interval later.
func (c *Client) acceptMetrics(m *protocol.RoomMetrics) {
	c.mu.Lock()
	_, watched := c.watched[m.Room]
	c.mu.Unlock()
	switch {
	case !watched:
	case c.cfg.InlineHandlers:
		if !c.stopped() {
			c.dispatch(event{metrics: m})
		}
	default:
		c.enqueue(event{metrics: m}) // a snapshot: dropped, not resumed, when the buffer is full
	}
}

// rewatch watches every watched room again on a new connection.
func (c *Client) rewatch(ctx context.Context, w *wire) {
	c.mu.Lock()
	watched := make(map[string]int, len(c.watched))
	for room, ms := range c.watched {
		watched[room] = ms
	}
	c.mu.Unlock()
	for room, ms := range watched {
		if _, err := w.request(ctx, &protocol.Command{Op: protocol.OpMetricsSubscribe, Room: room, IntervalMS: ms}, nil); err != nil {
			c.log.Warn("roomcast: metrics watch after reconnect failed", "room", room, "err", err)
		}
	}
}
