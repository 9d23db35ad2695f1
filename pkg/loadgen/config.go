// Package loadgen is the engine of `roomcast bench`: it opens many client
// connections (through the Go client SDK) over several gateways, joins them
// to rooms, publishes at a fixed offered rate, measures what is delivered
// and how late, and accounts for the CPU and memory the gateways and the
// load generator itself spent doing it.
//
// A run has three phases, which a coordinator can drive in several worker
// processes in step (Connect, Load.Publish, Load.Drain); Run does them in
// one process. Reports merge exactly (Merge): counts add up and the
// latency histograms travel encoded.
//
// Every report can carry the floor (Floor): what raw loopback writes of one
// small frame per delivery cost on the same machine, so gateway CPU per
// delivery is read as a ratio to what the kernel alone costs.
package loadgen

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
)

// Room patterns.
const (
	// RoomsOne puts every connection in one room (fan-out).
	RoomsOne = "one"
	// RoomsMany spreads connections over RoomCount rooms: connection i
	// joins room i % RoomCount.
	RoomsMany = "many"
)

// Codecs (Config.Codec).
const (
	CodecJSON    = "json"
	CodecMsgpack = "msgpack"
)

// Config describes one bench run. Only URLs and one of Key or Token are
// required; every other field's zero value is a sensible default.
type Config struct {
	// URLs are the gateways' WebSocket endpoints
	// (ws://host:port/v1/connect). Subscriber i and publisher j connect to
	// URLs[i % len(URLs)] and URLs[j % len(URLs)]. Required.
	URLs []string `json:"urls"`

	// Connections is the number of subscriber connections. Zero means 100
	// (zero is kept when TotalConnections is set: a worker without
	// subscribers).
	Connections int `json:"connections"`
	// ConnectRate is how many connections per second are opened
	// (publishers first, then subscribers). Zero means 500.
	ConnectRate float64 `json:"connect_rate"`
	// ConnectConcurrency bounds handshakes in flight. Zero means 256.
	ConnectConcurrency int `json:"connect_concurrency"`
	// ConnectTimeout bounds one connection's dial and join. Zero means 30s.
	ConnectTimeout time.Duration `json:"connect_timeout"`

	// Rooms is RoomsOne or RoomsMany. Zero ("") means RoomsOne.
	Rooms string `json:"rooms"`
	// RoomCount is the number of rooms with RoomsMany. Zero means 10.
	// Ignored (1) with RoomsOne.
	RoomCount int `json:"room_count"`
	// RoomPrefix starts every room name; rooms are RoomPrefix + "0", "1", …
	// Zero means "bench.<random>.", so runs never share rooms (nor
	// idempotency keys, nor recovery streams).
	RoomPrefix string `json:"room_prefix"`

	// Publishers is the number of publishing connections; they publish
	// without joining. Zero means 1 (zero is kept when TotalPublishers is
	// set).
	Publishers int `json:"publishers"`
	// Rate is the total offered rate in messages per second, over all
	// publishers of all processes. Zero means 100. Each publisher sends its
	// share on a fixed schedule that does not slow down when the server
	// does; see Load.Publish.
	Rate float64 `json:"rate"`
	// Duration is how long publishers publish (or, with Idle, how long the
	// connections are held). Zero means 10s.
	Duration time.Duration `json:"duration"`
	// PayloadBytes is the size of each message's data (a JSON object that
	// carries the send time). Zero means 64; sizes below the unpadded
	// object (~60 bytes) are raised to it.
	PayloadBytes int `json:"payload_bytes"`
	// Transient publishes best effort: no offset, no Redis, no recovery.
	// Zero (false): durable messages with offsets and idempotency keys.
	Transient bool `json:"transient"`
	// Codec is the wire encoding of every connection: CodecJSON or
	// CodecMsgpack. With msgpack the payloads are published as binary (the
	// same bytes, carried as bin). Zero ("") means CodecJSON.
	Codec string `json:"codec,omitempty"`
	// InFlight is how many publishes one publisher may have awaiting their
	// reply. Zero means 256. When all are in flight, the next send waits
	// (counted as a window wait) but keeps its scheduled send time, so the
	// wait shows in the latency instead of disappearing.
	InFlight int `json:"in_flight"`
	// Idle connects and joins, then holds the connections for Duration
	// without publishing: memory per idle connection. Zero (false):
	// publish.
	Idle bool `json:"idle"`

	// Key is an API key "<app>.<keyId>:<secret>" used to mint one token
	// per connection with join and publish on RoomPrefix + "*". Set Key or
	// Token, not both. Never logged.
	Key string `json:"key,omitempty"`
	// Token is one token used by every connection; it must allow join and
	// publish on the bench rooms.
	Token string `json:"token,omitempty"`

	// GatewayPIDs are the gateway processes (on this machine) whose CPU
	// time and resident memory the report accounts for. Zero: no gateway
	// figures.
	GatewayPIDs []int `json:"gateway_pids,omitempty"`

	// DrainTimeout is how long to wait after the last publish for the
	// expected deliveries. Zero means 10s.
	DrainTimeout time.Duration `json:"drain_timeout"`
	// MessageBuffer is each subscriber's SDK message buffer. Zero: the
	// SDK's default (1024); every buffered slot costs memory per
	// connection.
	MessageBuffer int `json:"message_buffer"`
	// QueuedHandlers runs each subscriber's receive handler on the SDK's
	// delivery goroutine, behind its message buffer, as an app with slow
	// handlers would. Zero (false): on the connection's reader
	// (client.Config.InlineHandlers), the cheaper path: the handler only
	// reads the clock and records.
	QueuedHandlers bool `json:"queued_handlers"`

	// Floor configures the floor measured before the run; SkipFloor skips
	// it. Zero: 1000 sockets, 200,000 deliveries, one frame per write.
	Floor     FloorConfig `json:"floor"`
	SkipFloor bool        `json:"skip_floor"`
	// PacedFloor is a second floor, paced like the workload (its Rate and
	// Burst), measured after Floor unless SkipFloor. Zero Rate: none.
	PacedFloor FloorConfig `json:"paced_floor"`

	// FirstConnection, TotalConnections, FirstPublisher and
	// TotalPublishers place this process's connections among all of a
	// multi-process run's (Split sets them): subscriber i is global
	// subscriber FirstConnection+i. Zero: this process is the whole run.
	FirstConnection  int `json:"first_connection"`
	TotalConnections int `json:"total_connections"`
	FirstPublisher   int `json:"first_publisher"`
	TotalPublishers  int `json:"total_publishers"`

	// Seed seeds the publishers' room choice with RoomsMany. Zero: random.
	Seed uint64 `json:"seed"`

	// Logger receives progress and the first errors of each kind. Zero:
	// discarded.
	Logger *slog.Logger `json:"-"`
}

