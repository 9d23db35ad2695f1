// Package broker carries room traffic between gateway nodes over RabbitMQ.
//
// Every node publishes to one durable topic exchange with the routing key
// "room.<shard>" and consumes from its own exclusive, auto-deleted node
// queue, which it binds per shard while it has local members of any room in
// that shard. RabbitMQ copies each message to every interested node; bodies
// are opaque bytes here (the gateway encodes its own envelope).
//
// The Broker connects in the background and keeps reconnecting with
// backoff, so a gateway can start while RabbitMQ is down: Ready reports
// whether it is connected with its queue, bindings and consumer in place.
// Publish uses publisher confirms and returns nil only once RabbitMQ acked
// the message, republishing across reconnects until its deadline
// (at-least-once: receivers deduplicate by offset). The node queue dies with
// its connection, so messages routed while a node was disconnected are lost
// to it; OnReconnect tells the gateway to fill such gaps from Redis.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/roomcast/roomcast/pkg/lane"
)

// DefaultExchange is the exchange used when Config.Exchange is empty.
const DefaultExchange = "roomcast.rooms"

// routingPrefix starts every routing key: "room.<shard>".
const routingPrefix = "room."

var (
	// ErrNotConfirmed is wrapped by every Publish error: RabbitMQ did not
	// ack the message before the deadline. The message may still have
	// been delivered (an ack can be lost with its connection), so a caller
	// that retries must tolerate duplicates.
	ErrNotConfirmed = errors.New("broker: message not confirmed")
	// ErrClosed is returned (or wrapped) once Close has been called.
	ErrClosed = errors.New("broker: closed")

	errNacked = errors.New("nacked by RabbitMQ")
	errLost   = errors.New("channel closed before the confirm")
)

// Config configures a Broker. URL and NodeID are required; every other
// field has a usable zero value.
type Config struct {
	// URL is the AMQP URL, e.g. amqp://guest:guest@127.0.0.1:5672/vhost.
	// Required. It is never logged (it carries the password).
	URL string
	// Exchange is the topic exchange for room traffic.
	// Zero means DefaultExchange ("roomcast.rooms").
	Exchange string
	// NodeID names this node; its queue is "roomcast.node.<NodeID>".
	// Required, and unique among live nodes: the queue is exclusive, so a
	// second Broker with the same NodeID cannot declare it and keeps
	// retrying until the first one goes away.
	NodeID string
	// QueueMaxLength caps the ready messages in the node queue
	// (x-max-length with x-overflow drop-head: the oldest are dropped), so
	// a stalled node cannot grow RabbitMQ's memory without bound; receivers
	// fill the gaps from Redis. Zero means 100000.
	QueueMaxLength int
	// Prefetch is how many deliveries may be unacknowledged at once. The
	// consumer acks in batches (multiple=true every Prefetch/4 messages),
	// which costs about as much as auto-ack but keeps a slow handler from
	// buffering an unbounded backlog in this process: the backlog stays in
	// the node queue, where QueueMaxLength bounds it. Zero means 1000.
	Prefetch int
	// PublishChannels is how many confirm-mode channels publishes are
	// spread over (by shard, so one shard always uses the same channel and
	// keeps its publish order). Each channel sends one batch at a time and
	// gathers the publishes that arrive while it waits for the confirm, so
	// fewer channels make bigger batches. Zero means 2.
	PublishChannels int
	// PublishBatch caps the publishes sent as one AMQP message (and
	// confirmed together); 1 sends every publish alone. Zero means 256.
	PublishBatch int
	// PublishTimeout bounds one Publish call, including waiting for a
	// reconnect and republishing; the caller's context can only shorten
	// it. Zero means 5s.
	PublishTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the reconnect backoff, which
	// doubles per failed attempt with full jitter. Zero means 100ms and 5s.
	ReconnectMin, ReconnectMax time.Duration
	// DialTimeout bounds the TCP connect plus the AMQP handshake of one
	// attempt. Zero means 5s.
	DialTimeout time.Duration
	// Heartbeat is the AMQP heartbeat interval, which detects a dead peer
	// in about three intervals. Zero means 10s.
	Heartbeat time.Duration
}

func (c *Config) setDefaults() {
	if c.Exchange == "" {
		c.Exchange = DefaultExchange
	}
	if c.QueueMaxLength == 0 {
		c.QueueMaxLength = 100000
	}
	if c.Prefetch == 0 {
		c.Prefetch = 1000
	}
	if c.PublishChannels == 0 {
		c.PublishChannels = 2
	}
	if c.PublishBatch == 0 {
		c.PublishBatch = 256
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = 100 * time.Millisecond
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = 5 * time.Second
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 10 * time.Second
	}
}

