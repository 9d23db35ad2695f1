// Package app wires a presence service process from its configuration:
// Redis, the presence store, a publish-only broker, the asynq server that
// runs the presence tasks, the dead-node sweeper and the HTTP endpoints.
// The presence binary and `roomcast run` both start it through Run.
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

	"github.com/roomcast/roomcast/pkg/broker"
	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/observability"
	"github.com/roomcast/roomcast/pkg/presence"
	"github.com/roomcast/roomcast/pkg/roomlog"
	"github.com/roomcast/roomcast/pkg/service"
	"github.com/roomcast/roomcast/services/presence/config"
	"github.com/roomcast/roomcast/services/presence/internal/worker"
)

// Run serves until ctx is cancelled, then stops taking tasks and lets the
// ones in progress finish within cfg.ShutdownTimeout. onListen, if set, is
// called with the HTTP address once the process is up.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, onListen func(addr net.Addr)) error {
	log = log.With("service", "presence", "node", cfg.NodeID)
	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("ROOMCAST_REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	lcfg, err := cfg.LogConfig(cfg.RedisPrefix)
	if err != nil {
		return err
	}
	store := presence.New(rdb, roomlog.New(rdb, lcfg), presence.Config{Prefix: cfg.RedisPrefix, TombstoneTTL: cfg.TombstoneTTL})

	// Publish-only: the node queue stays unbound, so nothing is consumed.
	bus, err := broker.New(broker.Config{URL: cfg.AMQPURL, NodeID: "presence-" + cfg.NodeID, PublishTimeout: cfg.PublishTimeout},
		log, func(int, []byte) {})
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	defer bus.Close()

	reg := observability.NewRegistry()
	rdb.AddHook(observability.RedisErrors(reg))
	membersKey := cfg.RedisPrefix + "presence:stats:members"
	w := worker.New(countingStore{Store: store, rdb: rdb, key: membersKey}, bus, cfg.Shards, cfg.PublishTimeout, log.With("component", "worker"))
	if consumers, _ := cfg.Consumers(); len(consumers) > 0 {
		em := events.NewEmitter(rdb, events.EmitterConfig{Prefix: cfg.RedisPrefix, Consumers: consumers}, log.With("component", "events"))
		defer func() {
			ectx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			em.Close(ectx)
		}()
		w.EmitTo(em)
	}
	queue := events.Queue(cfg.RedisPrefix, "presence")
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   map[string]int{queue: 1},
		TaskCheckInterval:        cfg.PollInterval,
		DelayedTaskCheckInterval: time.Second, // detach tasks wait out the grace in the scheduled set
		ShutdownTimeout:          cfg.ShutdownTimeout,
		RetryDelayFunc:           events.RetryBackoff(100*time.Millisecond, 30*time.Second),
		Logger:                   observability.AsynqLogger(log.With("component", "asynq")),
		LogLevel:                 asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Use(observability.TaskOutcomes(reg, "presence"))
	w.Register(mux)
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("asynq: %w", err)
	}

	registerMetrics(reg, w, rdb, queue)
	registerMembers(reg, rdb, membersKey)
	observability.QueueDepths(reg, rdb, map[string]string{"presence": queue})
	hmux := http.NewServeMux()
	observability.Mount(hmux, reg,
		observability.Check{Name: "redis", Func: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
		observability.Check{Name: "amqp", Func: func(context.Context) error {
			if !bus.Ready() {
				return errors.New("not connected")
			}
			return nil
		}},
	)
	hs, err := service.ListenHTTP(log, cfg.Addr, hmux, 10*time.Second)
	if err != nil {
		srv.Shutdown()
		return err
	}

	sweepCtx, stopSweep := context.WithCancel(ctx)
	defer stopSweep()
	go w.RunSweeper(sweepCtx, cfg.SweepInterval)

	hs.Announce(log, onListen, "queue", queue)
	if err := hs.Wait(ctx); err != nil {
		srv.Shutdown()
		return err
	}
	log.Info("stopping", "timeout", cfg.ShutdownTimeout.String())
	stopSweep()
	srv.Shutdown() // waits up to ShutdownTimeout for tasks in progress
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	log.Info("stopped")
	return nil
}
