// Package hub is a gateway node's view of its rooms: which local connections
// are members of which room, the per-room ordered delivery of messages that
// arrive from the broker, and local fan-out.
//
// Ordering: every non-transient message carries the per-room offset that
// Redis assigned before it was published, so the hub delivers each room's
// messages in offset order with no gap and no duplicate even when several
// nodes publish into one room at once. An out-of-order message waits in the
// room's pending set; when the missing offset does not arrive over AMQP
// within GapWait the hub reads it from the room's recovery stream.
//
// Concurrency: each room belongs to one worker goroutine (by hash), which
// owns all of the room's delivery state; rooms on different workers are
// processed in parallel. The registry (which rooms exist locally, reference
// counts) is guarded by Hub.mu.
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomcast/roomcast/pkg/envelope"
	"github.com/roomcast/roomcast/pkg/hashring"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/roomlog"
)

// Bus carries room traffic between nodes (pkg/broker).
type Bus interface {
	// PublishAsync publishes body to the shard's nodes and answers done
	// once the broker confirmed it (or failed to).
	PublishAsync(ctx context.Context, shard int, body []byte, done func(error))
	Subscribe(ctx context.Context, shard int) error
	Unsubscribe(shard int)
}

// Log is the per-room offset log in Redis (pkg/roomlog).
type Log interface {
	Append(ctx context.Context, app, room string, payload []byte, idemKey string) (protocol.Position, bool, error)
	// AppendAsync is Append that answers done instead of waiting.
	AppendAsync(ctx context.Context, app, room string, payload []byte, idemKey string, done func(protocol.Position, bool, error))
	Position(ctx context.Context, app, room string) (protocol.Position, error)
	Range(ctx context.Context, app, room, epoch string, from, to uint64) ([]roomlog.Entry, error)
}

// Member is a local connection as the hub sees it.
type Member interface {
	// QueueFrame queues a complete WebSocket frame without writing it. The
	// slice is shared by every member of the room and must not be
	// modified. It must not block; a member that cannot keep up closes
	// itself. It reports true when the member had nothing waiting: the
	// caller must then call Flush, once it has queued what it has at hand.
	QueueFrame(frame []byte) bool
	// Flush writes what is queued. It must not block.
	Flush()
	// Codec is the member's negotiated protocol encoding.
	Codec() protocol.Codec
	// Reply answers one of the member's commands.
	Reply(r *protocol.Reply)
}

// Config tunes a Hub.
type Config struct {
	// Shards must match every other node of the cluster.
	Shards int
	// Workers is the number of delivery goroutines. Zero means
	// 4 × GOMAXPROCS.
	Workers int
	// GapWait is how long a missing offset may be late before it is read
	// from the recovery stream. Zero means 100ms.
	GapWait time.Duration
	// MaxPending caps out-of-order messages held per room; over it the gap
	// is filled at once. Zero means 10000.
	MaxPending int
	// Frame encodes a server frame for a codec into WebSocket frame bytes.
	Frame func(protocol.Codec, *protocol.ServerFrame) ([]byte, error)
	// View turns a room's envelope into the frame members receive. Nil
	// means a message frame; the gateway passes presence.Frame, which makes
	// presence events of presence channels.
	View func(*envelope.Envelope) protocol.ServerFrame
	// Published, if set, is told of every message broadcast from this node
	// (WebSocket and REST publishes alike) once the broker confirmed it;
	// the gateway turns it into a message.published event. It must not
	// block.
	Published func(*envelope.Envelope)
	// FannedOut, if set, is told of every message the node fanned out to
	// its local members (metrics: delivery latency). It runs on the room's
	// worker and must not block.
	FannedOut func(env *envelope.Envelope, deliveries int)
}

