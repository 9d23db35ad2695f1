// Package config is the metrics service's configuration, read from the
// environment, with the documented default in each envDefault tag.
package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	pkgconfig "github.com/roomcast/roomcast/pkg/config"
)

// Config is the metrics service configuration.
type Config struct {
	pkgconfig.Common

	// Addr serves the usage API (/v1/apps/...), /healthz, /readyz and
	// /metrics. Port 0 picks a free port; the chosen address is logged as
	// "listening".
	Addr string `env:"METRICS_ADDR" envDefault:":8085"`
	// DatabaseURL locates the PostgreSQL database of the usage buckets; the
	// schema is migrated at start.
	DatabaseURL string `env:"METRICS_DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/roomcast?sslmode=disable"`
	// Keys, AuthURL and ServiceToken are how the usage API verifies API
	// keys, like the gateway's REST API: the static keys of ROOMCAST_KEYS,
	// and with ROOMCAST_AUTH_URL the auth service's keys from its internal
	// key feed (authenticated with ROOMCAST_SERVICE_TOKEN), refreshed every
	// METRICS_KEYS_REFRESH and at once when an unknown key id is presented.
	Keys         string        `env:"ROOMCAST_KEYS"`
	AuthURL      string        `env:"ROOMCAST_AUTH_URL"`
	ServiceToken string        `env:"ROOMCAST_SERVICE_TOKEN"`
	KeysRefresh  time.Duration `env:"METRICS_KEYS_REFRESH" envDefault:"5s"`
	// Concurrency is how many tasks one process works on at once.
	Concurrency int `env:"METRICS_CONCURRENCY" envDefault:"20"`
	// PollInterval is how often an idle worker checks its queue.
	PollInterval time.Duration `env:"METRICS_POLL_INTERVAL" envDefault:"50ms"`
	// DedupeWindow is how long the ids of processed tasks are kept, so that
	// a task delivered again (asynq delivers at least once) is not counted
	// twice. It must exceed the longest a task can wait for its retries.
	DedupeWindow time.Duration `env:"METRICS_DEDUPE_WINDOW" envDefault:"24h"`
	// SweepInterval is how often the service looks for gateways whose
	// lease ran out (killed, or cut off) and takes their connections off
	// the current values: they never send connection.closed.
	SweepInterval time.Duration `env:"METRICS_SWEEP_INTERVAL" envDefault:"5s"`
	// MaxBuckets caps the buckets one stats query may return.
	MaxBuckets int `env:"METRICS_MAX_BUCKETS" envDefault:"1500"`
	// ShutdownTimeout bounds a graceful stop on SIGTERM: tasks in progress
	// get this long to finish; unfinished ones return to the queue.
	ShutdownTimeout time.Duration `env:"METRICS_SHUTDOWN_TIMEOUT" envDefault:"10s"`
}

// Load reads the configuration from the environment and validates it.
func Load() (*Config, error) { return pkgconfig.LoadValid[Config]() }

// Validate checks ranges.
func (c *Config) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	if c.DatabaseURL == "" {
		return errors.New("config: METRICS_DATABASE_URL is empty")
	}
	if _, err := c.ParseKeys(); err != nil {
		return err
	}
	if c.AuthURL != "" && c.ServiceToken == "" {
		return errors.New("config: ROOMCAST_AUTH_URL needs ROOMCAST_SERVICE_TOKEN (the key feed carries secrets)")
	}
	for name, n := range map[string]int{"METRICS_CONCURRENCY": c.Concurrency, "METRICS_MAX_BUCKETS": c.MaxBuckets} {
		if n < 1 {
			return fmt.Errorf("config: %s must be at least 1, got %d", name, n)
		}
	}
	for name, d := range map[string]time.Duration{
		"METRICS_KEYS_REFRESH":     c.KeysRefresh,
		"METRICS_POLL_INTERVAL":    c.PollInterval,
		"METRICS_DEDUPE_WINDOW":    c.DedupeWindow,
		"METRICS_SWEEP_INTERVAL":   c.SweepInterval,
		"METRICS_SHUTDOWN_TIMEOUT": c.ShutdownTimeout,
	} {
		if d <= 0 {
			return fmt.Errorf("config: %s must be positive, got %s", name, d)
		}
	}
	return nil
}

// ParseKeys parses ROOMCAST_KEYS.
func (c *Config) ParseKeys() ([]token.Key, error) {
	if c.Keys == "" {
		return nil, nil
	}
	keys, err := token.ParseKeyList(c.Keys)
	if err != nil {
		// The list holds secrets: never quote it.
		return nil, fmt.Errorf("config: ROOMCAST_KEYS: %w", err)
	}
	return keys, nil
}
