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
	// ReaderWakeups counts reading goroutines started because an idle
	// connection's socket became readable (GATEWAY_READ_LINGER).
	ReaderWakeups  prometheus.Counter
	SlowConsumers  prometheus.Counter
	RateLimited    prometheus.Counter
	PublishLatency prometheus.Histogram
	// Joins counts room joins; MessagesIn and BytesIn the messages this
	// node published into rooms (WebSocket and REST) and their payload
	// bytes; FrameBytes the bytes of every message clients sent; BytesOut
	// the bytes written to clients.
	Joins      prometheus.Counter
	MessagesIn prometheus.Counter
	BytesIn    prometheus.Counter
	FrameBytes prometheus.Counter
	BytesOut   prometheus.Counter
	// DeliverLatency is publish (the envelope's timestamp, set by the
	// publishing gateway) to fan-out at this node.
	DeliverLatency prometheus.Histogram
	// LiveMetricsSubscriptions counts connections' live room metrics
	// subscriptions.
	LiveMetricsSubscriptions prometheus.Gauge
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
		ReaderWakeups: prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_gateway_reader_wakeups_total", Help: "Reading goroutines started for idle connections whose socket became readable."}),
		SlowConsumers: prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_gateway_slow_consumers_total", Help: "Connections closed for overflowing their outbound buffer."}),
		RateLimited:   prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_gateway_rate_limited_total", Help: "Operations refused by the per-connection rate limit."}),
		PublishLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "roomcast_gateway_publish_seconds", Help: "Client publish to broker confirm.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		Joins:      prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_gateway_joins_total", Help: "Room joins."}),
		MessagesIn: prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_gateway_messages_in_total", Help: "Messages published into rooms through this node (WebSocket and REST), once confirmed."}),
		BytesIn:    prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_gateway_message_bytes_in_total", Help: "Payload bytes of the messages published through this node."}),
		FrameBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_gateway_bytes_in_total", Help: "Bytes of the WebSocket messages clients sent."}),
		BytesOut:   prometheus.NewCounter(prometheus.CounterOpts{Name: "roomcast_gateway_bytes_out_total", Help: "Bytes written to WebSocket clients."}),
		DeliverLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "roomcast_gateway_deliver_latency_seconds", Help: "Publish (the publishing gateway's timestamp) to fan-out at this node.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		LiveMetricsSubscriptions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "roomcast_gateway_live_metrics_subscriptions", Help: "Live room metrics subscriptions on this node."}),
	}
	if reg != nil {
		reg.MustRegister(g.Connections, g.Handshakes, g.RejectedHandshake, g.Closes, g.CommandsIn, g.Errors,
			g.FramesOut, g.Writes, g.ReaderWakeups, g.SlowConsumers, g.RateLimited, g.PublishLatency,
			g.Joins, g.MessagesIn, g.BytesIn, g.FrameBytes, g.BytesOut, g.DeliverLatency, g.LiveMetricsSubscriptions)
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