func (c *Config) validate() error {
	if c.URL == "" {
		return errors.New("URL is required")
	}
	if _, err := amqp.ParseURI(c.URL); err != nil {
		// The parse error may quote the URL; do not wrap it.
		return errors.New("URL is not a valid AMQP URL")
	}
	if c.NodeID == "" {
		return errors.New("NodeID is required")
	}
	if c.QueueMaxLength < 0 || c.Prefetch < 0 || c.PublishChannels < 0 || c.PublishBatch < 0 {
		return errors.New("QueueMaxLength, Prefetch, PublishChannels and PublishBatch must not be negative")
	}
	if c.PublishTimeout < 0 || c.ReconnectMin < 0 || c.ReconnectMax < 0 || c.DialTimeout < 0 || c.Heartbeat < 0 {
		return errors.New("durations must not be negative")
	}
	if c.ReconnectMax < c.ReconnectMin {
		return errors.New("ReconnectMax is below ReconnectMin")
	}
	return nil
}

// Handler receives each delivery: the shard from its routing key and the
// body as published. It is called from one goroutine, in queue order, and
// must not block for long (it stalls the node's whole inbound stream). It
// owns body.
type Handler func(shard int, body []byte)

// Stats are cumulative counters since New, for metrics and tests.
type Stats struct {
	Sends       uint64 // basic.publish frames sent (one per batch), republishes included
	Published   uint64 // publishes sent in those frames, republishes included
	Confirmed   uint64 // publishes acked by RabbitMQ
	Nacked      uint64 // publishes nacked by RabbitMQ (then retried)
	Returned    uint64 // frames returned as unroutable: no node bound to any of their shards (still acked; not an error)
	Republished uint64 // publishes sent again after a nack or a lost channel
	Failed      uint64 // Publish calls that returned an error
	Reconnects  uint64 // connections re-established after a loss (the first connect is not counted)
	Deliveries  uint64 // messages handed to the Handler
	Batches     uint64 // batches received (their items count in Deliveries)
	Malformed   uint64 // batches received with a malformed body (their items after the fault are dropped)
	Binds       uint64 // queue.bind operations done, re-binds after a reconnect included
	Unbinds     uint64 // queue.unbind operations done
	Shards      int    // shards with a positive Subscribe count
}

type counters struct {
	sends, published, confirmed, nacked, returned, republished, failed atomic.Uint64
	reconnects, deliveries, batches, malformed, binds, unbinds         atomic.Uint64
	shards                                                             atomic.Int64
}

// Broker is one node's connection to the room-traffic exchange. Its
// methods are safe for concurrent use.
type Broker struct {
	cfg     Config
	log     *slog.Logger
	handler Handler
	queue   string
	stats   counters

	// topo serializes topology changes (Subscribe, Unsubscribe, the
	// re-binding after a reconnect); it is a channel so that Subscribe
	// can give up waiting when its context ends. It guards refs and the
	// current session's bound set.
	topo chan struct{}
	refs map[int]int
	// subscribed is the set of shards in refs, for the consumer: a batch
	// may carry other shards, whose items it skips. Replaced (never
	// modified) under topo.
	subscribed atomic.Pointer[map[int]struct{}]

	lanes []*lane.Lane[*outgoing] // one per publish channel

	mu          sync.Mutex
	sess        *session      // live session, nil while disconnected
	readyCh     chan struct{} // closed when sess becomes non-nil
	closed      bool
	reconnectFs []func()
	inflight    sync.WaitGroup // publishes queued or being sent (Done in publisher.finish); Add only while !closed

	closing chan struct{}      // closed when Close starts
	ctx     context.Context    // cancelled when Close has drained publishes
	cancel  context.CancelFunc // cancels ctx
	done    chan struct{}      // closed when the connection loop exits
}

// New validates cfg and starts connecting in the background; it does not
// wait for RabbitMQ (see Ready). h receives every delivery.
func New(cfg Config, log *slog.Logger, h Handler) (*Broker, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("broker: config: %w", err)
	}
	if h == nil {
		return nil, errors.New("broker: nil Handler")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		cfg:     cfg,
		log:     log.With("component", "broker"),
		handler: h,
		queue:   "roomcast.node." + cfg.NodeID,
		topo:    make(chan struct{}, 1),
		refs:    make(map[int]int),
		readyCh: make(chan struct{}),
		closing: make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	b.subscribed.Store(&map[int]struct{}{})
	limits := lane.Limits{Items: cfg.PublishBatch, Bytes: maxBatchBytes}
	for i := range cfg.PublishChannels {
		p := &publisher{b: b, idx: i}
		b.lanes = append(b.lanes, lane.New(limits, outgoingSize, p.send))
	}
	go b.run()
	return b, nil
}

