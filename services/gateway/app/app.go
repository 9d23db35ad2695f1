// Package app wires a gateway node from its configuration: Redis, the
// broker, the hub, the WebSocket server and the HTTP endpoints. The gateway
// binary and `roomcast run` both start a node through Run.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/broker"
	"github.com/roomcast/roomcast/pkg/envelope"
	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/observability"
	"github.com/roomcast/roomcast/pkg/presence"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/roomlog"
	"github.com/roomcast/roomcast/pkg/service"
	"github.com/roomcast/roomcast/pkg/session"
	"github.com/roomcast/roomcast/services/gateway/config"
	"github.com/roomcast/roomcast/services/gateway/internal/conn"
	"github.com/roomcast/roomcast/services/gateway/internal/hub"
	gwkeys "github.com/roomcast/roomcast/services/gateway/internal/keys"
	"github.com/roomcast/roomcast/services/gateway/internal/metrics"
	"github.com/roomcast/roomcast/services/gateway/internal/rest"
	"github.com/roomcast/roomcast/services/gateway/internal/server"
	"github.com/roomcast/roomcast/services/gateway/internal/wsframe"
)

// Run serves until ctx is cancelled, then drains: it refuses new
// connections, closes clients with 4000 (resume on another node), lets
// in-flight publishes finish and returns, all within cfg.DrainTimeout.
// onListen, if set, is called with the bound address once the node accepts
// connections.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, onListen func(addr net.Addr)) error {
	log = log.With("service", "gateway", "node", cfg.NodeID)
	keys, err := cfg.ParseKeys()
	if err != nil {
		return err
	}
	if len(keys) == 0 && cfg.AuthURL == "" {
		log.Warn("ROOMCAST_KEYS and ROOMCAST_AUTH_URL are empty: no token can be verified, every connection will be refused")
	}
	keyring := gwkeys.New(gwkeys.Config{
		Static: keys, AuthURL: cfg.AuthURL, ServiceToken: cfg.ServiceToken,
		Refresh: cfg.KeysRefresh, RefetchMin: cfg.KeysRefetchMin,
		RedisURL: cfg.RedisURL, RedisPrefix: cfg.RedisPrefix,
	}, log.With("component", "keys"))
	verifier := &token.Verifier{Keys: keyring, Leeway: cfg.TokenLeeway}

	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("ROOMCAST_REDIS_URL: %w", err)
	}
	ropts.ReadBufferSize, ropts.WriteBufferSize = cfg.RedisBufferBytes, cfg.RedisBufferBytes
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	lcfg, err := cfg.LogConfig(cfg.RedisPrefix)
	if err != nil {
		return err
	}
	rlog := roomlog.New(rdb, lcfg)

	reg := observability.NewRegistry()
	m := metrics.New(reg)

	// The hub needs the broker to subscribe and the broker needs the hub to
	// deliver: the handler forwards to the hub once it exists.
	var h *hub.Hub
	bus, err := broker.New(broker.Config{
		URL:            cfg.AMQPURL,
		NodeID:         cfg.NodeID,
		PublishTimeout: cfg.PublishTimeout,
		PublishBatch:   cfg.PublishBatch,
	}, log, func(shard int, body []byte) { h.HandleDelivery(shard, body) })
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	consumers, err := cfg.Consumers()
	if err != nil {
		return err
	}
	emitter := events.NewEmitter(rdb, events.EmitterConfig{Prefix: cfg.RedisPrefix, Consumers: consumers, Buffer: cfg.EventBuffer}, log.With("component", "events"))
	registerEventStats(reg, emitter)
	observe(reg, rdb, cfg.RedisPrefix, consumers)
	var published func(*envelope.Envelope)
	if emitter.Wants(events.TypeMessagePublished) {
		published = func(e *envelope.Envelope) {
			emitter.Emit(events.TypeMessagePublished, events.PublishedFrom(e.App, e.Room, e.Offset, e.Epoch, e.Event, e.From, e.Transient, e.Binary, e.Data, e.Timestamp))
		}
	}
	published = countPublished(m, published)
	h = hub.New(hub.Config{Shards: cfg.Shards, GapWait: cfg.GapWait, Frame: wsframe.Encode, View: presence.Frame, Published: published, FannedOut: fannedOut(m)},
		log.With("component", "hub"), bus, rlog)
	registerStats(reg, h, bus)
	pstore := presence.New(rdb, rlog, presence.Config{Prefix: cfg.RedisPrefix, NodeTTL: cfg.PresenceNodeTTL})
	// Callbacks run on the broker's connection goroutine: resync elsewhere.
	bus.OnReconnect(func() { go h.Resync() })

	lv := newLive(rdb, cfg, h, pstore, log)
	deps := &conn.Deps{
		Config:   cfg,
		Hub:      h,
		Sessions: session.New(rdb, session.Config{Prefix: cfg.RedisPrefix, TTL: cfg.SessionTTL}),
		Verifier: verifier,
		Log:      log,
		Metrics:  m,
		Events:   emitter,
		Presence: pstore,
		History:  historyReader(cfg, rdb, rlog),
		Live:     lv,
		Limits: protocol.Limits{
			MaxMessageBytes:  cfg.MaxMessageBytes,
			MaxRoomNameBytes: cfg.MaxRoomNameBytes,
			MaxRooms:         cfg.MaxRooms,
			PublishRate:      cfg.Rate,
			PublishBurst:     cfg.Burst,
		},
	}
	srv := server.New(deps, verifier, cfg.NodeID)
	go srv.Run()
	go keyring.Run(ctx, func() { srv.CloseRevoked(keyring.Revoked) })
	leaseCtx, stopLease := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLease()
	go lv.Run(leaseCtx)
	if cfg.NodeLease() {
		go srv.RunPresenceLease(leaseCtx, pstore, cfg.NodeID, cfg.PresenceNodeTTL)
	}

	mux := http.NewServeMux()
	srv.Mount(mux)
	rest.New(cfg, keyring, verifier, h, log.With("component", "rest")).WithPresence(pstore).WithHistory(deps.History).Mount(mux)
	observability.Mount(mux, reg,
		observability.Check{Name: "redis", Func: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
		observability.Check{Name: "amqp", Func: func(context.Context) error {
			if !bus.Ready() {
				return errors.New("not connected")
			}
			return nil
		}},
		observability.Check{Name: "draining", Func: func(context.Context) error {
			if srv.Draining() {
				return errors.New("draining")
			}
			return nil
		}},
	)

	hs, err := service.ListenHTTP(log, cfg.Addr, mux, cfg.HandshakeTimeout)
	if err != nil {
		return err
	}
	hs.Announce(log, onListen, "ws", "/v1/connect")
	if err := hs.Wait(ctx); err != nil {
		return err
	}
	log.Info("draining", "timeout", cfg.DrainTimeout.String())

	// Drain: refuse new connections, tell clients to resume elsewhere, let
	// in-flight publishes finish, then stop — all within DrainTimeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.DrainTimeout)
	defer cancel()
	start := time.Now()
	if err := srv.Drain(ctx); err != nil {
		log.Warn("drain: connections still open at the deadline", "err", err, "left", srv.Connections())
	}
	if err := h.WaitInflight(ctx); err != nil {
		log.Warn("drain: publishes still unconfirmed at the deadline", "err", err)
	}
	_ = hs.Shutdown(ctx)
	// Connections have enqueued their presence detaches; hand them to
	// Redis before going. The lease is left to expire: members whose
	// clients resume elsewhere are taken over before the sweep finds them.
	emitter.Close(ctx)
	stopLease()
	if err := bus.Close(); err != nil {
		log.Warn("broker close", "err", err)
	}
	h.Close()
	log.Info("stopped", "drain", time.Since(start).String())
	return nil
}

