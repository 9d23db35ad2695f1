package conn

import (
	"sync"
	"time"
)

// window bounds a connection's publishes awaiting their answer. The read
// loop queues a publish and reads on (see publish), so without a bound a
// client could queue publishes faster than Redis and RabbitMQ answer them,
// and the gateway would hold them all. At the bound the read loop waits
// for an answer: the client's further input waits in TCP, as it did when
// every publish waited for its append. The zero value is unusable; an idle
// connection's window holds no channel.
type window struct {
	mu   sync.Mutex
	n    int           // publishes awaiting their answer
	wake chan struct{} // non-nil while acquire waits; release closes it
}

// acquire takes a place in a window of max, waiting up to timeout for one
// to free. It reports whether it got one.
func (w *window) acquire(max int, timeout time.Duration) bool {
	var timer *time.Timer
	for {
		w.mu.Lock()
		if w.n < max {
			w.n++
			w.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return true
		}
		if w.wake == nil {
			w.wake = make(chan struct{})
		}
		wake := w.wake
		w.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(timeout)
		}
		select {
		case <-wake:
		case <-timer.C:
			return false
		}
	}
}

// release frees a place and wakes a waiting acquire.
func (w *window) release() {
	w.mu.Lock()
	w.n--
	if w.wake != nil {
		close(w.wake)
		w.wake = nil
	}
	w.mu.Unlock()
}
