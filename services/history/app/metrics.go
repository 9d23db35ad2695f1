package app

import (
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/services/history/internal/retention"
	"github.com/roomcast/roomcast/services/history/internal/worker"
)

func registerMetrics(reg *prometheus.Registry, w *worker.Worker, job *retention.Job, rdb redis.UniversalClient, queue string) {
	counter := func(name, help string, f func() uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f()) }))
	}
	counter("roomcast_history_batches_total", "Batches archived.", func() uint64 { return w.Stats().Batches })
	counter("roomcast_history_messages_total", "Messages in archived batches (repeats included).", func() uint64 { return w.Stats().Messages })
	counter("roomcast_history_inserted_total", "Messages new to the archive.", func() uint64 { return w.Stats().Inserted })
	counter("roomcast_history_batch_failures_total", "Batch attempts that failed and will be retried.", func() uint64 { return w.Stats().Failed })
	counter("roomcast_history_malformed_total", "Payloads skipped as unreadable.", func() uint64 { return w.Stats().Malformed })
	counter("roomcast_history_retention_sweeps_total", "Retention sweeps this replica ran (it held the lock).", job.Sweeps)
	counter("roomcast_history_retention_deleted_total", "Expired messages this replica deleted.", job.Deleted)

	insp := asynq.NewInspectorFromRedisClient(rdb)
	gauge := func(name, help string, f func(*asynq.QueueInfo) int) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			info, err := insp.GetQueueInfo(queue)
			if err != nil {
				return 0
			}
			return float64(f(info))
		}))
	}
	gauge("roomcast_history_queue_aggregating", "Messages waiting in groups to form batches.", func(i *asynq.QueueInfo) int { return i.Aggregating })
	gauge("roomcast_history_queue_pending", "Batches waiting to be archived.", func(i *asynq.QueueInfo) int { return i.Pending })
	gauge("roomcast_history_queue_retry", "Batches waiting to be retried.", func(i *asynq.QueueInfo) int { return i.Retry })
}
