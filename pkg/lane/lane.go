// Package lane batches requests to a server without delaying them.
//
// A Lane sends everything queued as one batch, waits for the server's
// answer, then sends what queued meanwhile. An idle lane sends a request at
// once, alone; a busy one gathers the requests that arrive during one round
// trip. So batches grow with the load and with the server's latency, and a
// client that pipelines requests pays one round trip (one write, one read,
// one wake-up) per batch instead of per request. Requests on one lane are
// sent in the order they were pushed, batch after batch.
//
// A lane's goroutine runs only while there is work, and a moment longer
// (IdleTimeout) so that steady traffic does not start one per batch: an
// unused Lane holds nothing and needs no Close.
package lane

import (
	"context"
	"sync"
	"time"
)

// IdleTimeout is how long a lane's goroutine waits for more work before it
// exits.
const IdleTimeout = time.Second

// Limits bound one batch. The zero value sends everything queued at once.
type Limits struct {
	// Items is the most requests in one batch; zero means no limit.
	Items int
	// Bytes is the most bytes in one batch, as the size function counts
	// them, except that a batch always takes at least one request; zero
	// means no limit.
	Bytes int
}

// Lane queues requests of type T for its send function.
type Lane[T any] struct {
	send   func([]T)
	size   func(T) int
	limits Limits

	mu      sync.Mutex
	q       []T
	running bool          // a goroutine is sending or waiting for work
	wake    chan struct{} // 1-buffered: something was queued
}

// New returns a lane that calls send with each batch, one batch at a time,
// on the lane's goroutine; send owns the slice only until it returns. size
// (nil: none) gives a request's bytes for Limits.Bytes.
func New[T any](limits Limits, size func(T) int, send func([]T)) *Lane[T] {
	return &Lane[T]{send: send, size: size, limits: limits, wake: make(chan struct{}, 1)}
}

// Push queues v for the next batch. It never blocks.
func (l *Lane[T]) Push(v T) {
	l.mu.Lock()
	l.q = append(l.q, v)
	start := !l.running
	l.running = true
	l.mu.Unlock()
	if start {
		go l.run()
		return
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *Lane[T]) run() {
	idle := time.NewTimer(IdleTimeout)
	defer idle.Stop()
	var batch []T
	for {
		batch = l.take(batch[:0])
		if len(batch) > 0 {
			l.send(batch)
			clear(batch)
			continue
		}
		idle.Reset(IdleTimeout)
		select {
		case <-l.wake:
		case <-idle.C:
			l.mu.Lock()
			if len(l.q) == 0 {
				l.running = false
				l.mu.Unlock()
				return
			}
			l.mu.Unlock()
		}
	}
}

// take moves the next batch from the queue into dst.
func (l *Lane[T]) take(dst []T) []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, bytes := 0, 0
	for n < len(l.q) && (l.limits.Items == 0 || n < l.limits.Items) {
		if l.size != nil && l.limits.Bytes > 0 {
			bytes += l.size(l.q[n])
			if n > 0 && bytes > l.limits.Bytes {
				break
			}
		}
		n++
	}
	dst = append(dst, l.q[:n]...)
	rest := copy(l.q, l.q[n:])
	clear(l.q[rest:])
	l.q = l.q[:rest]
	if cap(l.q) > 4096 && rest < 1024 {
		l.q = append([]T(nil), l.q...) // a burst's queue: let it go
	}
	return dst
}

// Context returns the context a batch is sent under: the request's own
// for a batch of one; otherwise one that ends at the latest of the
// requests' deadlines (an hour from now for a request without one), so
// that one caller giving up does not fail the others. Call cancel when the
// batch is done.
func Context[T any](batch []T, ctxOf func(T) context.Context) (ctx context.Context, cancel context.CancelFunc) {
	if len(batch) == 1 {
		return ctxOf(batch[0]), func() {}
	}
	var deadline time.Time
	for _, v := range batch {
		d, ok := ctxOf(v).Deadline()
		if !ok {
			d = time.Now().Add(time.Hour) // bounded only by its caller
		}
		if d.After(deadline) {
			deadline = d
		}
	}
	return context.WithDeadline(context.Background(), deadline)
}
