// Package app wires a webhooks service process from its configuration:
// PostgreSQL (migrated on start), Redis, the asynq server that turns
// events into deliveries, the dispatcher that sends them, the occupancy
// sweeper, the log pruner, and the HTTP API with health and metrics. The
// webhooks binary (and `roomcast run`) start it through Run.
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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/auth/apikeys"
	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/observability"
	"github.com/roomcast/roomcast/pkg/seal"
	"github.com/roomcast/roomcast/pkg/service"
	"github.com/roomcast/roomcast/services/webhooks/config"
	"github.com/roomcast/roomcast/services/webhooks/internal/api"
	"github.com/roomcast/roomcast/services/webhooks/internal/deliver"
	"github.com/roomcast/roomcast/services/webhooks/internal/ingest"
	"github.com/roomcast/roomcast/services/webhooks/internal/migrations"
	"github.com/roomcast/roomcast/services/webhooks/internal/safenet"
	"github.com/roomcast/roomcast/services/webhooks/internal/store"
)

// Run serves until ctx is cancelled, then stops taking tasks, lets
// requests in flight finish within cfg.ShutdownTimeout and returns.
// onListen, if set, is called with the HTTP address once the process is up.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, onListen func(addr net.Addr)) error {
	log = log.With("service", "webhooks", "node", cfg.NodeID)
	master, err := cfg.ParseMasterKey()
	if err != nil {
		return err
	}
	sealer, err := seal.New(master)
	if err != nil {
		return err
	}
	static, err := cfg.ParseKeys()
	if err != nil {
		return err
	}
	pool, err := migrations.Open(ctx, "WEBHOOKS_DATABASE_URL", cfg.DatabaseURL, 0, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool, sealer)

	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return errors.New("ROOMCAST_REDIS_URL: not a valid Redis URL")
	}
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	reg := observability.NewRegistry()
	rdb.AddHook(observability.RedisErrors(reg))

	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()

	disp := deliver.New(deliver.Config{
		Senders: cfg.Senders, PerEndpoint: cfg.EndpointConcurrency, Interval: cfg.DispatchInterval, Timeout: cfg.Timeout,
		RetryMin: cfg.RetryMin, RetryMax: cfg.RetryMax, RetryHorizon: cfg.RetryHorizon,
		HTTP: safenet.Client(cfg.Timeout, cfg.AllowPrivate), UserAgent: "Roomcast-Webhooks/1",
	}, st, log.With("component", "deliver"))
	dispDone := make(chan struct{})
	go func() { disp.Run(runCtx); close(dispDone) }()

	in := ingest.New(rdb, cfg.RedisPrefix, st, disp.Wake, log.With("component", "ingest"))
	queue := events.Queue(cfg.RedisPrefix, "webhooks")
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:       cfg.Concurrency,
		Queues:            map[string]int{queue: 1},
		TaskCheckInterval: cfg.PollInterval,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		RetryDelayFunc:    events.RetryBackoff(100*time.Millisecond, 30*time.Second),
		Logger:            observability.AsynqLogger(log.With("component", "asynq")),
		LogLevel:          asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Use(observability.TaskOutcomes(reg, "webhooks"))
	in.Register(mux)
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("asynq: %w", err)
	}
	defer srv.Shutdown()
	go in.RunSweeper(runCtx, cfg.SweepInterval)
	go prune(runCtx, st, cfg.LogRetention, log)

	ring := apikeys.New(static, cfg.AuthURL, cfg.ServiceToken, log.With("component", "keys"))
	go ring.Run(runCtx, cfg.KeysRefresh)

	registerMetrics(reg, disp, in)
	observability.QueueDepths(reg, rdb, map[string]string{"webhooks": queue})
	hmux := http.NewServeMux()
	api.New(api.Config{Store: st, Keys: ring, AllowPrivate: cfg.AllowPrivate, SecretOverlap: cfg.SecretOverlap,
		Changed: disp.Wake, Log: log.With("component", "api")}).Mount(hmux)
	observability.Mount(hmux, reg,
		observability.Check{Name: "postgres", Func: st.Ping},
		observability.RedisCheck(rdb),
	)
	hs, err := service.ListenHTTP(log, cfg.Addr, hmux, 10*time.Second)
	if err != nil {
		return err
	}
	if cfg.AllowPrivate {
		log.Warn("WEBHOOKS_ALLOW_PRIVATE is on: endpoints may reach loopback, private and metadata addresses (local development only)")
	}
	hs.Announce(log, onListen, "queue", queue)
	if err := hs.Wait(ctx); err != nil {
		return err
	}
	log.Info("stopping", "timeout", cfg.ShutdownTimeout.String())
	srv.Shutdown()
	stopRun()
	select {
	case <-dispDone:
	case <-time.After(cfg.ShutdownTimeout):
		log.Warn("requests still in flight at the deadline; their deliveries are retried when their lease ends")
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	log.Info("stopped")
	return nil
}

// prune deletes finished deliveries older than retention, hourly.
func prune(ctx context.Context, st *store.Store, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := st.Prune(ctx, time.Now().Add(-retention)); err != nil && ctx.Err() == nil {
			log.Warn("pruning the delivery log failed", "err", err)
		} else if n > 0 {
			log.Info("pruned the delivery log", "deliveries", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func registerMetrics(reg *prometheus.Registry, d *deliver.Dispatcher, in *ingest.Ingester) {
	counter := func(name, help string, f func() uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) }))
	}
	counter("roomcast_webhooks_tasks_total", "Event tasks turned into deliveries.", func() uint64 { return in.Stats().Tasks })
	counter("roomcast_webhooks_task_failures_total", "Event task attempts that failed and will be retried.", func() uint64 { return in.Stats().Failed })
	counter("roomcast_webhooks_events_total", "Webhook events made from tasks (before the endpoint filters).", func() uint64 { return in.Stats().Events })
	counter("roomcast_webhooks_attempts_total", "Requests sent to endpoints.", func() uint64 { return d.Stats().Attempts })
	counter("roomcast_webhooks_delivered_total", "Deliveries an endpoint acknowledged with 2xx.", func() uint64 { return d.Stats().Delivered })
	counter("roomcast_webhooks_retries_total", "Failed attempts scheduled for a retry.", func() uint64 { return d.Stats().Failed })
	counter("roomcast_webhooks_dead_total", "Deliveries given up (dead-lettered).", func() uint64 { return d.Stats().Dead })
}
