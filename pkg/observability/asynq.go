package observability

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// QueueStates are the states QueueDepths reports, as the "state" label.
var QueueStates = []string{"pending", "active", "scheduled", "retry", "archived", "aggregating"}

// QueueDepths exposes, at scrape time, how many tasks each asynq queue
// holds per state: roomcast_queue_tasks{queue, state}. queues are the
// consumer names (e.g. "metrics") and their asynq queue names.
func QueueDepths(reg prometheus.Registerer, rdb redis.UniversalClient, queues map[string]string) {
	reg.MustRegister(&queueCollector{insp: asynq.NewInspectorFromRedisClient(rdb), queues: queues})
}

var queueDesc = prometheus.NewDesc("roomcast_queue_tasks",
	"Tasks in a worker service's asynq queue, by state.", []string{"queue", "state"}, nil)

type queueCollector struct {
	insp   *asynq.Inspector
	queues map[string]string
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- queueDesc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	for name, q := range c.queues {
		info, err := c.insp.GetQueueInfo(q)
		if err != nil {
			// An empty queue that was never written does not exist yet.
			info = &asynq.QueueInfo{}
		}
		for i, v := range []int{info.Pending, info.Active, info.Scheduled, info.Retry, info.Archived, info.Aggregating} {
			ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(v), name, QueueStates[i])
		}
	}
}

// TaskOutcomes returns an asynq middleware that counts handled tasks as
// roomcast_tasks_total{queue, type, outcome}: "ok", "retry" (failed, will
// be retried) or "dropped" (failed with asynq.SkipRetry: malformed or from
// a newer version).
func TaskOutcomes(reg prometheus.Registerer, queue string) asynq.MiddlewareFunc {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roomcast_tasks_total",
		Help: "Tasks handled by this worker, by queue, type and outcome (ok, retry, dropped).",
	}, []string{"queue", "type", "outcome"})
	reg.MustRegister(c)
	return func(h asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			err := h.ProcessTask(ctx, t)
			outcome := "ok"
			switch {
			case err == nil:
			case errors.Is(err, asynq.SkipRetry):
				outcome = "dropped"
			default:
				outcome = "retry"
			}
			c.WithLabelValues(queue, t.Type(), outcome).Inc()
			return err
		})
	}
}

// AsynqLogger routes asynq's own logs to slog.
func AsynqLogger(l *slog.Logger) asynq.Logger { return asynqLogger{l} }

type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }

// Fatal logs at error level: asynq calls it where it would exit, and a
// service decides for itself when to stop.
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
