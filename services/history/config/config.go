// Package config is the history service's configuration, read from the
// environment, with the documented default in each envDefault tag.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	pkgconfig "github.com/roomcast/roomcast/pkg/config"
)

// MaxRetention is the longest retention an app may have.
const MaxRetention = 30 * 24 * time.Hour

// MinServiceTokenBytes is the shortest accepted ROOMCAST_SERVICE_TOKEN.
const MinServiceTokenBytes = 16

// Config is the history service configuration.
type Config struct {
	pkgconfig.Common

	// Addr serves the internal read API (/internal/v1/..., for gateways),
	// /healthz, /readyz and /metrics. Port 0 picks a free port; the chosen
	// address is logged as "listening".
	Addr string `env:"HISTORY_ADDR" envDefault:":8083"`
	// DatabaseURL locates the PostgreSQL database of the archive; the
	// schema is migrated at start.
	DatabaseURL string `env:"HISTORY_DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/roomcast?sslmode=disable"`
	// ServiceToken guards the internal read API: gateways send it as a
	// bearer token. Empty refuses every read.
	ServiceToken string `env:"ROOMCAST_SERVICE_TOKEN"`
	// Retention is how long an app's messages are kept, unless a rule of
	// RetentionRules names the app. At most 720h (30 days).
	Retention time.Duration `env:"HISTORY_RETENTION" envDefault:"24h"`
	// RetentionRules override Retention per app: a JSON array, e.g.
	// [{"app":"demo","retention":"720h"}]. A message's expiry is fixed when
	// it is archived: a change applies to messages archived after it.
	RetentionRules string `env:"HISTORY_RETENTION_RULES"`
	// RetentionInterval is how often one replica of the cluster (whichever
	// takes the Redis lock) deletes expired messages.
	RetentionInterval time.Duration `env:"HISTORY_RETENTION_INTERVAL" envDefault:"1m"`
	// RetentionBatch is how many rows one DELETE removes; a sweep repeats
	// it until fewer are left.
	RetentionBatch int `env:"HISTORY_RETENTION_BATCH" envDefault:"5000"`
	// Concurrency is how many batches one process writes at once.
	Concurrency int `env:"HISTORY_CONCURRENCY" envDefault:"8"`
	// BatchSize is the most messages one batch (one INSERT) holds.
	BatchSize int `env:"HISTORY_BATCH_SIZE" envDefault:"1000"`
	// BatchWait is how long a batch waits for more messages once none
	// arrive (asynq's group grace period, at least 1s); BatchMaxWait bounds
	// how long the first message of a batch waits.
	BatchWait    time.Duration `env:"HISTORY_BATCH_WAIT" envDefault:"1s"`
	BatchMaxWait time.Duration `env:"HISTORY_BATCH_MAX_WAIT" envDefault:"2s"`
	// PollInterval is how often an idle worker checks its queue.
	PollInterval time.Duration `env:"HISTORY_POLL_INTERVAL" envDefault:"50ms"`
	// ShutdownTimeout bounds a graceful stop on SIGTERM: batches in progress
	// get this long to finish; unfinished ones return to the queue.
	ShutdownTimeout time.Duration `env:"HISTORY_SHUTDOWN_TIMEOUT" envDefault:"10s"`

	rules map[string]time.Duration
}

// Load reads the configuration from the environment and validates it.
func Load() (*Config, error) { return pkgconfig.LoadValid[Config]() }

// Validate checks ranges and parses the retention rules.
func (c *Config) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	if c.DatabaseURL == "" {
		return errors.New("config: HISTORY_DATABASE_URL is empty")
	}
	if c.ServiceToken != "" && len(c.ServiceToken) < MinServiceTokenBytes {
		return fmt.Errorf("config: ROOMCAST_SERVICE_TOKEN must be at least %d characters", MinServiceTokenBytes)
	}
	if c.Retention <= 0 || c.Retention > MaxRetention {
		return fmt.Errorf("config: HISTORY_RETENTION must be from 1s to %s, got %s", MaxRetention, c.Retention)
	}
	for name, n := range map[string]int{"HISTORY_RETENTION_BATCH": c.RetentionBatch, "HISTORY_CONCURRENCY": c.Concurrency, "HISTORY_BATCH_SIZE": c.BatchSize} {
		if n < 1 {
			return fmt.Errorf("config: %s must be at least 1, got %d", name, n)
		}
	}
	if c.BatchWait < time.Second {
		return fmt.Errorf("config: HISTORY_BATCH_WAIT must be at least 1s (asynq's minimum), got %s", c.BatchWait)
	}
	for name, d := range map[string]time.Duration{
		"HISTORY_BATCH_MAX_WAIT":     c.BatchMaxWait,
		"HISTORY_RETENTION_INTERVAL": c.RetentionInterval,
		"HISTORY_POLL_INTERVAL":      c.PollInterval,
		"HISTORY_SHUTDOWN_TIMEOUT":   c.ShutdownTimeout,
	} {
		if d <= 0 {
			return fmt.Errorf("config: %s must be positive, got %s", name, d)
		}
	}
	rules, err := parseRules(c.RetentionRules)
	if err != nil {
		return err
	}
	c.rules = rules
	return nil
}

// RetentionFor is an app's retention.
func (c *Config) RetentionFor(app string) time.Duration {
	if d, ok := c.rules[app]; ok {
		return d
	}
	return c.Retention
}

func parseRules(s string) (map[string]time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var raw []struct {
		App       string `json:"app"`
		Retention string `json:"retention"`
	}
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("config: HISTORY_RETENTION_RULES: %w", err)
	}
	out := make(map[string]time.Duration, len(raw))
	for i, r := range raw {
		d, err := time.ParseDuration(r.Retention)
		switch {
		case r.App == "":
			return nil, fmt.Errorf("config: HISTORY_RETENTION_RULES[%d]: app is empty", i)
		case err != nil || d <= 0 || d > MaxRetention:
			return nil, fmt.Errorf("config: HISTORY_RETENTION_RULES[%d]: retention %q must be a duration from 1s to %s", i, r.Retention, MaxRetention)
		}
		if _, dup := out[r.App]; dup {
			return nil, fmt.Errorf("config: HISTORY_RETENTION_RULES[%d]: app %q listed twice", i, r.App)
		}
		out[r.App] = d
	}
	return out, nil
}
