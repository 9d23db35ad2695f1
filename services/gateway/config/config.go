// Package config is the gateway's configuration: every limit and knob, read
// from the environment, with the documented default in its envDefault tag.
package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/roomcast/roomcast/pkg/clientip"

	"github.com/roomcast/roomcast/pkg/auth/token"
	pkgconfig "github.com/roomcast/roomcast/pkg/config"
	"github.com/roomcast/roomcast/pkg/events"
)

// Config is the gateway configuration.
type Config struct {
	pkgconfig.Common
	pkgconfig.RoomLog

	// Addr is the listen address for WebSocket, REST, health and metrics.
	// Port 0 picks a free port; the chosen address is logged as "listening".
	Addr string `env:"GATEWAY_ADDR" envDefault:":8080"`
	// Keys are the API keys ("<app>.<keyId>:<secret>", comma-separated)
	// whose secrets verify HS256 tokens. Secrets never appear in logs.
	Keys string `env:"ROOMCAST_KEYS"`
	// TokenLeeway is the clock skew allowed when checking exp and nbf.
	TokenLeeway time.Duration `env:"GATEWAY_TOKEN_LEEWAY" envDefault:"5s"`
	// AuthURL is the auth service (empty: ROOMCAST_KEYS only). The gateway
	// fetches its API keys with ServiceToken and its JWKS, refreshing on
	// every change it announces on Redis, every KeysRefresh as a backstop,
	// and on an unknown key id at most once per KeysRefetchMin.
	AuthURL        string        `env:"ROOMCAST_AUTH_URL"`
	ServiceToken   string        `env:"ROOMCAST_SERVICE_TOKEN"`
	KeysRefresh    time.Duration `env:"GATEWAY_KEYS_REFRESH" envDefault:"5s"`
	KeysRefetchMin time.Duration `env:"GATEWAY_KEYS_REFETCH_MIN" envDefault:"1s"`

	// MaxFrameBytes caps one WebSocket message (all fragments); larger
	// messages close the connection with 1009.
	MaxFrameBytes int `env:"GATEWAY_MAX_FRAME_BYTES" envDefault:"98304"`
	// MaxMessageBytes caps a published payload; larger ones get
	// message_too_large and the connection stays open.
	MaxMessageBytes int `env:"GATEWAY_MAX_MESSAGE_BYTES" envDefault:"65536"`
	// MaxRoomNameBytes caps room names.
	MaxRoomNameBytes int `env:"GATEWAY_MAX_ROOM_NAME_BYTES" envDefault:"200"`
	// MaxEventBytes caps event names and idempotency keys.
	MaxEventBytes int `env:"GATEWAY_MAX_EVENT_BYTES" envDefault:"128"`
	// RESTMaxBodyBytes caps a REST request body (a batch of 100 messages
	// needs room for 100 × GATEWAY_MAX_MESSAGE_BYTES).
	RESTMaxBodyBytes int `env:"GATEWAY_REST_MAX_BODY_BYTES" envDefault:"8388608"`
	// MaxRooms caps the rooms one connection may be joined to.
	MaxRooms int `env:"GATEWAY_MAX_ROOMS" envDefault:"100"`

	// Rate and Burst shape each connection's token bucket: every operation
	// costs one token. A client that keeps going after being limited for
	// RateLimitCloseAfter operations in a row is closed with 4006.
	Rate                float64 `env:"GATEWAY_RATE" envDefault:"50"`
	Burst               int     `env:"GATEWAY_BURST" envDefault:"100"`
	RateLimitCloseAfter int     `env:"GATEWAY_RATE_LIMIT_CLOSE_AFTER" envDefault:"200"`

	// IPRate and IPBurst limit WebSocket handshakes per client IP, checked
	// before any upgrade work; over the limit gets HTTP 429.
	IPRate  float64 `env:"GATEWAY_IP_RATE" envDefault:"20"`
	IPBurst int     `env:"GATEWAY_IP_BURST" envDefault:"100"`

	// TrustedProxies lists the CIDRs of load balancers in front of the
	// gateway (comma-separated). For a request from one of them, the client
	// address for the per-IP limit is the rightmost X-Forwarded-For entry
	// that is not itself a trusted proxy. Empty: the TCP peer is the client.
	TrustedProxies string `env:"GATEWAY_TRUSTED_PROXIES"`

	// AllowedOrigins is a comma-separated list of allowed Origin values
	// ('*' wildcards allowed, e.g. "https://*.example.com"). "*" allows any
	// origin; requests without Origin (non-browser clients) are always
	// allowed because tokens, not cookies, authenticate them.
	AllowedOrigins string `env:"GATEWAY_ALLOWED_ORIGINS" envDefault:"*"`

	// OutboxFrames and OutboxBytes cap each connection's outbound queue.
	// A connection over either is a slow consumer: it is closed with 4007
	// and resumes from its session later, so other members never wait.
	OutboxFrames int `env:"GATEWAY_OUTBOX_FRAMES" envDefault:"4096"`
	OutboxBytes  int `env:"GATEWAY_OUTBOX_BYTES" envDefault:"4194304"`
	// WriteTimeout bounds a write that waits for a full socket (writes to a
	// socket with room never wait).
	WriteTimeout time.Duration `env:"GATEWAY_WRITE_TIMEOUT" envDefault:"10s"`

	// RedisBufferBytes is the read and the write buffer of each Redis
	// connection. The gateway's commands and replies are small, and the pool
	// grows past its size during connect storms; larger values or replies
	// still work (a buffer only batches syscalls). go-redis's own default
	// is 32 KiB each.
	RedisBufferBytes int `env:"GATEWAY_REDIS_BUFFER_BYTES" envDefault:"8192"`

	// GCPercent is the Go collector's goal (as GOGC) unless GOGC is set:
	// the heap may grow by this percentage of the live heap before the
	// next collection. Lower holds less memory per connection and costs
	// more collector CPU; the Go default is 100.
	GCPercent int `env:"GATEWAY_GC_PERCENT" envDefault:"50"`

	// HeartbeatInterval is how often the server pings each connection;
	// a connection silent for HeartbeatMisses intervals is closed with 4008.
	HeartbeatInterval time.Duration `env:"GATEWAY_HEARTBEAT_INTERVAL" envDefault:"25s"`
	HeartbeatMisses   int           `env:"GATEWAY_HEARTBEAT_MISSES" envDefault:"2"`
	// HandshakeTimeout bounds the HTTP upgrade.
	HandshakeTimeout time.Duration `env:"GATEWAY_HANDSHAKE_TIMEOUT" envDefault:"10s"`

	// GapWait is how long a node waits for a missing offset to arrive over
	// AMQP before it fetches it from the room's recovery stream.
	GapWait time.Duration `env:"GATEWAY_GAP_WAIT" envDefault:"100ms"`
	// PublishTimeout bounds how long a publish waits for the broker's
	// confirm, across reconnects, before the client gets publish_failed.
	PublishTimeout time.Duration `env:"GATEWAY_PUBLISH_TIMEOUT" envDefault:"5s"`
	// PublishBatch caps the messages a gateway sends to RabbitMQ as one
	// AMQP message (those that queued during one confirm round trip).
	// 1 sends every message alone, as gateways before batching did: set
	// it during a rolling update from such a version.
	PublishBatch int `env:"GATEWAY_PUBLISH_BATCH" envDefault:"256"`
	// MaxInflightPublishes caps one connection's publishes awaiting their
	// confirm; at the cap the gateway stops reading the connection until
	// one is answered (a publish that waits a whole GATEWAY_PUBLISH_TIMEOUT
	// for a place is answered unavailable).
	MaxInflightPublishes int `env:"GATEWAY_MAX_INFLIGHT_PUBLISHES" envDefault:"256"`

	// ReadLinger is how long a connection's reader keeps waiting for the
	// next message, on the Go runtime's poller, before it hands the socket
	// back to the node's idle-socket poller and ends. A client that sends
	// more often than this (a server-side publisher, a game client at 60
	// Hz) keeps its reader; each hand-back and wake-up costs system calls
	// and a new goroutine. Longer keeps more readers (a goroutine stack
	// each) alive through a connect storm: 100ms added ~0.4 KiB per idle
	// connection to W1 (docs/benchmarks.md). 0 hands the socket back as
	// soon as no input is pending.
	ReadLinger time.Duration `env:"GATEWAY_READ_LINGER" envDefault:"20ms"`

	// SessionTTL is the recovery window for sessions: how long a session
	// outlives its connection and can be resumed on any node. Live
	// sessions are refreshed every heartbeat, so it must exceed
	// GATEWAY_HEARTBEAT_INTERVAL.
	SessionTTL time.Duration `env:"ROOMCAST_SESSION_TTL" envDefault:"2m"`

	// EventConsumers lists the worker services this gateway enqueues
	// events for (comma-separated; see pkg/events.Consumers). Empty turns
	// the event pipeline off: presence changes are then refused.
	EventConsumers string `env:"GATEWAY_EVENT_CONSUMERS" envDefault:"presence"`
	// EventBuffer is how many events may wait to be enqueued in Redis;
	// beyond it (Redis slow or down) events are dropped and counted, and
	// connections never wait.
	EventBuffer int `env:"GATEWAY_EVENT_BUFFER" envDefault:"10000"`
	// HistoryURL is the history service's read API (empty: no history
	// reads; the history op answers unavailable and REST has no
	// /v1/rooms/{room}/messages). Calls carry ServiceToken.
	HistoryURL string `env:"GATEWAY_HISTORY_URL"`
	// PresenceGrace is how long the members of a connection that dropped
	// without a close stay present: a client that resumes its session
	// within it causes no presence events. Keep it at ROOMCAST_SESSION_TTL
	// (the recovery window).
	PresenceGrace time.Duration `env:"GATEWAY_PRESENCE_GRACE" envDefault:"2m"`
	// PresenceNodeTTL is the lifetime of this node's presence lease,
	// renewed every third of it. When a node dies, its members leave
	// within this plus PRESENCE_SWEEP_INTERVAL.
	PresenceNodeTTL time.Duration `env:"GATEWAY_PRESENCE_NODE_TTL" envDefault:"30s"`
	// MaxPresenceDataBytes caps a member's presence data.
	MaxPresenceDataBytes int `env:"GATEWAY_MAX_PRESENCE_DATA_BYTES" envDefault:"1024"`

	// DrainTimeout bounds a graceful shutdown on SIGTERM: stop accepting,
	// close clients with 4000 (reconnect elsewhere), finish in-flight
	// publishes, exit.
	DrainTimeout time.Duration `env:"GATEWAY_DRAIN_TIMEOUT" envDefault:"25s"`
}

