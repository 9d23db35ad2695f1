// Package app wires the auth service from its configuration: PostgreSQL
// (migrated on start), the sealer, the store, the HTTP API, health and
// metrics. The auth binary and `roomcast run` both start it through Run.
package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/observability"
	"github.com/roomcast/roomcast/pkg/seal"
	"github.com/roomcast/roomcast/pkg/service"
	"github.com/roomcast/roomcast/services/auth/config"
	"github.com/roomcast/roomcast/services/auth/internal/abuse"
	"github.com/roomcast/roomcast/services/auth/internal/api"
	"github.com/roomcast/roomcast/services/auth/internal/migrations"
	"github.com/roomcast/roomcast/services/auth/internal/oauthlogin"
	"github.com/roomcast/roomcast/services/auth/internal/store"
)

// Run serves until ctx is cancelled, then shuts down within
// cfg.ShutdownTimeout. onListen, if set, is called with the bound address
// once the service accepts requests.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, onListen func(addr net.Addr)) error {
	log = log.With("service", "auth")
	master, err := cfg.ParseMasterKey()
	if err != nil {
		return err
	}
	sealer, err := seal.New(master)
	if err != nil {
		return err
	}

	pool, err := migrations.Open(ctx, "AUTH_DATABASE_URL", cfg.DatabaseURL, 0, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool, sealer)
	if _, err := st.RotateSigningKeyIfOlder(ctx, cfg.SigningKeyRotation, cfg.SigningKeyOverlap); err != nil {
		return err
	}

	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return errors.New("ROOMCAST_REDIS_URL: not a valid Redis URL")
	}
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	channel := authapi.NotifyChannel(cfg.RedisPrefix)
	notify := func() {
		// Gateways also poll, so a lost notification only delays them.
		go func() {
			nctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := rdb.Publish(nctx, channel, "changed").Err(); err != nil {
				log.Warn("key change notification failed; gateways will notice by polling", "err", err)
			}
		}()
	}

	reg := observability.NewRegistry()
	rdb.AddHook(observability.RedisErrors(reg))
	up, err := users(cfg, st, rdb, sealer, reg, log)
	if err != nil {
		return err
	}
	defer up.stop()
	oauthLimit, err := abuse.ParseRate(cfg.OAuthLimitIP)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	api.New(api.Config{
		Store:        st,
		AdminToken:   cfg.AdminToken,
		ServiceToken: cfg.ServiceToken,
		Notify:       notify,
		Log:          log,
		Registry:     reg,

		TokenDefaultTTL:   cfg.TokenDefaultTTL,
		TokenMaxTTL:       cfg.TokenMaxTTL,
		SigningKeyOverlap: cfg.SigningKeyOverlap,

		OAuth: oauthlogin.New(oauthlogin.Config{
			Redis: rdb, Prefix: cfg.RedisPrefix, StateTTL: cfg.OAuthStateTTL, Log: log,
			Providers: api.OAuthStore{Store: st}, Policies: api.OAuthStore{Store: st},
		}),
		PublicURL:    cfg.PublicURL,
		OAuthLimiter: abuse.New(rdb, cfg.RedisPrefix),
		OAuthLimitIP: oauthLimit,

		Accounts:       up.accounts,
		Online:         up.online,
		TrustedProxies: up.proxies,
	}).Mount(mux)
	// Redis holds the end-user flows' limits, MFA and OAuth state: without
	// it they answer 503, so the service is not ready.
	observability.Mount(mux, reg,
		observability.Check{Name: "postgres", Func: st.Ping},
		observability.RedisCheck(rdb),
	)
	origins, err := cfg.ParseCORSOrigins()
	if err != nil {
		return err
	}

	go rotateSigningKeys(ctx, st, cfg, log, notify)

	hs, err := service.ListenHTTP(log, cfg.Addr, api.CORS(mux, origins), 10*time.Second)
	if err != nil {
		return err
	}
	hs.Announce(log, onListen)
	if err := hs.Wait(ctx); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("shutdown: requests still running at the deadline", "err", err)
	}
	log.Info("stopped")
	return nil
}

// rotateSigningKeys replaces the active signing key once it is older than
// AUTH_SIGNING_KEY_ROTATION, checking every minute; the database lock makes
// one instance do it.
func rotateSigningKeys(ctx context.Context, st *store.Store, cfg *config.Config, log *slog.Logger, notify func()) {
	if cfg.SigningKeyRotation <= 0 {
		return
	}
	t := time.NewTicker(min(time.Minute, cfg.SigningKeyRotation))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rotated, err := st.RotateSigningKeyIfOlder(ctx, cfg.SigningKeyRotation, cfg.SigningKeyOverlap)
		switch {
		case err != nil:
			log.Warn("signing key rotation failed; will retry", "err", err)
		case rotated:
			log.Info("signing key rotated", "overlap", cfg.SigningKeyOverlap.String())
			notify()
		}
	}
}
