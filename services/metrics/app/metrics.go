package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomcast/roomcast/services/metrics/internal/worker"
)

func registerMetrics(reg *prometheus.Registry, w *worker.Worker) {
	counter := func(name, help string, f func(worker.Stats) uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(w.Stats())) }))
	}
	counter("roomcast_metrics_events_applied_total", "Events counted into the usage buckets.", func(s worker.Stats) uint64 { return s.Applied })
	counter("roomcast_metrics_events_duplicate_total", "Events delivered again and counted nothing.", func(s worker.Stats) uint64 { return s.Duplicates })
	counter("roomcast_metrics_event_failures_total", "Event attempts that failed and will be retried.", func(s worker.Stats) uint64 { return s.Failed })
	counter("roomcast_metrics_events_malformed_total", "Events dropped as unreadable.", func(s worker.Stats) uint64 { return s.Malformed })
}
