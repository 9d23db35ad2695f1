// Package app wires a metrics service process from its configuration:
// PostgreSQL (migrated at start), Redis, the asynq server that counts the
// events, the pruning of processed event ids, and the HTTP endpoints (the
// usage API, health and metrics). The metrics binary and `roomcast run`
// both start it through Run.
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

	"github.com/roomcast/roomcast/pkg/auth/apikeys"
	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/nodelease"
	"github.com/roomcast/roomcast/pkg/observability"
	"github.com/roomcast/roomcast/pkg/service"
	"github.com/roomcast/roomcast/services/metrics/config"
	"github.com/roomcast/roomcast/services/metrics/internal/api"
	"github.com/roomcast/roomcast/services/metrics/internal/migrations"
	"github.com/roomcast/roomcast/services/metrics/internal/store"
	"github.com/roomcast/roomcast/services/metrics/internal/worker"
)

// Run serves until ctx is cancelled, then stops taking tasks and lets the
// ones in progress finish within cfg.ShutdownTimeout. onListen, if set, is
// called with the HTTP address once the process is up.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, onListen func(addr net.Addr)) error {
	log = log.With("service", "metrics", "node", cfg.NodeID)
	keys, err := cfg.ParseKeys()
	if err != nil {
		return err
	}
	if len(keys) == 0 && cfg.AuthURL == "" {
		log.Warn("ROOMCAST_KEYS and ROOMCAST_AUTH_URL are empty: the usage API will refuse every API key")
	}
	pool, err := migrations.Open(ctx, "METRICS_DATABASE_URL", cfg.DatabaseURL, int32(min(cfg.Concurrency, 1000))+4, log) //nolint:gosec // bounded
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

	w := worker.New(st, log.With("component", "worker"))
	queue := events.Queue(cfg.RedisPrefix, "metrics")
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:       cfg.Concurrency,
		Queues:            map[string]int{queue: 1},
		TaskCheckInterval: cfg.PollInterval,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		RetryDelayFunc:    events.RetryBackoff(200*time.Millisecond, time.Minute),
		Logger:            observability.AsynqLogger(log.With("component", "asynq")),
		LogLevel:          asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Use(observability.TaskOutcomes(reg, "metrics"))
	w.Register(mux)
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("asynq: %w", err)
	}
	registerMetrics(reg, w)
	observability.QueueDepths(reg, rdb, map[string]string{"metrics": queue})

	ring := apikeys.New(keys, cfg.AuthURL, cfg.ServiceToken, log.With("component", "keys"))
	hmux := http.NewServeMux()
	api.New(st, ring, cfg.MaxBuckets, log.With("component", "api")).Mount(hmux)
	observability.Mount(hmux, reg,
		observability.Check{Name: "postgres", Func: st.Ping},
		observability.RedisCheck(rdb),
	)
	hs, err := service.ListenHTTP(log, cfg.Addr, hmux, 10*time.Second)
	if err != nil {
		srv.Shutdown()
		return err
	}

	bgCtx, stopBg := context.WithCancel(ctx)
	defer stopBg()
	go ring.Run(bgCtx, cfg.KeysRefresh)
	go worker.Prune(bgCtx, st, cfg.DedupeWindow, 10*time.Minute, log.With("component", "prune"))
	leases := &nodelease.Tracker{RDB: rdb, Prefix: cfg.RedisPrefix, Seen: cfg.RedisPrefix + "metrics:leased"}
	go worker.RunSweeper(bgCtx, st, leases, cfg.SweepInterval, cfg.DedupeWindow, log.With("component", "sweep"))

	hs.Announce(log, onListen, "queue", queue)
	if err := hs.Wait(ctx); err != nil {
		srv.Shutdown()
		return err
	}
	log.Info("stopping", "timeout", cfg.ShutdownTimeout.String())
	stopBg()
	srv.Shutdown() // waits up to ShutdownTimeout for tasks in progress
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	log.Info("stopped")
	return nil
}
