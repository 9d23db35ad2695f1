// Package metrics holds the gateway's Prometheus metrics in one place so
// every name and label is defined once.
package metrics

import "github.com/prometheus/client_golang/prometheus"

// Gateway are the gateway's own metrics.
type Gateway struct {
	Connections       prometheus.Gauge
	Handshakes        prometheus.Counter
	RejectedHandshake *prometheus.CounterVec // by reason
	Closes            *prometheus.CounterVec // by close code name
	CommandsIn        *prometheus.CounterVec // by op
	Errors            *prometheus.CounterVec // error replies by code
	FramesOut         prometheus.Counter
	Writes            prometheus.Counter
	SlowConsumers     prometheus.Counter
	RateLimited       prometheus.Counter
	PublishLatency    prometheus.Histogram
}

// New creates the metrics and registers them on reg (nil: unregistered).
func New(reg prometheus.Registerer) *Gateway {
	g := &Gateway{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "roomcast_gateway_connections", Help: "Open WebSocket connections."}),
		Handshakes:  prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_gateway_handshakes_total", Help: "Accepted WebSocket handshakes."}),
		RejectedHandshake: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roomcast_gateway_handshakes_rejected_total", Help: "Rejected handshakes by reason.",
		}, []string{"reason"}),
		Closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roomcast_gateway_closes_total", Help: "Connections closed by the server, by close code.",
		}, []string{"code"}),
		CommandsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roomcast_gateway_commands_total", Help: "Client commands received, by op.",
		}, []string{"op"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roomcast_gateway_error_replies_total", Help: "Error replies sent, by code.",
		}, []string{"code"}),
		FramesOut:     prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_gateway_frames_out_total", Help: "WebSocket frames written to clients."}),
		Writes:        prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_gateway_socket_writes_total", Help: "Socket writes (each may carry many coalesced frames)."}),
		SlowConsumers: prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_gateway_slow_consumers_total", Help: "Connections closed for overflowing their outbound buffer."}),
		RateLimited:   prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_gateway_rate_limited_total", Help: "Operations refused by the per-connection rate limit."}),
		PublishLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "roomcast_gateway_publish_seconds", Help: "Client publish to broker confirm.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(g.Connections, g.Handshakes, g.RejectedHandshake, g.Closes, g.CommandsIn, g.Errors,
			g.FramesOut, g.Writes, g.SlowConsumers, g.RateLimited, g.PublishLatency)
	}
	return g
}

// Func registers a counter whose value is read at scrape time from f, for
// counters another package already keeps (hub, broker).
func Func(reg prometheus.Registerer, name, help string, f func() float64) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

// GaugeFunc registers a gauge read at scrape time.
func GaugeFunc(reg prometheus.Registerer, name, help string, f func() float64) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}