// registerEventStats exposes the event pipeline's counters.
func registerEventStats(reg *prometheus.Registry, e *events.Emitter) {
	metrics.Func(reg, "roomcast_gateway_events_enqueued_total", "Events enqueued for the worker services.", func() float64 { return float64(e.Stats().Enqueued) })
	metrics.Func(reg, "roomcast_gateway_events_dropped_total", "Events dropped (buffer full or Redis unreachable).", func() float64 { return float64(e.Stats().Dropped) })
}

// registerStats exposes the hub's and the broker's own counters.
func registerStats(reg *prometheus.Registry, h *hub.Hub, bus *broker.Broker) {
	hs := func(f func(hub.Stats) uint64) func() float64 { return func() float64 { return float64(f(h.Stats())) } }
	bs := func(f func(broker.Stats) uint64) func() float64 {
		return func() float64 { return float64(f(bus.Stats())) }
	}
	metrics.Func(reg, "roomcast_gateway_messages_fanned_out_total", "Room messages fanned out to local members.", hs(func(s hub.Stats) uint64 { return s.Messages }))
	metrics.Func(reg, "roomcast_gateway_deliveries_total", "Messages queued to members (one per member per message).", hs(func(s hub.Stats) uint64 { return s.Deliveries }))
	metrics.Func(reg, "roomcast_gateway_gap_fills_total", "Gaps filled from the recovery stream.", hs(func(s hub.Stats) uint64 { return s.GapFills }))
	metrics.Func(reg, "roomcast_gateway_lost_offsets_total", "Offsets skipped because the recovery stream no longer held them.", hs(func(s hub.Stats) uint64 { return s.Lost }))
	metrics.Func(reg, "roomcast_gateway_duplicates_dropped_total", "Messages dropped as already delivered.", hs(func(s hub.Stats) uint64 { return s.Duplicates }))
	metrics.Func(reg, "roomcast_gateway_epoch_resets_total", "Rooms whose epoch changed under live members.", hs(func(s hub.Stats) uint64 { return s.EpochResets }))
	metrics.GaugeFunc(reg, "roomcast_gateway_rooms", "Rooms with local members.", func() float64 { return float64(h.Rooms()) })
	metrics.Func(reg, "roomcast_amqp_published_total", "Messages published to RabbitMQ.", bs(func(s broker.Stats) uint64 { return s.Published }))
	metrics.Func(reg, "roomcast_amqp_sends_total", "AMQP messages published (one per batch of messages; published_total / sends_total is the mean batch size).", bs(func(s broker.Stats) uint64 { return s.Sends }))
	metrics.Func(reg, "roomcast_amqp_confirmed_total", "Publishes confirmed by RabbitMQ.", bs(func(s broker.Stats) uint64 { return s.Confirmed }))
	metrics.Func(reg, "roomcast_amqp_nacked_total", "Publishes nacked by RabbitMQ.", bs(func(s broker.Stats) uint64 { return s.Nacked }))
	metrics.Func(reg, "roomcast_amqp_returned_total", "Publishes no node was bound for.", bs(func(s broker.Stats) uint64 { return s.Returned }))
	metrics.Func(reg, "roomcast_amqp_republished_total", "Publishes retried after a lost channel or a nack.", bs(func(s broker.Stats) uint64 { return s.Republished }))
	metrics.Func(reg, "roomcast_amqp_failed_total", "Publishes that never got a confirm.", bs(func(s broker.Stats) uint64 { return s.Failed }))
	metrics.Func(reg, "roomcast_amqp_reconnects_total", "Reconnections to RabbitMQ.", bs(func(s broker.Stats) uint64 { return s.Reconnects }))
	metrics.Func(reg, "roomcast_amqp_deliveries_total", "Messages consumed from the node queue.", bs(func(s broker.Stats) uint64 { return s.Deliveries }))
	metrics.Func(reg, "roomcast_amqp_batches_received_total", "Batches consumed from the node queue (their messages count in roomcast_amqp_deliveries_total).", bs(func(s broker.Stats) uint64 { return s.Batches }))
	metrics.Func(reg, "roomcast_amqp_malformed_batches_total", "Batches consumed with a malformed body (the rest of such a batch is dropped; gaps are filled from Redis).", bs(func(s broker.Stats) uint64 { return s.Malformed }))
}
