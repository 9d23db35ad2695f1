// Package config is the presence service's configuration, read from the
// environment, with the documented default in each envDefault tag.
package config

import (
	"fmt"
	"strings"
	"time"

	pkgconfig "github.com/roomcast/roomcast/pkg/config"
	"github.com/roomcast/roomcast/pkg/events"
)

// Config is the presence service configuration.
type Config struct {
	pkgconfig.Common
	// RoomLog must match the gateways': presence events go into the room
	// logs of the rooms' presence channels.
	pkgconfig.RoomLog

	// Addr serves /healthz, /readyz and /metrics. Port 0 picks a free port;
	// the chosen address is logged as "listening".
	Addr string `env:"PRESENCE_ADDR" envDefault:":8082"`
	// Concurrency is how many tasks one process works on at once.
	Concurrency int `env:"PRESENCE_CONCURRENCY" envDefault:"50"`
	// PollInterval is how often an idle worker checks its queue. asynq's
	// own default (1s) would add up to a second to every presence event.
	PollInterval time.Duration `env:"PRESENCE_POLL_INTERVAL" envDefault:"10ms"`
	// SweepInterval is how often one worker of the cluster looks for
	// gateways whose lease ran out and makes their members leave. Members
	// of a crashed gateway leave within GATEWAY_PRESENCE_NODE_TTL plus
	// this interval.
	SweepInterval time.Duration `env:"PRESENCE_SWEEP_INTERVAL" envDefault:"5s"`
	// TombstoneTTL is how long a leave is remembered so that a change made
	// before it but delivered after it is ignored; it must exceed the
	// longest a task can wait in the queue.
	TombstoneTTL time.Duration `env:"PRESENCE_TOMBSTONE_TTL" envDefault:"10m"`
	// PublishTimeout bounds publishing one event to RabbitMQ; a failure
	// retries the task, which publishes the same event again.
	PublishTimeout time.Duration `env:"PRESENCE_PUBLISH_TIMEOUT" envDefault:"5s"`
	// ShutdownTimeout bounds a graceful stop on SIGTERM: tasks in progress
	// get this long to finish; unfinished ones return to the queue.
	ShutdownTimeout time.Duration `env:"PRESENCE_SHUTDOWN_TIMEOUT" envDefault:"10s"`
	// EventConsumers lists the worker services this service enqueues the
	// presence events it publishes for (comma-separated; "webhooks" is the
	// one that takes them). Empty: none.
	EventConsumers string `env:"PRESENCE_EVENT_CONSUMERS"`
}

// Consumers parses PRESENCE_EVENT_CONSUMERS.
func (c *Config) Consumers() ([]string, error) {
	var out []string
	for _, f := range strings.Split(c.EventConsumers, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if _, ok := events.Consumers[f]; !ok {
			return nil, fmt.Errorf("config: PRESENCE_EVENT_CONSUMERS: unknown consumer %q", f)
		}
		out = append(out, f)
	}
	return out, nil
}

// Load reads the configuration from the environment and validates it.
func Load() (*Config, error) { return pkgconfig.LoadValid[Config]() }

// Validate checks ranges and fills derived defaults.
func (c *Config) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	if c.Concurrency < 1 {
		return fmt.Errorf("config: PRESENCE_CONCURRENCY must be at least 1, got %d", c.Concurrency)
	}
	for name, d := range map[string]time.Duration{
		"PRESENCE_POLL_INTERVAL":    c.PollInterval,
		"PRESENCE_SWEEP_INTERVAL":   c.SweepInterval,
		"PRESENCE_TOMBSTONE_TTL":    c.TombstoneTTL,
		"PRESENCE_PUBLISH_TIMEOUT":  c.PublishTimeout,
		"PRESENCE_SHUTDOWN_TIMEOUT": c.ShutdownTimeout,
	} {
		if d <= 0 {
			return fmt.Errorf("config: %s must be positive, got %s", name, d)
		}
	}
	if _, err := c.ParseStreamRules(); err != nil {
		return err
	}
	if _, err := c.Consumers(); err != nil {
		return err
	}
	return nil
}