// Stats are counters for metrics.
type Stats struct {
	Deliveries  uint64 // frames queued to members
	Messages    uint64 // messages fanned out locally
	GapFills    uint64 // gaps filled from the recovery stream
	Lost        uint64 // offsets skipped because the stream no longer had them
	Duplicates  uint64 // messages dropped as already delivered
	EpochResets uint64 // rooms whose epoch changed under live members
}

// Hub manages a node's rooms.
type Hub struct {
	cfg     Config
	log     *slog.Logger
	bus     Bus
	rlog    Log
	workers []*worker
	stop    chan struct{} // closed by Close; posts after it are dropped

	mu    sync.RWMutex
	rooms map[roomKey]*room

	stats counters

	inflight sync.WaitGroup // broadcasts not yet confirmed
}

type roomKey struct{ app, room string }

type room struct {
	key   roomKey
	shard int
	w     *worker

	// Guarded by Hub.mu.
	refs       int
	subscribed bool

	// ready is closed when the shard binding is in place; err says whether
	// it failed.
	ready chan struct{}
	err   error

	// Owned by the worker.
	members map[Member]uint64 // member → first offset it receives
	epoch   string
	next    uint64 // next offset to deliver; 0 until the first member is added
	pending map[uint64]*envelope.Envelope
	armed   bool // a gap check is scheduled
	removed bool
	joining map[Member]*joinState // joins waiting for the recovery stream

	fanned atomic.Uint64 // messages fanned out (live room metrics)
}

// New creates a hub and starts its workers. Stop them with Close.
func New(cfg Config, log *slog.Logger, bus Bus, rlog Log) *Hub {
	if cfg.Workers <= 0 {
		cfg.Workers = 4 * runtime.GOMAXPROCS(0)
	}
	if cfg.GapWait <= 0 {
		cfg.GapWait = 100 * time.Millisecond
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 10000
	}
	if cfg.Shards <= 0 {
		cfg.Shards = hashring.DefaultShards
	}
	if cfg.View == nil {
		cfg.View = func(env *envelope.Envelope) protocol.ServerFrame {
			msg := env.Message()
			return protocol.ServerFrame{Message: &msg}
		}
	}
	h := &Hub{cfg: cfg, log: log, bus: bus, rlog: rlog, rooms: make(map[roomKey]*room), stop: make(chan struct{})}
	for i := 0; i < cfg.Workers; i++ {
		w := &worker{h: h, tasks: make(chan task, 1024), done: make(chan struct{})}
		h.workers = append(h.workers, w)
		go w.run()
	}
	return h
}

// Close stops the workers. Tasks posted afterwards (a late gap timer, a
// straggling delivery) are dropped.
func (h *Hub) Close() {
	close(h.stop)
	for _, w := range h.workers {
		<-w.done
	}
}

// counters are the live, lock-free form of Stats: workers update them on
// every fan-out.
type counters struct {
	deliveries, messages, gapFills, lost, duplicates, epochResets atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (h *Hub) Stats() Stats {
	c := &h.stats
	return Stats{
		Deliveries:  c.deliveries.Load(),
		Messages:    c.messages.Load(),
		GapFills:    c.gapFills.Load(),
		Lost:        c.lost.Load(),
		Duplicates:  c.duplicates.Load(),
		EpochResets: c.epochResets.Load(),
	}
}

// Rooms returns the number of rooms with local members.
func (h *Hub) Rooms() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.rooms)
}

