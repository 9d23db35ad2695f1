package server

import (
	"context"
	"time"
)

// Leaser renews a node's presence lease (pkg/presence.Store.Lease).
type Leaser interface {
	Lease(ctx context.Context, node string) (lost bool, err error)
}

// RunPresenceLease keeps this node's presence lease alive, renewing it
// every ttl/3 until ctx ends. While the lease lives, the presence service
// keeps the node's members; when the node dies it stops, and they leave.
// If a renewal finds the lease already gone (Redis was unreachable for a
// whole ttl), the members may have been swept: every connection enters its
// members again.
func (s *Server) RunPresenceLease(ctx context.Context, l Leaser, node string, ttl time.Duration) {
	renew := func(first bool) {
		rctx, cancel := context.WithTimeout(ctx, ttl/3)
		defer cancel()
		lost, err := l.Lease(rctx, node)
		switch {
		case err != nil:
			s.log.Warn("presence lease renewal failed", "err", err)
		case lost && !first:
			s.log.Warn("presence lease had expired; entering this node's members again")
			for _, c := range s.snapshot() {
				c.ReenterPresence()
			}
		}
	}
	renew(true)
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			renew(false)
		}
	}
}
