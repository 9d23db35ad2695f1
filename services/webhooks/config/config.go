// Package config is the webhooks service's configuration, read from the
// environment, with the documented default in each envDefault tag
// (docs/operations.md lists them; a test keeps the two in step).
package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	pkgconfig "github.com/roomcast/roomcast/pkg/config"
)

// Config is the webhooks service configuration.
type Config struct {
	// Addr serves the management API, health and metrics. Port 0 picks a
	// free port; the chosen address is logged as "listening".
	Addr string `env:"WEBHOOKS_ADDR" envDefault:":8084"`
	// DatabaseURL locates PostgreSQL (endpoints, deliveries, the log).
	DatabaseURL string `env:"WEBHOOKS_DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/roomcast?sslmode=disable"`
	// MasterKey encrypts endpoint signing secrets at rest (AES-256-GCM): 32
	// bytes as 64 hex characters or base64. Required.
	MasterKey string `env:"WEBHOOKS_MASTER_KEY"`

	// Keys, AuthURL and ServiceToken are how API keys are verified: the
	// static keys of ROOMCAST_KEYS, and the auth service's keys from its
	// internal key feed (GET /internal/v1/keys), as gateways do.
	Keys         string        `env:"ROOMCAST_KEYS"`
	AuthURL      string        `env:"ROOMCAST_AUTH_URL"`
	ServiceToken string        `env:"ROOMCAST_SERVICE_TOKEN"`
	KeysRefresh  time.Duration `env:"WEBHOOKS_KEYS_REFRESH" envDefault:"5s"`

	// AllowPrivate lets endpoints resolve to loopback, private, link-local
	// and metadata addresses: for local development only.
	AllowPrivate bool `env:"WEBHOOKS_ALLOW_PRIVATE" envDefault:"false"`

	// Concurrency is how many incoming events one process turns into
	// deliveries at once; PollInterval how often an idle one checks.
	Concurrency  int           `env:"WEBHOOKS_CONCURRENCY" envDefault:"20"`
	PollInterval time.Duration `env:"WEBHOOKS_POLL_INTERVAL" envDefault:"10ms"`

	// Senders bounds the requests one process has in flight;
	// EndpointConcurrency those to one endpoint (per process).
	Senders             int `env:"WEBHOOKS_SENDERS" envDefault:"64"`
	EndpointConcurrency int `env:"WEBHOOKS_ENDPOINT_CONCURRENCY" envDefault:"4"`
	// DispatchInterval is how often a process looks for due deliveries
	// (new ones made by this process are sent at once).
	DispatchInterval time.Duration `env:"WEBHOOKS_DISPATCH_INTERVAL" envDefault:"250ms"`
	// Timeout bounds one request, connection and response included.
	Timeout time.Duration `env:"WEBHOOKS_TIMEOUT" envDefault:"10s"`
	// RetryMin and RetryMax bound the exponential backoff between attempts
	// (with jitter; a Retry-After answer is honoured up to RetryMax);
	// RetryHorizon is how long a delivery is retried before it is dead.
	RetryMin     time.Duration `env:"WEBHOOKS_RETRY_MIN" envDefault:"5s"`
	RetryMax     time.Duration `env:"WEBHOOKS_RETRY_MAX" envDefault:"1h"`
	RetryHorizon time.Duration `env:"WEBHOOKS_RETRY_HORIZON" envDefault:"24h"`
	// SecretOverlap is how long a rotated-out secret keeps signing when
	// the rotate request names no overlap.
	SecretOverlap time.Duration `env:"WEBHOOKS_SECRET_OVERLAP" envDefault:"24h"`
	// LogRetention is how long finished deliveries (and their attempts)
	// are kept.
	LogRetention time.Duration `env:"WEBHOOKS_LOG_RETENTION" envDefault:"168h"`
	// SweepInterval is how often one process of the cluster ends the room
	// memberships of gateways whose presence lease ran out (room.vacated
	// for rooms they leave empty).
	SweepInterval time.Duration `env:"WEBHOOKS_SWEEP_INTERVAL" envDefault:"5s"`
	// ShutdownTimeout bounds a graceful stop on SIGTERM.
	ShutdownTimeout time.Duration `env:"WEBHOOKS_SHUTDOWN_TIMEOUT" envDefault:"10s"`

	RedisURL    string `env:"ROOMCAST_REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	RedisPrefix string `env:"ROOMCAST_REDIS_PREFIX" envDefault:"rc:"`
	NodeID      string `env:"ROOMCAST_NODE_ID"`
	LogLevel    string `env:"ROOMCAST_LOG_LEVEL" envDefault:"info"`
	LogFormat   string `env:"ROOMCAST_LOG_FORMAT" envDefault:"json"`
}

// Load reads the configuration from the environment and validates it.
func Load() (*Config, error) { return pkgconfig.LoadValid[Config]() }

// Logging returns the log format and level (pkg/service.Config).
func (c *Config) Logging() (format, level string) { return c.LogFormat, c.LogLevel }

// Validate checks the configuration. Errors never quote a secret.
func (c *Config) Validate() error {
	if _, err := c.ParseMasterKey(); err != nil {
		return err
	}
	if _, err := c.ParseKeys(); err != nil {
		return err
	}
	if c.Keys == "" && c.AuthURL == "" {
		return errors.New("config: set ROOMCAST_KEYS or ROOMCAST_AUTH_URL: the API verifies API keys with them")
	}
	if c.AuthURL != "" && c.ServiceToken == "" {
		return errors.New("config: ROOMCAST_AUTH_URL needs ROOMCAST_SERVICE_TOKEN (the key feed carries secrets)")
	}
	for name, n := range map[string]int{"WEBHOOKS_CONCURRENCY": c.Concurrency, "WEBHOOKS_SENDERS": c.Senders, "WEBHOOKS_ENDPOINT_CONCURRENCY": c.EndpointConcurrency} {
		if n < 1 {
			return fmt.Errorf("config: %s must be at least 1, got %d", name, n)
		}
	}
	for name, d := range map[string]time.Duration{
		"WEBHOOKS_KEYS_REFRESH": c.KeysRefresh, "WEBHOOKS_POLL_INTERVAL": c.PollInterval,
		"WEBHOOKS_DISPATCH_INTERVAL": c.DispatchInterval, "WEBHOOKS_TIMEOUT": c.Timeout,
		"WEBHOOKS_RETRY_MIN": c.RetryMin, "WEBHOOKS_RETRY_MAX": c.RetryMax, "WEBHOOKS_RETRY_HORIZON": c.RetryHorizon,
		"WEBHOOKS_LOG_RETENTION": c.LogRetention, "WEBHOOKS_SWEEP_INTERVAL": c.SweepInterval,
		"WEBHOOKS_SHUTDOWN_TIMEOUT": c.ShutdownTimeout,
	} {
		if d <= 0 {
			return fmt.Errorf("config: %s must be positive, got %s", name, d)
		}
	}
	if c.SecretOverlap < 0 {
		return errors.New("config: WEBHOOKS_SECRET_OVERLAP must not be negative")
	}
	if c.RetryMax < c.RetryMin {
		return errors.New("config: WEBHOOKS_RETRY_MAX must be at least WEBHOOKS_RETRY_MIN")
	}
	if c.NodeID == "" {
		var cm pkgconfig.Common
		cm.Shards = 1
		if err := cm.Validate(); err == nil {
			c.NodeID = cm.NodeID
		}
	}
	return nil
}

// ParseMasterKey decodes WEBHOOKS_MASTER_KEY (hex or base64, 32 bytes).
func (c *Config) ParseMasterKey() ([]byte, error) {
	s := strings.TrimSpace(c.MasterKey)
	if s == "" {
		return nil, errors.New("config: WEBHOOKS_MASTER_KEY is required (32 bytes, hex or base64)")
	}
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	return nil, errors.New("config: WEBHOOKS_MASTER_KEY must be 32 bytes, as 64 hex characters or base64")
}

// ParseKeys parses ROOMCAST_KEYS.
func (c *Config) ParseKeys() ([]token.Key, error) {
	if c.Keys == "" {
		return nil, nil
	}
	keys, err := token.ParseKeyList(c.Keys)
	if err != nil {
		return nil, fmt.Errorf("config: ROOMCAST_KEYS: %w", err)
	}
	return keys, nil
}