// Load reads the configuration from the environment and validates it.
func Load() (*Config, error) { return pkgconfig.LoadValid[Config]() }

// Validate checks ranges and fills derived defaults.
func (c *Config) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	positive := map[string]int{
		"GATEWAY_MAX_FRAME_BYTES":         c.MaxFrameBytes,
		"GATEWAY_MAX_MESSAGE_BYTES":       c.MaxMessageBytes,
		"GATEWAY_MAX_ROOM_NAME_BYTES":     c.MaxRoomNameBytes,
		"GATEWAY_MAX_EVENT_BYTES":         c.MaxEventBytes,
		"GATEWAY_MAX_ROOMS":               c.MaxRooms,
		"GATEWAY_REST_MAX_BODY_BYTES":     c.RESTMaxBodyBytes,
		"GATEWAY_BURST":                   c.Burst,
		"GATEWAY_IP_BURST":                c.IPBurst,
		"GATEWAY_OUTBOX_FRAMES":           c.OutboxFrames,
		"GATEWAY_OUTBOX_BYTES":            c.OutboxBytes,
		"GATEWAY_REDIS_BUFFER_BYTES":      c.RedisBufferBytes,
		"GATEWAY_GC_PERCENT":              c.GCPercent,
		"GATEWAY_HEARTBEAT_MISSES":        c.HeartbeatMisses,
		"GATEWAY_EVENT_BUFFER":            c.EventBuffer,
		"GATEWAY_MAX_PRESENCE_DATA_BYTES": c.MaxPresenceDataBytes,
		"GATEWAY_PUBLISH_BATCH":           c.PublishBatch,
		"GATEWAY_MAX_INFLIGHT_PUBLISHES":  c.MaxInflightPublishes,
	}
	for name, v := range positive {
		if v < 1 {
			return fmt.Errorf("config: %s must be at least 1, got %d", name, v)
		}
	}
	if c.MaxFrameBytes < c.MaxMessageBytes {
		return fmt.Errorf("config: GATEWAY_MAX_FRAME_BYTES (%d) must be at least GATEWAY_MAX_MESSAGE_BYTES (%d)", c.MaxFrameBytes, c.MaxMessageBytes)
	}
	if c.Rate <= 0 || c.IPRate <= 0 {
		return fmt.Errorf("config: GATEWAY_RATE and GATEWAY_IP_RATE must be positive")
	}
	if c.HeartbeatInterval <= 0 || c.DrainTimeout <= 0 || c.PublishTimeout <= 0 || c.GapWait <= 0 ||
		c.PresenceGrace <= 0 || c.PresenceNodeTTL <= 0 {
		return fmt.Errorf("config: durations must be positive")
	}
	if c.ReadLinger < 0 {
		return fmt.Errorf("config: GATEWAY_READ_LINGER must not be negative, got %s", c.ReadLinger)
	}
	if c.SessionTTL <= c.HeartbeatInterval {
		return fmt.Errorf("config: ROOMCAST_SESSION_TTL (%s) must exceed GATEWAY_HEARTBEAT_INTERVAL (%s)", c.SessionTTL, c.HeartbeatInterval)
	}
	if _, err := c.ParseTrustedProxies(); err != nil {
		return err
	}
	if _, err := c.ParseStreamRules(); err != nil {
		return err
	}
	if c.AuthURL != "" && (c.ServiceToken == "" || c.KeysRefresh <= 0 || c.KeysRefetchMin < 0) {
		return fmt.Errorf("config: ROOMCAST_AUTH_URL needs ROOMCAST_SERVICE_TOKEN and a positive GATEWAY_KEYS_REFRESH")
	}
	if _, err := c.ParseKeys(); err != nil {
		return err
	}
	if _, err := c.Consumers(); err != nil {
		return err
	}
	return nil
}