// Join adds m to a room. On success the join reply (with the room's
// position) is sent to m by the room's worker, before any message of the
// room, and m then receives every message after that position — or, when
// since is set and the room's stream still holds them, every message
// after since (the reply then says recovered).
func (h *Hub) Join(ctx context.Context, app, name string, m Member, id uint64, since *protocol.Position) error {
	key := roomKey{app, name}
	h.mu.Lock()
	r := h.rooms[key]
	creator := r == nil
	if creator {
		shard := hashring.Shard(app, name, h.cfg.Shards)
		r = &room{
			key:     key,
			shard:   shard,
			w:       h.workers[int(hashring.Hash(app, name)%uint64(len(h.workers)))],
			ready:   make(chan struct{}),
			members: make(map[Member]uint64),
			pending: make(map[uint64]*envelope.Envelope),
		}
		h.rooms[key] = r
	}
	r.refs++
	h.mu.Unlock()

	if creator {
		// Bind before reading the position: every message after the
		// position is then routed to this node.
		err := h.bus.Subscribe(ctx, r.shard)
		h.mu.Lock()
		r.subscribed = err == nil
		r.err = err
		h.mu.Unlock()
		close(r.ready)
	} else {
		select {
		case <-r.ready:
		case <-ctx.Done():
			h.release(r, nil)
			return ctx.Err()
		}
	}
	if r.err != nil {
		h.release(r, nil)
		return fmt.Errorf("hub: subscribe shard %d: %w", r.shard, r.err)
	}
	pos, err := h.rlog.Position(ctx, app, name)
	if err != nil {
		h.release(r, nil)
		return fmt.Errorf("hub: room position: %w", err)
	}
	r.w.post(task{kind: taskAdd, r: r, m: m, pos: pos, since: since, id: id})
	return nil
}

// Position is the room's current position in Redis.
func (h *Hub) Position(ctx context.Context, app, name string) (protocol.Position, error) {
	return h.rlog.Position(ctx, app, name)
}

// Leave removes m from a room; it does nothing if m is not a member.
func (h *Hub) Leave(app, name string, m Member) {
	h.mu.RLock()
	r := h.rooms[roomKey{app, name}]
	h.mu.RUnlock()
	if r != nil {
		h.release(r, m)
	}
}

// release drops one reference to r (and m's membership, if m is set); the
// last reference removes the room and its shard binding.
func (h *Hub) release(r *room, m Member) {
	h.mu.Lock()
	r.refs--
	last := r.refs == 0
	unsubscribe := last && r.subscribed
	if last && h.rooms[r.key] == r {
		delete(h.rooms, r.key)
	}
	h.mu.Unlock()
	if m != nil || last {
		r.w.post(task{kind: taskRemove, r: r, m: m, last: last})
	}
	if unsubscribe {
		h.bus.Unsubscribe(r.shard)
	}
}

// HandleDelivery is the broker handler: one message from the node queue.
func (h *Hub) HandleDelivery(_ int, body []byte) {
	env, err := envelope.Decode(body)
	if err != nil {
		h.log.Warn("dropping malformed envelope", "err", err, "bytes", len(body))
		return
	}
	h.mu.RLock()
	r := h.rooms[roomKey{env.App, env.Room}]
	h.mu.RUnlock()
	if r == nil {
		return // another room of the same shard, with no local members
	}
	r.w.post(task{kind: taskDeliver, r: r, env: &env})
}

// Resync makes every local room catch up with Redis. The broker calls it
// after a reconnect: messages routed while the node queue was gone are in
// the recovery streams, not in the queue.
func (h *Hub) Resync() {
	h.mu.RLock()
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.RUnlock()
	for _, r := range rooms {
		r.w.post(task{kind: taskResync, r: r})
	}
}

// ErrUnavailable wraps failures of Redis or the broker.
var ErrUnavailable = errors.New("hub: dependency unavailable")

// Published is a message that has its place in the room's log and still
// has to be broadcast.
type Published struct {
	env   envelope.Envelope
	shard int
	// Position is where the message was stored (nil for transient ones).
	Position *protocol.Position
	// Duplicate is set when an idempotency key matched an earlier publish.
	Duplicate bool
}

// Append gives a message its offset in the room's log (unless it is
// transient). Callers keep per-room order by calling Append in the order
// the publisher sent the messages; Broadcast may then run concurrently.
func (h *Hub) Append(ctx context.Context, env envelope.Envelope, idemKey string) (*Published, error) {
	p := h.published(env)
	if env.Transient {
		return p, nil
	}
	pos, dup, err := h.rlog.Append(ctx, env.App, env.Room, env.Marshal(), idemKey)
	if err != nil {
		return nil, fmt.Errorf("%w: room log: %w", ErrUnavailable, err)
	}
	h.appended(ctx, p, pos, dup)
	return p, nil
}

