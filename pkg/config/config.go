// Package config loads service configuration from environment variables.
//
// Every service declares a struct with `env` tags and `envDefault` values
// (github.com/caarlos0/env); the defaults there are the documented ones and
// docs/operations.md is checked against them. Common holds what every service
// shares.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/roomcast/roomcast/pkg/roomlog"
)

// Common is the configuration every Roomcast service shares.
type Common struct {
	// RedisURL locates Redis (sessions, offsets, recovery streams, presence).
	RedisURL string `env:"ROOMCAST_REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	// RedisPrefix starts every Redis key the platform writes, so several
	// clusters (or tests) can share one Redis.
	RedisPrefix string `env:"ROOMCAST_REDIS_PREFIX" envDefault:"rc:"`
	// AMQPURL locates RabbitMQ (room traffic). The vhost is part of the URL.
	AMQPURL string `env:"ROOMCAST_AMQP_URL" envDefault:"amqp://guest:guest@127.0.0.1:5672/"`
	// Shards is the number of room shards; fixed for the life of a cluster
	// (changing it re-shards every room).
	Shards int `env:"ROOMCAST_SHARDS" envDefault:"256"`
	// NodeID names this process in logs, queues and metrics. Empty means the
	// hostname plus a random suffix, so restarted processes never collide.
	NodeID string `env:"ROOMCAST_NODE_ID"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"ROOMCAST_LOG_LEVEL" envDefault:"info"`
	// LogFormat is json or text.
	LogFormat string `env:"ROOMCAST_LOG_FORMAT" envDefault:"json"`
}

// Logging returns the log format and level (pkg/service.Config).
func (c *Common) Logging() (format, level string) { return c.LogFormat, c.LogLevel }

// Load fills cfg (a pointer to a struct with env tags) from the environment.
func Load(cfg any) error {
	if err := env.Parse(cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// LoadValid reads a service's configuration (a struct C with env tags whose
// pointer has Validate) from the environment and validates it.
func LoadValid[C any, P interface {
	*C
	Validate() error
}]() (*C, error) {
	var c C
	if err := Load(&c); err != nil {
		return nil, err
	}
	if err := P(&c).Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the common fields and fills in derived defaults.
func (c *Common) Validate() error {
	if c.Shards < 1 {
		return fmt.Errorf("config: ROOMCAST_SHARDS must be at least 1, got %d", c.Shards)
	}
	if c.NodeID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "node"
		}
		var b [3]byte
		_, _ = rand.Read(b[:])
		c.NodeID = host + "-" + hex.EncodeToString(b[:])
	}
	return nil
}

// RoomLog is the configuration of the room logs in Redis (offsets and
// recovery streams), which every service that appends to them — gateways,
// and the presence service for presence events — must share.
type RoomLog struct {
	// StreamSize, StreamTTL (the recovery window) and MetaTTL size each
	// room's recovery state in Redis; IdempotencyTTL is the dedupe window.
	StreamSize     int           `env:"ROOMCAST_STREAM_SIZE" envDefault:"1000"`
	StreamTTL      time.Duration `env:"ROOMCAST_STREAM_TTL" envDefault:"2m"`
	MetaTTL        time.Duration `env:"ROOMCAST_META_TTL" envDefault:"24h"`
	IdempotencyTTL time.Duration `env:"ROOMCAST_IDEMPOTENCY_TTL" envDefault:"2m"`
	// StreamRules override StreamSize and StreamTTL per app or room
	// pattern: a JSON array, first match wins, e.g.
	// [{"app":"demo","room":"chat.*","size":5000,"ttl":"10m"}]. "app" ""
	// or absent means any app; "room" uses '*' wildcards.
	StreamRules string `env:"ROOMCAST_STREAM_RULES"`
}

// LogConfig is the roomlog configuration for a cluster's Redis prefix.
func (c *RoomLog) LogConfig(prefix string) (roomlog.Config, error) {
	rules, err := c.ParseStreamRules()
	if err != nil {
		return roomlog.Config{}, err
	}
	return roomlog.Config{
		Rules:          rules,
		Prefix:         prefix,
		StreamSize:     c.StreamSize,
		StreamTTL:      c.StreamTTL,
		MetaTTL:        c.MetaTTL,
		IdempotencyTTL: c.IdempotencyTTL,
	}, nil
}

// streamRule is one element of ROOMCAST_STREAM_RULES.
type streamRule struct {
	App  string `json:"app"`
	Room string `json:"room"`
	Size int    `json:"size"`
	TTL  string `json:"ttl"`
}

// ParseStreamRules parses ROOMCAST_STREAM_RULES.
func (c *RoomLog) ParseStreamRules() ([]roomlog.Rule, error) {
	if strings.TrimSpace(c.StreamRules) == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(c.StreamRules))
	dec.DisallowUnknownFields()
	var raw []streamRule
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("config: ROOMCAST_STREAM_RULES: %w", err)
	}
	rules := make([]roomlog.Rule, 0, len(raw))
	for i, r := range raw {
		rule := roomlog.Rule{App: r.App, RoomPattern: r.Room, StreamSize: r.Size}
		if r.Size < 0 {
			return nil, fmt.Errorf("config: ROOMCAST_STREAM_RULES[%d]: size must not be negative", i)
		}
		if r.TTL != "" {
			d, err := time.ParseDuration(r.TTL)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("config: ROOMCAST_STREAM_RULES[%d]: ttl %q is not a positive duration", i, r.TTL)
			}
			rule.StreamTTL = d
		}
		rules = append(rules, rule)
	}
	return rules, nil
}