// ParseTrustedProxies parses GATEWAY_TRUSTED_PROXIES.
func (c *Config) ParseTrustedProxies() (clientip.Proxies, error) {
	ps, err := clientip.Parse(c.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("config: GATEWAY_TRUSTED_PROXIES: %w", err)
	}
	return ps, nil
}

// Consumers parses GATEWAY_EVENT_CONSUMERS.
func (c *Config) Consumers() ([]string, error) {
	var out []string
	for _, f := range strings.Split(c.EventConsumers, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if _, ok := events.Consumers[f]; !ok {
			return nil, fmt.Errorf("config: GATEWAY_EVENT_CONSUMERS: unknown consumer %q", f)
		}
		out = append(out, f)
	}
	return out, nil
}

// Presence reports whether presence is on (the presence service consumes
// this gateway's events).
func (c *Config) Presence() bool {
	cs, _ := c.Consumers()
	return slices.Contains(cs, "presence")
}

// NodeLease reports whether the node keeps a liveness lease in Redis: the
// presence, webhooks and metrics services sweep what a dead node left
// behind (its members; the rooms it kept occupied; its connections) when
// its lease runs out, and the auth service's users consumer counts a
// user's connections only while their node's lease exists.
func (c *Config) NodeLease() bool {
	cs, _ := c.Consumers()
	return slices.Contains(cs, "presence") || slices.Contains(cs, "webhooks") || slices.Contains(cs, "metrics") ||
		slices.Contains(cs, "users")
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
