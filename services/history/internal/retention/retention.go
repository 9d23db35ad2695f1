// Package retention deletes expired messages from the archive: every
// interval, the one replica of the cluster that takes a Redis lock deletes
// them in bounded batches.
package retention

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Deleter is what retention needs of the store.
type Deleter interface {
	DeleteExpired(ctx context.Context, now time.Time, batch int) (int64, error)
	DeleteEmptyEpochs(ctx context.Context, now time.Time, batch int) (int64, error)
}

// Job is the retention loop of one replica.
type Job struct {
	Store    Deleter
	Redis    redis.UniversalClient
	LockKey  string // the cluster's lock (prefix + "history:lock:retention")
	Interval time.Duration
	Batch    int
	Log      *slog.Logger

	sweeps, deleted atomic.Uint64
}

// Run sweeps every Interval until ctx ends.
func (j *Job) Run(ctx context.Context) {
	t := time.NewTicker(j.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			j.tick(ctx)
		}
	}
}

// tick sweeps if this replica takes the lock. The lock lasts one interval
// and is not released: whoever takes it first in the next interval sweeps
// next, so the cluster sweeps about once per interval, whatever its size.
func (j *Job) tick(ctx context.Context) {
	ok, err := j.Redis.SetNX(ctx, j.LockKey, "1", j.Interval).Result()
	if err != nil {
		j.Log.Warn("retention: lock", "err", err)
		return
	}
	if !ok {
		return
	}
	j.Sweep(ctx, time.Now())
}

// Sweep deletes every message expired at now, Batch rows per statement,
// then the epochs left empty. Concurrent sweeps (a slow one overlapping the
// next interval's) skip each other's rows.
func (j *Job) Sweep(ctx context.Context, now time.Time) {
	j.sweeps.Add(1)
	var total int64
	for ctx.Err() == nil {
		n, err := j.Store.DeleteExpired(ctx, now, j.Batch)
		if err != nil {
			j.Log.Warn("retention: delete", "err", err)
			return
		}
		total += n
		j.deleted.Add(uint64(n)) //nolint:gosec // never negative
		if n < int64(j.Batch) {
			break
		}
	}
	for ctx.Err() == nil {
		n, err := j.Store.DeleteEmptyEpochs(ctx, now, j.Batch)
		if err != nil {
			j.Log.Warn("retention: delete epochs", "err", err)
			return
		}
		if n < int64(j.Batch) {
			break
		}
	}
	if total > 0 {
		j.Log.Info("retention: expired messages deleted", "deleted", total)
	}
}

// Sweeps and Deleted are counters for metrics.
func (j *Job) Sweeps() uint64  { return j.sweeps.Load() }
func (j *Job) Deleted() uint64 { return j.deleted.Load() }
