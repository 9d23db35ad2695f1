package server

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ipLimiter is a token bucket per client IP for WebSocket handshakes,
// checked before any upgrade work. Idle entries are swept so the map stays
// bounded by the addresses seen recently.
type ipLimiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*ipBucket
}

type ipBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// ipIdle is how long an address's bucket is kept after its last handshake.
const ipIdle = 5 * time.Minute

func newIPLimiter(perSecond float64, burst int) *ipLimiter {
	return &ipLimiter{rate: rate.Limit(perSecond), burst: burst, buckets: make(map[string]*ipBucket)}
}

func (l *ipLimiter) allow(ip string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[ip]
	if b == nil {
		b = &ipBucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[ip] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

func (l *ipLimiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ip, b := range l.buckets {
		if now.Sub(b.seen) > ipIdle {
			delete(l.buckets, ip)
		}
	}
}
