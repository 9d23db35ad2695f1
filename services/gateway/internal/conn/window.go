package conn

import (
	"sync"
	"time"
)

// window counts a connection's publishes awaiting their answer and bounds
// them. The read loop queues a publish and reads on (see publish), so
// without a bound a client could queue publishes faster than Redis and
// RabbitMQ answer them, and the gateway would hold them all. At the bound
// the read loop waits for an answer: the client's further input waits in
// TCP, as it did when every publish waited for its append. The zero value
// is an empty window; an idle connection's holds no channel.
type window struct {
	mu   sync.Mutex
	n    int           // publishes awaiting their answer
	wake chan struct{} // non-nil while someone waits; release closes it
}

// acquire takes a place in a window of max, waiting up to timeout for one
// to free. It reports whether it got one.
func (w *window) acquire(max int, timeout time.Duration) bool {
	return w.waitBelow(max, true, timeout)
}

// drain waits until every publish has been answered.
func (w *window) drain() { w.waitBelow(1, false, 0) }

// waitBelow waits until fewer than limit publishes are in flight, then
// takes a place if take is set. A positive timeout bounds the wait; it
// reports whether the wait ended in time.
func (w *window) waitBelow(limit int, take bool, timeout time.Duration) bool {
	var expired <-chan time.Time
	for {
		w.mu.Lock()
		if w.n < limit {
			if take {
				w.n++
			}
			w.mu.Unlock()
			return true
		}
		if w.wake == nil {
			w.wake = make(chan struct{})
		}
		wake := w.wake
		w.mu.Unlock()
		if expired == nil && timeout > 0 {
			t := time.NewTimer(timeout)
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-wake:
		case <-expired:
			return false
		}
	}
}

// release frees a place and wakes whoever waits.
func (w *window) release() {
	w.mu.Lock()
	w.n--
	if w.wake != nil {
		close(w.wake)
		w.wake = nil
	}
	w.mu.Unlock()
}