// normalize validates cfg and fills in defaults. It is idempotent, so a
// worker may normalize a config its coordinator already normalized.
func (cfg Config) normalize() (Config, error) {
	if len(cfg.URLs) == 0 {
		return cfg, errors.New("loadgen: Config.URLs is empty")
	}
	switch {
	case cfg.Key != "" && cfg.Token != "":
		return cfg, errors.New("loadgen: set Config.Key or Config.Token, not both")
	case cfg.Key == "" && cfg.Token == "":
		return cfg, errors.New("loadgen: Config.Key or Config.Token is required")
	case cfg.Key != "":
		if _, err := token.ParseAPIKey(cfg.Key); err != nil {
			return cfg, fmt.Errorf("loadgen: Config.Key: %w", err)
		}
	}
	if cfg.Connections < 0 || cfg.Publishers < 0 || cfg.TotalConnections < 0 || cfg.TotalPublishers < 0 ||
		cfg.FirstConnection < 0 || cfg.FirstPublisher < 0 {
		return cfg, errors.New("loadgen: negative connection or publisher count")
	}
	if cfg.Connections == 0 && cfg.TotalConnections == 0 {
		cfg.Connections = 100
	}
	if cfg.TotalConnections == 0 {
		cfg.TotalConnections = cfg.Connections
	}
	if cfg.FirstConnection+cfg.Connections > cfg.TotalConnections {
		return cfg, fmt.Errorf("loadgen: connections %d+%d exceed TotalConnections %d", cfg.FirstConnection, cfg.Connections, cfg.TotalConnections)
	}
	if cfg.Publishers == 0 && cfg.TotalPublishers == 0 {
		cfg.Publishers = 1
	}
	if cfg.TotalPublishers == 0 {
		cfg.TotalPublishers = cfg.Publishers
	}
	if cfg.FirstPublisher+cfg.Publishers > cfg.TotalPublishers {
		return cfg, fmt.Errorf("loadgen: publishers %d+%d exceed TotalPublishers %d", cfg.FirstPublisher, cfg.Publishers, cfg.TotalPublishers)
	}
	if cfg.Idle {
		cfg.Publishers, cfg.TotalPublishers = 0, 0
	}
	if cfg.ConnectRate < 0 || cfg.Rate < 0 || cfg.Duration < 0 || cfg.DrainTimeout < 0 {
		return cfg, errors.New("loadgen: negative rate or duration")
	}
	if cfg.ConnectRate == 0 {
		cfg.ConnectRate = 500
	}
	if cfg.ConnectConcurrency <= 0 {
		cfg.ConnectConcurrency = 256
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	switch cfg.Codec {
	case "":
		cfg.Codec = CodecJSON
	case CodecJSON, CodecMsgpack:
	default:
		return cfg, fmt.Errorf("loadgen: Config.Codec %q: want %s or %s", cfg.Codec, CodecJSON, CodecMsgpack)
	}
	switch cfg.Rooms {
	case "", RoomsOne:
		cfg.Rooms, cfg.RoomCount = RoomsOne, 1
	case RoomsMany:
		if cfg.RoomCount < 0 {
			return cfg, errors.New("loadgen: negative RoomCount")
		}
		if cfg.RoomCount == 0 {
			cfg.RoomCount = 10
		}
	default:
		return cfg, fmt.Errorf("loadgen: Config.Rooms is %q, want %q or %q", cfg.Rooms, RoomsOne, RoomsMany)
	}
	if cfg.RoomPrefix == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.RoomPrefix = "bench." + hex.EncodeToString(b[:]) + "."
	}
	if cfg.Rate == 0 {
		cfg.Rate = 100
	}
	if cfg.Duration == 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.PayloadBytes <= 0 {
		cfg.PayloadBytes = 64
	}
	cfg.PayloadBytes = max(cfg.PayloadBytes, minPayloadBytes)
	if cfg.InFlight <= 0 {
		cfg.InFlight = 256
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.MessageBuffer < 0 {
		return cfg, errors.New("loadgen: negative MessageBuffer")
	}
	if cfg.Seed == 0 {
		cfg.Seed = mrand.Uint64() | 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// Split divides cfg into k worker configs of (nearly) equal slices of the
// subscribers and publishers. Workers share the room names, the total
// rate and the publishers' schedule phases, so k workers offer exactly
// what one process would. Gateway PIDs and the floor stay with the
// coordinator.
func Split(cfg Config, k int) ([]Config, error) { return SplitPublishers(cfg, k, 0) }

// SplitPublishers is Split with the publishers in p workers of their own
// (after the k subscriber workers), when p > 0: a publisher then does not
// wait behind thousands of receiving goroutines in one Go scheduler, so
// its schedule and its replies are not delayed by the subscribers' load.
func SplitPublishers(cfg Config, k, p int) ([]Config, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if k < 1 || p < 0 {
		return nil, fmt.Errorf("loadgen: split into %d subscriber and %d publisher workers", k, p)
	}
	if p > cfg.Publishers {
		return nil, fmt.Errorf("loadgen: %d publisher workers for %d publishers", p, cfg.Publishers)
	}
	out := make([]Config, k+p)
	for w := range k + p {
		c := cfg
		c.FirstConnection, c.Connections = 0, 0
		if w < k {
			c.FirstConnection, c.Connections = sliceOf(cfg.Connections, k, w)
		}
		c.FirstPublisher, c.Publishers = 0, 0
		switch {
		case p == 0:
			c.FirstPublisher, c.Publishers = sliceOf(cfg.Publishers, k, w)
		case w >= k:
			c.FirstPublisher, c.Publishers = sliceOf(cfg.Publishers, p, w-k)
		}
		c.TotalConnections, c.TotalPublishers = cfg.Connections, cfg.Publishers
		c.GatewayPIDs, c.SkipFloor, c.Logger = nil, true, nil
		c.Seed = cfg.Seed + uint64(w)*0x9e3779b97f4a7c15
		out[w] = c
	}
	return out, nil
}

// sliceOf returns the first index and the length of part w of n items
// split into k parts whose sizes differ by at most one.
func sliceOf(n, k, w int) (first, count int) {
	base, extra := n/k, n%k
	first = w*base + min(w, extra)
	count = base
	if w < extra {
		count++
	}
	return first, count
}
