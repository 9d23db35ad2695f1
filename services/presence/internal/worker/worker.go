// Package worker applies the presence tasks that gateways enqueue and
// publishes the resulting events into the rooms' presence channels.
//
// Every handler is idempotent: asynq delivers at least once, and the store
// (pkg/presence) recognises a repeated change by its seq and hands back the
// event it produced the first time, which is published again (subscribers
// drop offsets they already have). A task fails — and is retried — only
// when Redis or RabbitMQ did; a malformed task is dropped at once.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/roomcast/roomcast/pkg/envelope"
	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/hashring"
	"github.com/roomcast/roomcast/pkg/presence"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// Store is the presence state (pkg/presence).
type Store interface {
	Apply(ctx context.Context, c presence.Change) (*presence.Event, error)
	Rooms(ctx context.Context, app, memberID string) ([]string, error)
	DeadNodes(ctx context.Context) ([]string, error)
	NodeMembers(ctx context.Context, node string, count int) ([]presence.NodeMember, error)
	Forget(ctx context.Context, node string, m presence.NodeMember) error
	ForgetNode(ctx context.Context, node string) error
	TryLock(ctx context.Context, name string, ttl time.Duration) (bool, error)
}

// Bus publishes room traffic (pkg/broker).
type Bus interface {
	Publish(ctx context.Context, shard int, body []byte) error
}

// Stats are counters for metrics.
type Stats struct {
	Tasks     uint64 // tasks handled successfully
	Failed    uint64 // task attempts that failed (retried by asynq)
	Events    uint64 // presence events published (replays included)
	Swept     uint64 // members removed because their node died
	DeadNodes uint64 // dead nodes found by sweeps
}

// Worker handles presence tasks.
type Worker struct {
	store          Store
	bus            Bus
	shards         int
	publishTimeout time.Duration
	log            *slog.Logger
	emitter        Emitter // nil: presence events go to the rooms only

	tasks, failed, events, swept, deadNodes atomic.Uint64
}

// New returns a Worker.
func New(store Store, bus Bus, shards int, publishTimeout time.Duration, log *slog.Logger) *Worker {
	return &Worker{store: store, bus: bus, shards: shards, publishTimeout: publishTimeout, log: log}
}

// Emitter enqueues tasks for other worker services (pkg/events.Emitter).
type Emitter interface {
	Wants(typ string) bool
	Emit(typ string, payload any, opts ...asynq.Option)
}

// EmitTo makes the worker also emit every presence event it publishes as a
// presence.event task, for the services that take it (webhooks). Call it
// before Register.
func (w *Worker) EmitTo(e Emitter) { w.emitter = e }

// Stats returns the counters.
func (w *Worker) Stats() Stats {
	return Stats{Tasks: w.tasks.Load(), Failed: w.failed.Load(), Events: w.events.Load(), Swept: w.swept.Load(), DeadNodes: w.deadNodes.Load()}
}

// Register adds the worker's handlers to mux.
func (w *Worker) Register(mux *asynq.ServeMux) {
	for _, typ := range []string{events.TypePresenceEnter, events.TypePresenceUpdate, events.TypePresenceLeave} {
		mux.HandleFunc(typ, w.count(w.change))
	}
	mux.HandleFunc(events.TypePresenceDetach, w.count(w.detach))
}

func (w *Worker) count(h asynq.HandlerFunc) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		err := h(ctx, t)
		switch {
		case err == nil:
			w.tasks.Add(1)
		case errors.Is(err, asynq.SkipRetry):
			w.log.Warn("dropping bad task", "type", t.Type(), "err", err)
		default:
			w.failed.Add(1)
		}
		return err
	}
}

func (w *Worker) change(ctx context.Context, t *asynq.Task) error {
	var p events.PresenceChange
	if err := events.Decode(t, &p); err != nil {
		return err
	}
	action := presence.Enter
	if t.Type() == events.TypePresenceLeave {
		action = presence.Leave
	}
	return w.apply(ctx, presence.Change{
		Action: action, App: p.App, Room: p.Room, MemberID: p.MemberID, ClientID: p.ClientID,
		ConnID: p.ConnID, Node: p.Node, Data: p.Data, Seq: p.Seq,
	})
}

