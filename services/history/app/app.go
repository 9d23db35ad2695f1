// Package app wires a history service process from its configuration:
// PostgreSQL (migrated at start), Redis, the asynq server that archives
// message batches, the retention job and the HTTP endpoints (the internal
// read API for gateways, health and metrics). The history binary and
// `roomcast run` both start it through Run.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/observability"
	"github.com/roomcast/roomcast/services/history/config"
	"github.com/roomcast/roomcast/services/history/internal/api"
	"github.com/roomcast/roomcast/services/history/internal/migrations"
	"github.com/roomcast/roomcast/services/history/internal/retention"
	"github.com/roomcast/roomcast/services/history/internal/store"
	"github.com/roomcast/roomcast/services/history/internal/worker"
)

// Run serves until ctx is cancelled, then stops taking batches and lets the
// ones in progress finish within cfg.ShutdownTimeout. onListen, if set, is
// called with the HTTP address once the process is up.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, onListen func(addr net.Addr)) error {
	log = log.With("service", "history", "node", cfg.NodeID)
	pool, err := migrations.Open(ctx, "HISTORY_DATABASE_URL", cfg.DatabaseURL, int32(min(cfg.Concurrency, 1000))+4, log) //nolint:gosec // bounded
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)

	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return errors.New("ROOMCAST_REDIS_URL: not a valid Redis URL")
	}
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	reg := observability.NewRegistry()
	rdb.AddHook(observability.RedisErrors(reg))

	w := worker.New(st, cfg.RetentionFor, log.With("component", "worker"))
	queue := events.Queue(cfg.RedisPrefix, "history")
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:       cfg.Concurrency,
		Queues:            map[string]int{queue: 1},
		TaskCheckInterval: cfg.PollInterval,
		GroupAggregator:   asynq.GroupAggregatorFunc(worker.Aggregate),
		GroupGracePeriod:  cfg.BatchWait,
		GroupMaxDelay:     cfg.BatchMaxWait,
		GroupMaxSize:      cfg.BatchSize,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		RetryDelayFunc:    retryDelay,
		Logger:            observability.AsynqLogger(log.With("component", "asynq")),
		LogLevel:          asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Use(observability.TaskOutcomes(reg, "history"))
	w.Register(mux)
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("asynq: %w", err)
	}

	job := &retention.Job{Store: st, Redis: rdb, LockKey: cfg.RedisPrefix + "history:lock:retention",
		Interval: cfg.RetentionInterval, Batch: cfg.RetentionBatch, Log: log.With("component", "retention")}

	registerMetrics(reg, w, job, rdb, queue)
	observability.QueueDepths(reg, rdb, map[string]string{"history": queue})
	hmux := http.NewServeMux()
	api.New(st, cfg.ServiceToken, log.With("component", "api")).Mount(hmux)
	observability.Mount(hmux, reg,
		observability.Check{Name: "postgres", Func: st.Ping},
		observability.RedisCheck(rdb),
	)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		srv.Shutdown()
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	httpSrv := &http.Server{Handler: hmux, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()

	jobCtx, stopJob := context.WithCancel(ctx)
	defer stopJob()
	go job.Run(jobCtx)
	go worker.RunGroupRepair(jobCtx, rdb, queue, 10*time.Second, log.With("component", "worker"))

	log.Info("listening", "addr", ln.Addr().String(), "queue", queue)
	if onListen != nil {
		onListen(ln.Addr())
	}
	select {
	case err := <-serveErr:
		srv.Shutdown()
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("stopping", "timeout", cfg.ShutdownTimeout.String())
	stopJob()
	srv.Shutdown() // waits up to ShutdownTimeout for batches in progress
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = httpSrv.Shutdown(sctx)
	log.Info("stopped")
	return nil
}

// retryDelay retries fast at first: a batch that failed on a database blip
// should be archived soon after it is back.
func retryDelay(n int, _ error, _ *asynq.Task) time.Duration {
	d := time.Duration(float64(200*time.Millisecond) * math.Pow(2, float64(n)))
	return min(d, time.Minute)
}
