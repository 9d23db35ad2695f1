package events

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// EmitterConfig tunes an Emitter.
type EmitterConfig struct {
	// Prefix is the cluster's Redis prefix (see Queue).
	Prefix string
	// Consumers are the enabled worker services (keys of Consumers); a task
	// type no enabled consumer takes is not enqueued at all.
	Consumers []string
	// Buffer is how many tasks may wait to be enqueued; when full, Emit
	// drops. Zero means 10000.
	Buffer int
	// Workers enqueue concurrently. Zero means 4.
	Workers int
	// EnqueueTimeout bounds one enqueue. Zero means 2s.
	EnqueueTimeout time.Duration
}

// EmitterStats are counters for metrics.
type EmitterStats struct {
	Enqueued uint64
	Dropped  uint64 // buffer full, Redis unreachable or emitter closed
}

// Emitter enqueues tasks without ever blocking its caller: Emit hands the
// task to a bounded buffer and returns; a few goroutines enqueue from it.
// When Redis is down or slow the buffer fills and further tasks are
// dropped, counted and logged (at most once per second): a gateway keeps
// serving its connections, and workers repair what they can (presence
// members of a node expire by themselves).
type Emitter struct {
	cfg    EmitterConfig
	log    *slog.Logger
	client *asynq.Client
	routes map[string][]route // task type → queues
	next   atomic.Uint64      // spreads batched tasks over their groups

	mu     sync.RWMutex
	closed bool
	ch     chan item
	wg     sync.WaitGroup

	enqueued, dropped atomic.Uint64
	lastLog           atomic.Int64
}

type item struct {
	task  *asynq.Task
	queue string
	opts  []asynq.Option
}

// route is one consumer's queue for a task type; batched ones go into
// groups (see Batched).
type route struct {
	queue   string
	batched bool
}

// NewEmitter starts an emitter on rdb. Stop it with Close.
func NewEmitter(rdb redis.UniversalClient, cfg EmitterConfig, log *slog.Logger) *Emitter {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 10000
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.EnqueueTimeout <= 0 {
		cfg.EnqueueTimeout = 2 * time.Second
	}
	e := &Emitter{
		cfg:    cfg,
		log:    log,
		client: asynq.NewClientFromRedisClient(rdb),
		routes: make(map[string][]route),
		ch:     make(chan item, cfg.Buffer),
	}
	for _, c := range cfg.Consumers {
		for _, typ := range Consumers[c] {
			e.routes[typ] = append(e.routes[typ], route{queue: Queue(cfg.Prefix, c), batched: slices.Contains(Batched[c], typ)})
		}
	}
	for i := 0; i < cfg.Workers; i++ {
		e.wg.Add(1)
		go e.run()
	}
	return e
}

// Wants reports whether any enabled consumer takes tasks of type typ, so
// callers can skip building payloads nobody reads.
func (e *Emitter) Wants(typ string) bool { return len(e.routes[typ]) > 0 }

// Emit queues payload as a task of type typ for every enabled consumer of
// that type. It never blocks.
func (e *Emitter) Emit(typ string, payload any, opts ...asynq.Option) {
	queues := e.routes[typ]
	if len(queues) == 0 {
		return
	}
	t, err := NewTask(typ, payload)
	if err != nil {
		e.drop(typ, err)
		return
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		e.drop(typ, errClosed)
		return
	}
	for _, r := range queues {
		it := item{task: t, queue: r.queue, opts: opts}
		if r.batched {
			it.opts = append(slices.Clip(opts), asynq.Group(Group(typ, int(e.next.Add(1)%Groups))))
		}
		select {
		case e.ch <- it:
		default:
			e.drop(typ, errFull)
		}
	}
}

type emitError string

func (e emitError) Error() string { return string(e) }

const (
	errFull   emitError = "events: buffer full"
	errClosed emitError = "events: emitter closed"
)

func (e *Emitter) run() {
	defer e.wg.Done()
	for it := range e.ch {
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.EnqueueTimeout)
		opts := append([]asynq.Option{asynq.Queue(it.queue)}, it.opts...)
		_, err := e.client.EnqueueContext(ctx, it.task, opts...)
		cancel()
		if err != nil {
			e.drop(it.task.Type(), err)
			continue
		}
		e.enqueued.Add(1)
	}
}

func (e *Emitter) drop(typ string, err error) {
	e.dropped.Add(1)
	now := time.Now().UnixNano()
	last := e.lastLog.Load()
	if now-last >= int64(time.Second) && e.lastLog.CompareAndSwap(last, now) {
		e.log.Warn("event dropped", "type", typ, "err", err, "dropped_total", e.dropped.Load())
	}
}

// Stats returns the counters.
func (e *Emitter) Stats() EmitterStats {
	return EmitterStats{Enqueued: e.enqueued.Load(), Dropped: e.dropped.Load()}
}

// Close stops accepting tasks and enqueues what is buffered, until ctx
// ends; what is left then is dropped.
func (e *Emitter) Close(ctx context.Context) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	close(e.ch)
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		e.log.Warn("events not enqueued at shutdown", "left", len(e.ch))
	}
	_ = e.client.Close()
}