func (w *Worker) detach(ctx context.Context, t *asynq.Task) error {
	var p events.PresenceDetach
	if err := events.Decode(t, &p); err != nil {
		return err
	}
	rooms, err := w.store.Rooms(ctx, p.App, p.MemberID)
	if err != nil {
		return err
	}
	for _, room := range rooms {
		if err := w.apply(ctx, presence.Change{Action: presence.Detach, App: p.App, Room: room, MemberID: p.MemberID, ConnID: p.ConnID, Seq: p.Seq}); err != nil {
			return err
		}
	}
	return nil
}

func (w *Worker) apply(ctx context.Context, c presence.Change) error {
	ev, err := w.store.Apply(ctx, c)
	if errors.Is(err, presence.ErrInvalid) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if err != nil || ev == nil {
		return err
	}
	return w.publish(ctx, ev)
}

func (w *Worker) publish(ctx context.Context, ev *presence.Event) error {
	ctx, cancel := context.WithTimeout(ctx, w.publishTimeout)
	defer cancel()
	env := &ev.Envelope
	if err := w.bus.Publish(ctx, hashring.Shard(env.App, env.Room, w.shards), env.Marshal()); err != nil {
		return fmt.Errorf("publish presence event: %w", err)
	}
	w.events.Add(1)
	w.emit(env)
	return nil
}

// emit hands a published presence event to the emitter. A replayed event
// (a retried task) is emitted again with the same offset: consumers
// deduplicate on it.
func (w *Worker) emit(env *envelope.Envelope) {
	if w.emitter == nil || !w.emitter.Wants(events.TypePresenceEvent) {
		return
	}
	room, ok := protocol.ChannelRoom(env.Room)
	if !ok {
		return
	}
	m, err := presence.ParseMember(env.Data)
	if err != nil {
		return
	}
	w.emitter.Emit(events.TypePresenceEvent, events.PresenceEvent{
		V: events.Version, App: env.App, Room: room, Action: env.Event, ClientID: m.ClientID,
		MemberID: m.ConnectionID, Data: m.Data, Offset: env.Offset, Epoch: env.Epoch, At: env.Timestamp,
	})
}

// sweepBatch is how many index entries a sweep reads at once.
const sweepBatch = 500

// Sweep makes the members of dead nodes leave, if no other worker of the
// cluster swept within interval. It returns how many members left.
func (w *Worker) Sweep(ctx context.Context, interval time.Duration) (int, error) {
	// The lock expires a little before the next tick, so the cluster
	// sweeps about once per interval however many workers run.
	ok, err := w.store.TryLock(ctx, "sweep", interval*9/10)
	if err != nil || !ok {
		return 0, err
	}
	dead, err := w.store.DeadNodes(ctx)
	if err != nil {
		return 0, err
	}
	left := 0
	for _, node := range dead {
		w.deadNodes.Add(1)
		seq := time.Now().UnixMicro()
		for {
			batch, err := w.store.NodeMembers(ctx, node, sweepBatch)
			if err != nil {
				return left, err
			}
			if len(batch) == 0 {
				break
			}
			for _, m := range batch {
				ev, err := w.store.Apply(ctx, presence.Change{Action: presence.Sweep, App: m.App, Room: m.Room, MemberID: m.MemberID, Node: node, Seq: seq})
				if err != nil {
					return left, err
				}
				if ev != nil {
					if err := w.publish(ctx, ev); err != nil {
						// The member is gone from the set and the event is in
						// the stream; subscribers fill the gap on the next
						// event of the room.
						w.log.Warn("sweep: leave event not published", "err", err)
					}
					left++
					w.swept.Add(1)
				}
				if err := w.store.Forget(ctx, node, m); err != nil {
					return left, err
				}
			}
		}
		if err := w.store.ForgetNode(ctx, node); err != nil {
			return left, err
		}
		w.log.Info("swept dead node", "dead_node", node)
	}
	return left, nil
}

// RunSweeper sweeps every interval until ctx ends.
func (w *Worker) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := w.Sweep(ctx, interval)
			if err != nil && ctx.Err() == nil {
				w.log.Warn("sweep failed", "err", err)
			}
			if n > 0 {
				w.log.Info("members of dead nodes left", "members", n)
			}
		}
	}
}
