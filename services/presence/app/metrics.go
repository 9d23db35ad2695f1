package app

import (
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/services/presence/internal/worker"
)

func registerMetrics(reg *prometheus.Registry, w *worker.Worker, rdb redis.UniversalClient, queue string) {
	counter := func(name, help string, f func(worker.Stats) uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(w.Stats())) }))
	}
	counter("roomcast_presence_tasks_total", "Presence tasks handled.", func(s worker.Stats) uint64 { return s.Tasks })
	counter("roomcast_presence_task_failures_total", "Presence task attempts that failed and will be retried.", func(s worker.Stats) uint64 { return s.Failed })
	counter("roomcast_presence_events_published_total", "Presence events published into rooms.", func(s worker.Stats) uint64 { return s.Events })
	counter("roomcast_presence_swept_members_total", "Members removed because their gateway died.", func(s worker.Stats) uint64 { return s.Swept })
	counter("roomcast_presence_dead_nodes_total", "Dead gateways found by sweeps.", func(s worker.Stats) uint64 { return s.DeadNodes })

	insp := asynq.NewInspectorFromRedisClient(rdb)
	depth := func(f func(*asynq.QueueInfo) int) func() float64 {
		return func() float64 {
			info, err := insp.GetQueueInfo(queue)
			if err != nil {
				return 0
			}
			return float64(f(info))
		}
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomcast_presence_queue_pending", Help: "Presence tasks waiting in the queue."},
		depth(func(i *asynq.QueueInfo) int { return i.Pending })))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomcast_presence_queue_scheduled", Help: "Presence tasks scheduled for later (detaches waiting out the grace)."},
		depth(func(i *asynq.QueueInfo) int { return i.Scheduled })))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roomcast_presence_queue_retry", Help: "Presence tasks waiting to be retried."},
		depth(func(i *asynq.QueueInfo) int { return i.Retry })))
}
