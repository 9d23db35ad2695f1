package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/clientip"
	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/observability"
	"github.com/roomcast/roomcast/pkg/seal"
	"github.com/roomcast/roomcast/services/auth/config"
	"github.com/roomcast/roomcast/services/auth/internal/accounts"
	"github.com/roomcast/roomcast/services/auth/internal/mail"
	"github.com/roomcast/roomcast/services/auth/internal/online"
	"github.com/roomcast/roomcast/services/auth/internal/store"
)

// usersPart is the wiring of end-user accounts.
type usersPart struct {
	accounts *accounts.Service
	online   *online.Tracker
	proxies  []netip.Prefix
	// stop sends the mails still queued and stops the events consumer.
	stop func()
}

// users wires end-user accounts: the mail sender (asynchronous, so no
// answer waits for the mail server), the accounts logic, and the "users"
// events consumer that records who is online.
func users(cfg *config.Config, st *store.Store, rdb *redis.Client, sealer *seal.Sealer, reg *prometheus.Registry, log *slog.Logger) (*usersPart, error) {
	limits, err := cfg.UserLimits()
	if err != nil {
		return nil, err
	}
	proxies, err := clientip.Parse(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	var sender mail.Sender = mail.Log{Logger: log.With("component", "mail")}
	if cfg.Mail == "smtp" {
		s, err := mail.NewSMTP(cfg.SMTPURL, cfg.MailFrom)
		if err != nil {
			return nil, err
		}
		sender = s
	}
	async := mail.NewAsync(sender, log.With("component", "mail"), 4, 1000)
	acc := accounts.New(st, rdb, sealer, async, accounts.Config{
		CodeTTL: cfg.UserCodeTTL, CodeAttempts: cfg.UserCodeAttempts, MFATokenTTL: cfg.UserMFATokenTTL,
		MailLink: cfg.MailLink, Limits: limits, Prefix: cfg.RedisPrefix,
	}, log.With("component", "accounts"))
	tracker := online.New(rdb, cfg.RedisPrefix, accounts.IsUserID)
	pruneCtx, stopPrune := context.WithCancel(context.Background())
	go pruneUsers(pruneCtx, st, log)
	part := &usersPart{accounts: acc, online: tracker, proxies: proxies, stop: func() { stopPrune(); async.Close() }}
	if !cfg.UserOnline {
		return part, nil
	}
	queue := events.Queue(cfg.RedisPrefix, online.Consumer)
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:     4,
		Queues:          map[string]int{queue: 1},
		ShutdownTimeout: cfg.ShutdownTimeout,
		RetryDelayFunc:  events.RetryBackoff(200*time.Millisecond, time.Minute),
		Logger:          observability.AsynqLogger(log.With("component", "asynq")),
		LogLevel:        asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Use(observability.TaskOutcomes(reg, online.Consumer))
	tracker.Register(mux)
	if err := srv.Start(mux); err != nil {
		part.stop()
		return nil, fmt.Errorf("asynq: %w", err)
	}
	observability.QueueDepths(reg, rdb, map[string]string{online.Consumer: queue})
	stopRest := part.stop
	part.stop = func() {
		srv.Shutdown()
		stopRest()
	}
	return part, nil
}

// Pruning of end-user rows that no longer matter (store.PruneUsers):
// sessions are kept a while after they end, for support questions.
const (
	pruneEvery       = 10 * time.Minute
	pruneSessionKeep = 30 * 24 * time.Hour
)

// pruneUsers runs store.PruneUsers every pruneEvery until ctx ends. Every
// replica may run it: the deletes are idempotent.
func pruneUsers(ctx context.Context, st *store.Store, log *slog.Logger) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := st.PruneUsers(ctx, pruneSessionKeep); err != nil {
			log.Warn("pruning end-user rows failed; will retry", "err", err)
		} else if n > 0 {
			log.Info("pruned end-user rows", "rows", n)
		}
	}
}
