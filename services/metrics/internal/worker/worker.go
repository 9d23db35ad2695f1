// Package worker turns the events gateways (and the presence service)
// enqueue into usage changes (internal/store).
//
// Delivery is at least once: a task whose worker dies before asynq hears
// of its success runs again once its lease expires, with the same task
// id. The store records each event's id in the transaction that counts
// it, so a repeat counts nothing. Presence events are identified by their
// place in the room's presence stream (epoch and offset) instead, because
// a retried presence task emits the same event again as a new task.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/nodelease"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/services/metrics/internal/store"
)

// Store is what the worker needs of the store.
type Store interface {
	Apply(ctx context.Context, id string, now time.Time, changes []store.Change) (bool, error)
}

// Stats are counters for metrics.
type Stats struct {
	Applied    uint64 // events counted
	Duplicates uint64 // events seen before (counted nothing)
	Failed     uint64 // attempts that failed and will be retried
	Malformed  uint64 // payloads dropped as unreadable
}

// Worker handles the metrics queue's tasks.
type Worker struct {
	store Store
	log   *slog.Logger

	applied, duplicates, failed, malformed atomic.Uint64
}

// New returns a worker writing to st.
func New(st Store, log *slog.Logger) *Worker { return &Worker{store: st, log: log} }

// Stats returns the counters.
func (w *Worker) Stats() Stats {
	return Stats{Applied: w.applied.Load(), Duplicates: w.duplicates.Load(), Failed: w.failed.Load(), Malformed: w.malformed.Load()}
}

// Register adds the handlers to mux.
func (w *Worker) Register(mux *asynq.ServeMux) {
	for _, typ := range events.Consumers["metrics"] {
		mux.HandleFunc(typ, w.handle)
	}
}

func (w *Worker) handle(ctx context.Context, t *asynq.Task) error {
	id, changes, err := Changes(t)
	if err != nil {
		w.malformed.Add(1)
		w.log.Warn("dropping bad task", "type", t.Type(), "err", err)
		return err
	}
	if id == "" {
		tid, ok := asynq.GetTaskID(ctx)
		if !ok {
			return fmt.Errorf("metrics: task without id: %w", asynq.SkipRetry)
		}
		id = "t:" + tid
	}
	if len(changes) == 0 {
		return nil
	}
	applied, err := w.store.Apply(ctx, id, time.Now(), changes)
	if err != nil {
		w.failed.Add(1)
		return err
	}
	if applied {
		w.applied.Add(1)
	} else {
		w.duplicates.Add(1)
	}
	return nil
}

// Changes maps a task to its usage changes. id is the event's own
// identity when it has one (presence events), or "" when the task's id
// identifies it. Malformed payloads are wrapped with asynq.SkipRetry.
func Changes(t *asynq.Task) (id string, changes []store.Change, err error) {
	switch t.Type() {
	case events.TypeConnectionOpened, events.TypeConnectionClosed:
		var p events.Connection
		if err := events.Decode(t, &p); err != nil {
			return "", nil, err
		}
		if p.App == "" {
			return "", nil, invalid(t, "app")
		}
		c := store.Change{App: p.App, At: time.UnixMilli(p.At), ConnDelta: -1, Node: p.Node}
		if t.Type() == events.TypeConnectionOpened {
			c.Connections, c.ConnDelta = 1, 1
		}
		return "", []store.Change{c}, nil
	case events.TypeRoomJoined, events.TypeRoomLeft:
		var p events.Membership
		if err := events.Decode(t, &p); err != nil {
			return "", nil, err
		}
		if p.App == "" || p.Room == "" {
			return "", nil, invalid(t, "app and room")
		}
		c := store.Change{App: p.App, Room: p.Room, At: time.UnixMilli(p.At), ConnDelta: -1, Node: p.Node}
		if t.Type() == events.TypeRoomJoined {
			c.Connections, c.ConnDelta = 1, 1
		}
		return "", []store.Change{c}, nil
	case events.TypeMessagePublished:
		var p events.Published
		if err := events.Decode(t, &p); err != nil {
			return "", nil, err
		}
		if p.App == "" || p.Room == "" {
			return "", nil, invalid(t, "app and room")
		}
		at := time.UnixMilli(p.At)
		n := int64(max(p.Bytes, len(p.Data)))
		return "", []store.Change{
			{App: p.App, Room: p.Room, At: at, Messages: 1, Bytes: n},
			{App: p.App, At: at, Messages: 1, Bytes: n},
		}, nil
	case events.TypePresenceEvent:
		var p events.PresenceEvent
		if err := events.Decode(t, &p); err != nil {
			return "", nil, err
		}
		if p.App == "" || p.Room == "" || p.Epoch == "" || p.Offset == 0 {
			return "", nil, invalid(t, "app, room, epoch and offset")
		}
		var d int64
		switch protocol.PresenceAction(p.Action) {
		case protocol.PresenceJoin:
			d = 1
		case protocol.PresenceLeave:
			d = -1
		default:
			return "", nil, nil // an update changes no count
		}
		id := "p:" + p.App + "\x1f" + p.Room + "\x1f" + p.Epoch + "\x1f" + strconv.FormatUint(p.Offset, 10)
		at := time.UnixMilli(p.At)
		return id, []store.Change{
			{App: p.App, Room: p.Room, At: at, PresenceDelta: d},
			{App: p.App, At: at, PresenceDelta: d},
		}, nil
	}
	return "", nil, fmt.Errorf("metrics: unexpected task type %q: %w", t.Type(), asynq.SkipRetry)
}