func (h *Hub) published(env envelope.Envelope) *Published {
	return &Published{env: env, shard: hashring.Shard(env.App, env.Room, h.cfg.Shards)}
}

// appended records where the log put p.
func (h *Hub) appended(ctx context.Context, p *Published, pos protocol.Position, dup bool) {
	p.Position = &pos
	p.Duplicate = dup
	p.env.Offset, p.env.Epoch = pos.Offset, pos.Epoch
	if !dup {
		return
	}
	// Broadcast the stored message again: the first attempt may have
	// failed before the broker confirmed it, and receivers drop offsets
	// they already delivered, so a repeat is never delivered twice.
	entries, err := h.rlog.Range(ctx, p.env.App, p.env.Room, pos.Epoch, pos.Offset, pos.Offset)
	if err != nil || len(entries) != 1 {
		p.env.Offset = 0 // nothing left to re-send
		return
	}
	stored, err := envelope.Decode(entries[0].Payload)
	if err == nil {
		stored.Offset, stored.Epoch = pos.Offset, pos.Epoch
		p.env = stored
	}
}

// Broadcast hands an appended message to the broker and waits for its
// confirm.
func (h *Hub) Broadcast(ctx context.Context, p *Published) error {
	done := make(chan error, 1)
	h.inflight.Add(1)
	h.broadcast(ctx, p, func(_ *Published, err error) {
		done <- err
		h.inflight.Done()
	})
	return <-done
}

// Publish appends a message (unless it is transient) and broadcasts it
// without waiting: done gets the result once the broker confirmed it —
// the Published with its position, and a nil error — or a nil Published
// if the room log failed, or the Published and an error if the broker did
// (both errors wrap ErrUnavailable). done runs on the room log's or the
// broker's send loop and must return promptly. A publisher's messages to
// a room get their offsets in the order of its Publish calls.
func (h *Hub) Publish(ctx context.Context, env envelope.Envelope, idemKey string, done func(*Published, error)) {
	p := h.published(env)
	h.inflight.Add(1)
	finish := func(p *Published, err error) {
		done(p, err)
		h.inflight.Done()
	}
	if env.Transient {
		h.broadcast(ctx, p, finish)
		return
	}
	h.rlog.AppendAsync(ctx, env.App, env.Room, env.Marshal(), idemKey, func(pos protocol.Position, dup bool, err error) {
		if err != nil {
			finish(nil, fmt.Errorf("%w: room log: %w", ErrUnavailable, err))
			return
		}
		if dup {
			// Rare, and it reads the log again: not on its send loop.
			go func() {
				h.appended(ctx, p, pos, dup)
				h.broadcast(ctx, p, finish)
			}()
			return
		}
		h.appended(ctx, p, pos, dup)
		h.broadcast(ctx, p, finish)
	})
}

// broadcast hands p to the broker; done gets the outcome.
func (h *Hub) broadcast(ctx context.Context, p *Published, done func(*Published, error)) {
	if p.Duplicate && p.env.Offset == 0 {
		done(p, nil)
		return
	}
	h.bus.PublishAsync(ctx, p.shard, p.env.Marshal(), func(err error) {
		if err != nil {
			done(p, fmt.Errorf("%w: broker: %w", ErrUnavailable, err))
			return
		}
		if h.cfg.Published != nil && !p.Duplicate {
			h.cfg.Published(&p.env)
		}
		done(p, nil)
	})
}

// WaitInflight waits until every broadcast has been confirmed or failed,
// or ctx ends.
func (h *Hub) WaitInflight(ctx context.Context) error {
	done := make(chan struct{})
	go func() { h.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
