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
	"fmt"
	"os"

	"github.com/caarlos0/env/v11"
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

// Load fills cfg (a pointer to a struct with env tags) from the environment.
func Load(cfg any) error {
	if err := env.Parse(cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
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
