package conn

import (
	"container/heap"
	"sync"
	"time"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// expiries closes connections whose token expired, with one timer for the
// whole node instead of one per connection (a runtime timer and its
// closure are ~170 bytes that every idle connection would keep).
var expiries = &expiryQueue{}

type expiryQueue struct {
	mu    sync.Mutex
	h     expiryHeap
	timer *time.Timer
	next  time.Time // when timer fires; zero when stopped
}

// expiryHeap orders connections by token expiry; each Conn knows its index.
type expiryHeap []*Conn

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expiryAt < h[j].expiryAt }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].expiryIndex = i
	h[j].expiryIndex = j
}
func (h *expiryHeap) Push(x any) {
	c := x.(*Conn)
	c.expiryIndex = len(*h)
	*h = append(*h, c)
}
func (h *expiryHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.expiryIndex = -1
	return c
}

// set schedules c's close at (unix nanoseconds), replacing an earlier
// schedule; at 0 it only removes c.
func (q *expiryQueue) set(c *Conn, at int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if c.expiryIndex >= 0 {
		heap.Remove(&q.h, c.expiryIndex)
	}
	c.expiryAt = at
	if at != 0 {
		heap.Push(&q.h, c)
	}
	q.rearm()
	if len(q.h) == 0 && cap(q.h) > 1024 {
		q.h = nil // do not keep a large array after a crowd left
	}
}

// rearm points the timer at the earliest expiry. Callers hold q.mu.
func (q *expiryQueue) rearm() {
	if len(q.h) == 0 {
		return // a timer that fires early finds nothing due
	}
	first := time.Unix(0, q.h[0].expiryAt)
	if !q.next.IsZero() && !first.Before(q.next) {
		return // the timer fires before then and rearms
	}
	q.next = first
	if q.timer == nil {
		q.timer = time.AfterFunc(time.Until(first), q.fire)
		return
	}
	q.timer.Reset(time.Until(first))
}

func (q *expiryQueue) fire() {
	now := time.Now().UnixNano()
	var due []*Conn
	q.mu.Lock()
	q.next = time.Time{}
	for len(q.h) > 0 && q.h[0].expiryAt <= now {
		c := heap.Pop(&q.h).(*Conn)
		c.expiryAt = 0
		due = append(due, c)
	}
	q.rearm()
	q.mu.Unlock()
	for _, c := range due {
		c.Close(protocol.CloseTokenExpired, "token expired")
	}
}