// Ready reports whether the broker is connected with its exchange, queue,
// bindings and consumer in place. It is false until the first connect and
// while reconnecting.
func (b *Broker) Ready() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sess != nil
}

// OnReconnect registers f to run after every re-established connection,
// once the queue, all bindings and the consumer are restored — and after
// the first connect if shards were subscribed before it. Messages routed
// while the node was disconnected (or not yet connected) are lost from its
// queue, so the gateway re-syncs its rooms from Redis here. The
// callbacks run one after another on the broker's connection goroutine:
// they must return promptly and must not call Close.
func (b *Broker) OnReconnect(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reconnectFs = append(b.reconnectFs, f)
}

// Stats returns a snapshot of the counters.
func (b *Broker) Stats() Stats {
	s := &b.stats
	return Stats{
		Sends:       s.sends.Load(),
		Published:   s.published.Load(),
		Confirmed:   s.confirmed.Load(),
		Nacked:      s.nacked.Load(),
		Returned:    s.returned.Load(),
		Republished: s.republished.Load(),
		Failed:      s.failed.Load(),
		Reconnects:  s.reconnects.Load(),
		Deliveries:  s.deliveries.Load(),
		Batches:     s.batches.Load(),
		Malformed:   s.malformed.Load(),
		Binds:       s.binds.Load(),
		Unbinds:     s.unbinds.Load(),
		Shards:      int(s.shards.Load()),
	}
}

// Publish sends body to every node bound to shard and returns nil once
// RabbitMQ acked it. If the channel or connection drops before the ack, or
// RabbitMQ nacks, it publishes again (after a reconnect if needed) until
// Config.PublishTimeout or ctx ends, then returns an error wrapping
// ErrNotConfirmed and the last cause. A message nobody is bound for is
// acked and counted in Stats.Returned; that is not an error. Messages of one
// shard go out on one channel, so concurrent publishes to a shard reach
// the queues in the order they were sent (a republish may reorder).
func (b *Broker) Publish(ctx context.Context, shard int, body []byte) error {
	done := make(chan error, 1)
	b.PublishAsync(ctx, shard, body, func(err error) { done <- err })
	return <-done
}

// PublishAsync is Publish without the wait: done gets what Publish would
// return, exactly once, on another goroutine (or on this one, at once, for
// an invalid shard or a closed broker). done runs on the channel's send
// loop, so it must return promptly and must not publish and wait. The
// caller must not modify body until done runs. Publishes queued one after
// another on a shard are sent in that order.
func (b *Broker) PublishAsync(ctx context.Context, shard int, body []byte, done func(error)) {
	if shard < 0 {
		done(fmt.Errorf("broker: publish: negative shard %d", shard))
		return
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		done(b.publishFailed(shard, ErrClosed, nil))
		return
	}
	b.inflight.Add(1) // Done in publisher.finish
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	b.lanes[shard%len(b.lanes)].Push(&outgoing{ctx: ctx, cancel: cancel, shard: shard, body: body, done: done})
}

func (b *Broker) publishFailed(shard int, err, last error) error {
	b.stats.failed.Add(1)
	if last != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("broker: publish to shard %d: %w: %w (last attempt: %v)", shard, ErrNotConfirmed, err, last)
	}
	return fmt.Errorf("broker: publish to shard %d: %w: %w", shard, ErrNotConfirmed, err)
}

// awaitSession returns the live session, waiting for a reconnect (or for
// RabbitMQ to lift a connection block) until ctx ends or Close starts.
func (b *Broker) awaitSession(ctx context.Context) (*session, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b.mu.Lock()
		s, ready := b.sess, b.readyCh
		b.mu.Unlock()
		var wait, dead <-chan struct{}
		if s == nil {
			wait = ready
		} else if unblocked := s.blockedCh(); unblocked != nil {
			// Publishing to a blocked connection would stall in a socket
			// write that no context can interrupt; wait for the unblock.
			wait, dead = unblocked, s.dead
		} else {
			return s, nil
		}
		select {
		case <-wait:
		case <-dead:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-b.closing:
			return nil, ErrClosed
		}
	}
}

// sleep waits d, or returns early with ctx's error or ErrClosed.
func (b *Broker) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.closing:
		return ErrClosed
	}
}

