package app

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/envelope"
	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/observability"
	"github.com/roomcast/roomcast/pkg/presence"
	"github.com/roomcast/roomcast/services/gateway/config"
	"github.com/roomcast/roomcast/services/gateway/internal/hub"
	"github.com/roomcast/roomcast/services/gateway/internal/live"
	"github.com/roomcast/roomcast/services/gateway/internal/metrics"
)

// observe adds the node-wide series that need Redis: Redis errors and the
// depths of the queues this node feeds.
func observe(reg *prometheus.Registry, rdb *redis.Client, prefix string, consumers []string) {
	rdb.AddHook(observability.RedisErrors(reg))
	queues := make(map[string]string, len(consumers))
	for _, c := range consumers {
		queues[c] = events.Queue(prefix, c)
	}
	observability.QueueDepths(reg, rdb, queues)
}

// countPublished counts the messages this node published (WebSocket and
// REST), then hands them to next (the events), if any.
func countPublished(m *metrics.Gateway, next func(*envelope.Envelope)) func(*envelope.Envelope) {
	return func(e *envelope.Envelope) {
		m.MessagesIn.Inc()
		m.BytesIn.Add(float64(len(e.Data)))
		if next != nil {
			next(e)
		}
	}
}

// fannedOut observes publish-to-deliver latency: the envelope's timestamp
// is the publishing gateway's clock, so across nodes it includes their
// clock skew.
func fannedOut(m *metrics.Gateway) func(*envelope.Envelope, int) {
	return func(e *envelope.Envelope, deliveries int) {
		if e.Timestamp <= 0 || deliveries == 0 {
			return
		}
		m.DeliverLatency.Observe(max(0, time.Since(time.UnixMilli(e.Timestamp)).Seconds()))
	}
}

// newLive builds the live room metrics of this node (internal/live).
func newLive(rdb *redis.Client, cfg *config.Config, h *hub.Hub, p *presence.Store, log *slog.Logger) *live.Service {
	return live.New(rdb, cfg.RedisPrefix, cfg.NodeID, h, p, log.With("component", "live"))
}
