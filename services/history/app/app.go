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
	"net"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/observability"
	"github.com/roomcast/roomcast/pkg/service"
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
		RetryDelayFunc:    events.RetryBackoff(200*time.Millisecond, time.Minute),
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
	hs, err := service.ListenHTTP(log, cfg.Addr, hmux, 10*time.Second)
	if err != nil {
		srv.Shutdown()
		return err
	}

	jobCtx, stopJob := context.WithCancel(ctx)
	defer stopJob()
	go job.Run(jobCtx)
	go worker.RunGroupRepair(jobCtx, rdb, queue, 10*time.Second, log.With("component", "worker"))

	hs.Announce(log, onListen, "queue", queue)
	if err := hs.Wait(ctx); err != nil {
		srv.Shutdown()
		return err
	}
	log.Info("stopping", "timeout", cfg.ShutdownTimeout.String())
	stopJob()
	srv.Shutdown() // waits up to ShutdownTimeout for batches in progress
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	log.Info("stopped")
	return nil
}