// Subscribe counts one more local interest in shard. The count going from
// 0 to 1 binds the node queue to "room.<shard>" before Subscribe returns,
// so every message published to the shard afterwards reaches this node
// while it stays connected. If RabbitMQ is unreachable (or the bind fails
// because the connection just dropped), the interest is recorded, Subscribe
// returns nil and the binding is made on reconnect before the OnReconnect
// callbacks run. ctx bounds only the wait for other topology changes.
func (b *Broker) Subscribe(ctx context.Context, shard int) error {
	if shard < 0 {
		return fmt.Errorf("broker: subscribe: negative shard %d", shard)
	}
	select {
	case b.topo <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("broker: subscribe shard %d: %w", shard, ctx.Err())
	}
	defer func() { <-b.topo }()
	if b.isClosed() {
		return fmt.Errorf("broker: subscribe shard %d: %w", shard, ErrClosed)
	}
	b.refs[shard]++
	if b.refs[shard] == 1 {
		b.stats.shards.Add(1)
		b.storeSubscribed()
		b.reconcile(shard)
	}
	return nil
}

// Unsubscribe drops one interest in shard; the count reaching 0 unbinds
// the node queue from it (or, while disconnected, keeps it from being
// re-bound). An Unsubscribe without a matching Subscribe is logged and
// ignored.
func (b *Broker) Unsubscribe(shard int) {
	b.topo <- struct{}{}
	defer func() { <-b.topo }()
	n, ok := b.refs[shard]
	if !ok {
		b.log.Error("unsubscribe without subscribe", "shard", shard)
		return
	}
	if n > 1 {
		b.refs[shard] = n - 1
		return
	}
	delete(b.refs, shard)
	b.stats.shards.Add(-1)
	b.storeSubscribed()
	if !b.isClosed() {
		b.reconcile(shard)
	}
}

// storeSubscribed publishes the set of shards in refs. Caller holds topo.
func (b *Broker) storeSubscribed() {
	m := make(map[int]struct{}, len(b.refs))
	for shard := range b.refs {
		m[shard] = struct{}{}
	}
	b.subscribed.Store(&m)
}

// reconcile makes the live session's binding for shard match the
// reference count. Caller holds topo.
func (b *Broker) reconcile(shard int) {
	b.mu.Lock()
	s := b.sess
	b.mu.Unlock()
	if s == nil {
		return // applied by the next connect
	}
	want := b.refs[shard] > 0
	if want == s.bound[shard] {
		return
	}
	key := routingKey(shard)
	var err error
	if want {
		err = s.topo.QueueBind(b.queue, key, b.cfg.Exchange, false, nil)
	} else {
		err = s.topo.QueueUnbind(b.queue, key, b.cfg.Exchange, nil)
	}
	if err != nil {
		// The channel is unusable after a failed bind: reconnect, which
		// re-binds from the reference counts.
		b.log.Warn("binding change failed; reconnecting", "shard", shard, "bind", want, "err", err)
		s.fail(fmt.Errorf("bind %s: %w", key, err))
		return
	}
	if want {
		b.stats.binds.Add(1)
		s.bound[shard] = true
	} else {
		b.stats.unbinds.Add(1)
		delete(s.bound, shard)
	}
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Close stops the broker: new Publish and Subscribe calls fail with
// ErrClosed, publishes waiting for a reconnect give up, publishes waiting
// for a confirm get it (each is bounded by PublishTimeout), then the
// consumer stops (no Handler call runs after Close returns) and the
// connection closes. It is safe to call more than once and while
// reconnecting, but not from the Handler or an OnReconnect callback (it
// waits for them).
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		<-b.done
		return nil
	}
	b.closed = true
	close(b.closing)
	b.mu.Unlock()

	b.inflight.Wait()
	b.cancel()
	<-b.done
	return nil
}

// backoff returns the delay before reconnect attempt n (n >= 1): full
// jitter over an exponentially growing cap.
func (b *Broker) backoff(n int) time.Duration {
	ceil := b.cfg.ReconnectMax
	if n < 32 {
		if d := b.cfg.ReconnectMin << (n - 1); d > 0 && d < ceil {
			ceil = d
		}
	}
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil) + 1
}

// routingKey returns "room.<shard>".
func routingKey(shard int) string {
	return routingPrefix + strconv.Itoa(shard)
}

// parseShard extracts the shard from a "room.<shard>" routing key.
func parseShard(key string) (int, bool) {
	if len(key) <= len(routingPrefix) || key[:len(routingPrefix)] != routingPrefix {
		return 0, false
	}
	n := 0
	for i := len(routingPrefix); i < len(key); i++ {
		c := key[i]
		if c < '0' || c > '9' || n > (1<<31)/10 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