func invalid(t *asynq.Task, what string) error {
	return fmt.Errorf("metrics: %s without %s: %w", t.Type(), what, asynq.SkipRetry)
}

// Prune forgets processed ids older than window, every interval, until
// ctx ends. Any number of replicas may run it: deletes are idempotent.
func Prune(ctx context.Context, st interface {
	Prune(ctx context.Context, before time.Time, limit int) (int64, error)
}, window, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			n, err := st.Prune(ctx, time.Now().Add(-window), 10000)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("prune failed", "err", err)
				}
				break
			}
			if n < 10000 {
				break
			}
		}
	}
}

// NodeStore is what the sweep needs of the store.
type NodeStore interface {
	LiveNodes(ctx context.Context) ([]string, error)
	SweepNode(ctx context.Context, node string, now time.Time) (int64, error)
	PruneDeadNodes(ctx context.Context, before time.Time) error
}

// NodeChecker tells whether a gateway is dead (nodelease.Tracker).
type NodeChecker interface {
	Check(ctx context.Context, node string) (nodelease.State, error)
	Forget(ctx context.Context, node string) error
}

// Sweep takes the connections of dead gateways off the live values: a
// gateway killed outright never sends connection.closed for its
// connections. Every replica may sweep; sweeping a node twice takes
// nothing off twice (store.SweepNode). Swept nodes are remembered for
// keep, the longest an event of theirs can wait in the queue.
func Sweep(ctx context.Context, st NodeStore, leases NodeChecker, keep time.Duration, log *slog.Logger) (swept int64, err error) {
	nodes, err := st.LiveNodes(ctx)
	if err != nil {
		return 0, err
	}
	for _, node := range nodes {
		state, err := leases.Check(ctx, node)
		if err != nil {
			return swept, err
		}
		if state != nodelease.Dead {
			continue
		}
		n, err := st.SweepNode(ctx, node, time.Now())
		if err != nil {
			return swept, err
		}
		if err := leases.Forget(ctx, node); err != nil {
			return swept, err
		}
		swept += n
		log.Info("took a dead gateway's connections off", "dead_node", node, "connections", n)
	}
	return swept, st.PruneDeadNodes(ctx, time.Now().Add(-keep))
}

// RunSweeper sweeps every interval until ctx ends.
func RunSweeper(ctx context.Context, st NodeStore, leases NodeChecker, interval, keep time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := Sweep(ctx, st, leases, keep, log); err != nil && ctx.Err() == nil {
			log.Warn("sweep of dead gateways failed; will retry", "err", err)
		}
	}
}
