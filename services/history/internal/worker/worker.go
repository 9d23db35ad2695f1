// Package worker archives room messages: asynq aggregates the
// message.published tasks gateways enqueue (in events.Groups groups on the
// history queue) into batch tasks, and each batch is one INSERT.
//
// Delivery is at least once: a batch whose worker dies before asynq hears
// of its success runs again after its lease expires, and a batch that is
// built twice (an aggregator that died after enqueuing it) is archived
// twice; the archive's primary key (app, room, epoch, offset) makes the
// repeat insert nothing.
package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/services/history/internal/store"
)

// TypeBatch is the task asynq's aggregator makes of a group of
// message.published tasks: a JSON array of their payloads.
const TypeBatch = "history.batch"

// Archiver is what the worker needs of the store.
type Archiver interface {
	Insert(ctx context.Context, rows []store.Row) (int64, error)
}

// Stats are counters for metrics.
type Stats struct {
	Batches   uint64 // batches archived
	Messages  uint64 // messages in them (transient ones excluded)
	Inserted  uint64 // rows new to the archive (the rest were repeats)
	Failed    uint64 // batch attempts that failed and will be retried
	Malformed uint64 // payloads skipped as unreadable
}

// Worker handles batch tasks.
type Worker struct {
	store     Archiver
	retention func(app string) time.Duration
	log       *slog.Logger

	batches, messages, inserted, failed, malformed atomic.Uint64
}

// New returns a worker writing to st; retention gives each app's retention.
func New(st Archiver, retention func(app string) time.Duration, log *slog.Logger) *Worker {
	return &Worker{store: st, retention: retention, log: log}
}

// Register adds the handlers to mux.
func (w *Worker) Register(mux *asynq.ServeMux) {
	mux.HandleFunc(TypeBatch, w.handleBatch)
	// A task that reached the queue outside a group (a gateway without
	// grouping) is a batch of one.
	mux.HandleFunc(events.TypeMessagePublished, func(ctx context.Context, t *asynq.Task) error {
		return w.archive(ctx, [][]byte{t.Payload()})
	})
}

// Aggregate is the asynq.GroupAggregator: the payloads, as a JSON array.
func Aggregate(_ string, tasks []*asynq.Task) *asynq.Task {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, t := range tasks {
		if i > 0 {
			b.WriteByte(',')
		}
		p := t.Payload()
		if !json.Valid(p) {
			p = []byte("null") // counted as malformed by the handler
		}
		b.Write(p)
	}
	b.WriteByte(']')
	return asynq.NewTask(TypeBatch, b.Bytes())
}

func (w *Worker) handleBatch(ctx context.Context, t *asynq.Task) error {
	var raws []json.RawMessage
	if err := json.Unmarshal(t.Payload(), &raws); err != nil {
		w.malformed.Add(1)
		return fmt.Errorf("history: batch: %w: %w", err, asynq.SkipRetry)
	}
	payloads := make([][]byte, len(raws))
	for i, r := range raws {
		payloads[i] = r
	}
	return w.archive(ctx, payloads)
}

func (w *Worker) archive(ctx context.Context, payloads [][]byte) error {
	rows := make([]store.Row, 0, len(payloads))
	for _, p := range payloads {
		if bytes.Equal(p, []byte("null")) { // unreadable when aggregated
			w.malformed.Add(1)
			continue
		}
		var m events.Published
		if err := events.Decode(asynq.NewTask(events.TypeMessagePublished, p), &m); err != nil {
			w.malformed.Add(1)
			w.log.Warn("message skipped", "err", err)
			continue
		}
		if m.Transient || m.Offset == 0 || m.Epoch == "" {
			continue // transient messages are not history
		}
		rows = append(rows, store.Row{
			App: m.App, Room: m.Room, Epoch: m.Epoch, Offset: m.Offset, TS: m.At,
			Event: m.Event, Sender: m.From, Data: m.Data, Binary: m.Binary,
			ExpiresAt: time.UnixMilli(m.At).Add(w.retention(m.App)),
		})
	}
	n, err := w.store.Insert(ctx, rows)
	if err != nil {
		w.failed.Add(1)
		return err
	}
	w.batches.Add(1)
	w.messages.Add(uint64(len(rows)))
	w.inserted.Add(uint64(n)) //nolint:gosec // never negative
	return nil
}

// Stats returns the counters.
func (w *Worker) Stats() Stats {
	return Stats{Batches: w.batches.Load(), Messages: w.messages.Load(), Inserted: w.inserted.Load(),
		Failed: w.failed.Load(), Malformed: w.malformed.Load()}
}
