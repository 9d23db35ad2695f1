package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// session is one AMQP connection with everything the broker opened on it.
// A session never recovers: when anything on it fails, the connection
// loop tears it down and builds a new one.
type session struct {
	b    *Broker
	conn *amqp.Connection
	topo *amqp.Channel   // declares, binds and consumes
	pub  []*amqp.Channel // confirm mode, shared by all publishers

	// bound is the set of shards bound on this connection's queue;
	// guarded by Broker.topo.
	bound map[int]bool
	// setupBound is how many shards the connect bound from interests
	// recorded before it (written once, before the session is returned).
	setupBound int

	failOnce sync.Once
	dead     chan struct{} // closed by fail
	err      error         // why it failed; written before dead closes

	blockMu   sync.Mutex
	unblocked chan struct{} // non-nil while RabbitMQ blocks the connection

	wg sync.WaitGroup // goroutines reading this session's notifications
}

// blockedCh returns a channel closed when RabbitMQ unblocks the
// connection, or nil if it is not blocked.
func (s *session) blockedCh() chan struct{} {
	s.blockMu.Lock()
	defer s.blockMu.Unlock()
	return s.unblocked
}

func (s *session) setBlocked(blocked bool) {
	s.blockMu.Lock()
	defer s.blockMu.Unlock()
	switch {
	case blocked && s.unblocked == nil:
		s.unblocked = make(chan struct{})
	case !blocked && s.unblocked != nil:
		close(s.unblocked)
		s.unblocked = nil
	}
}

// run is the connection loop: connect, wait for the session to fail,
// tear it down, back off, repeat until Close.
func (b *Broker) run() {
	defer close(b.done)
	everConnected := false
	failures := 0
	for {
		s, err := b.connect()
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			failures++
			d := b.backoff(failures)
			level := slog.LevelDebug
			if failures == 1 || failures%10 == 0 {
				level = slog.LevelWarn // not every attempt of a long outage
			}
			b.log.Log(b.ctx, level, "rabbitmq connect failed", "attempt", failures, "retry_in", d, "err", err)
			if !sleepCtx(b.ctx, d) {
				return
			}
			continue
		}
		failures = 0
		if everConnected {
			b.stats.reconnects.Add(1)
			b.log.Info("rabbitmq reconnected")
		} else {
			b.log.Info("rabbitmq connected", "queue", b.queue)
		}
		// Shards subscribed while there was no connection were bound only
		// now: what was routed to them meanwhile missed this node. That is
		// every reconnect, and a first connect that came after the first
		// Subscribe (a gateway takes connections before RabbitMQ answers).
		if everConnected || s.setupBound > 0 {
			b.mu.Lock()
			fs := append([]func(){}, b.reconnectFs...)
			b.mu.Unlock()
			for _, f := range fs {
				f()
			}
		}
		everConnected = true

		select {
		case <-b.ctx.Done():
			b.teardown(s, ErrClosed)
			return
		case <-s.dead:
			b.log.Warn("rabbitmq connection lost", "err", s.err)
			b.teardown(s, s.err)
		}
		// Reconnect right away only after a random pause, so a fleet of
		// nodes does not stampede a restarted RabbitMQ.
		failures = 1
		if !sleepCtx(b.ctx, b.backoff(1)) {
			return
		}
	}
}

// fail marks the session dead (once) and clears it as the broker's live
// session, so publishers wait for the next one instead of retrying on this
// one. The connection loop then closes the connection. Callers must not
// hold b.mu.
func (s *session) fail(err error) {
	s.failOnce.Do(func() {
		s.err = err
		close(s.dead)
		b := s.b
		b.mu.Lock()
		if b.sess == s {
			b.sess = nil
			b.readyCh = make(chan struct{})
		}
		b.mu.Unlock()
	})
}

// teardown closes a session's connection and waits for its goroutines
// (the consumer included, so no Handler call outlives it).
func (b *Broker) teardown(s *session, err error) {
	s.fail(err)
	// A graceful close lets RabbitMQ finish pending confirms; the
	// deadline covers a peer that no longer answers.
	_ = s.conn.CloseDeadline(time.Now().Add(2 * time.Second))
	s.wg.Wait()
}

// connect dials RabbitMQ and builds a complete session: channels,
// exchange, queue, every binding the reference counts ask for, consumer.
// The session is live (Ready) when connect returns it.
func (b *Broker) connect() (*session, error) {
	conn, err := b.dial()
	if err != nil {
		return nil, err
	}
	s := &session{b: b, conn: conn, bound: make(map[int]bool), dead: make(chan struct{})}
	// Close may come while a step below waits for RabbitMQ: closing the
	// connection makes that step fail at once.
	defer afterFunc(b.ctx, func() { _ = conn.CloseDeadline(time.Now().Add(time.Second)) })()
	if err := b.setup(s); err != nil {
		b.teardown(s, err)
		return nil, err
	}
	if b.ctx.Err() != nil {
		b.teardown(s, ErrClosed)
		return nil, ErrClosed
	}
	return s, nil
}

func (b *Broker) setup(s *session) error {
	s.watch(s.conn.NotifyClose(make(chan *amqp.Error, 1)), "connection")
	blocks := s.conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	s.wg.Go(func() {
		for bl := range blocks {
			if bl.Active {
				b.log.Warn("rabbitmq blocked the connection; publishes wait", "reason", bl.Reason)
			} else {
				b.log.Info("rabbitmq unblocked the connection")
			}
			s.setBlocked(bl.Active)
		}
		s.setBlocked(false) // wake waiting publishers; the session is gone
	})

	topo, err := s.conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	s.topo = topo
	s.watch(topo.NotifyClose(make(chan *amqp.Error, 1)), "topology channel")
	if err := topo.Qos(b.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("qos: %w", err)
	}
	if err := topo.ExchangeDeclare(b.cfg.Exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", b.cfg.Exchange, err)
	}
	args := amqp.Table{"x-max-length": int64(b.cfg.QueueMaxLength), "x-overflow": "drop-head"}
	if _, err := topo.QueueDeclare(b.queue, false, true, true, false, args); err != nil {
		return fmt.Errorf("declare queue %s: %w", b.queue, err)
	}

	for range b.cfg.PublishChannels {
		ch, err := s.conn.Channel()
		if err != nil {
			return fmt.Errorf("open channel: %w", err)
		}
		if err := ch.Confirm(false); err != nil {
			return fmt.Errorf("confirm mode: %w", err)
		}
		s.watch(ch.NotifyClose(make(chan *amqp.Error, 1)), "publish channel")
		returns := ch.NotifyReturn(make(chan amqp.Return, 64))
		s.wg.Go(func() {
			for range returns {
				b.stats.returned.Add(1)
			}
		})
		s.pub = append(s.pub, ch)
	}

	// Bind and go live under the topology lock, so no Subscribe or
	// Unsubscribe slips between the re-binding and the session becoming
	// visible to them.
	select {
	case b.topo <- struct{}{}:
	case <-b.ctx.Done():
		return ErrClosed
	}
	defer func() { <-b.topo }()
	// Re-bind without a round trip per shard (there may be hundreds): a
	// failed bind closes the channel, which the passive declare after
	// them reports, since a channel processes methods in order.
	for shard, n := range b.refs {
		if n <= 0 {
			continue
		}
		if err := topo.QueueBind(b.queue, routingKey(shard), b.cfg.Exchange, true, nil); err != nil {
			return fmt.Errorf("bind %s: %w", routingKey(shard), err)
		}
		s.bound[shard] = true
	}
	if _, err := topo.QueueDeclarePassive(b.queue, false, true, true, false, nil); err != nil {
		return fmt.Errorf("re-bind %d shards: %w", len(s.bound), err)
	}
	b.stats.binds.Add(uint64(len(s.bound)))
	s.setupBound = len(s.bound)
	deliveries, err := topo.Consume(b.queue, b.queue, false, true, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", b.queue, err)
	}
	s.wg.Go(func() { b.consume(s, deliveries) })

	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-s.dead:
		return fmt.Errorf("lost during setup: %w", s.err)
	default:
	}
	b.sess = s
	close(b.readyCh)
	return nil
}

// watch fails the session when a close notification arrives; the channel
// is closed by amqp091 when the session ends, which ends the goroutine.
func (s *session) watch(c chan *amqp.Error, what string) {
	s.wg.Go(func() {
		if e, ok := <-c; ok {
			s.fail(fmt.Errorf("%s closed: %w", what, e))
		} else {
			s.fail(fmt.Errorf("%s closed", what))
		}
	})
}

// consume hands deliveries to the Handler and acks them in batches.
func (b *Broker) consume(s *session, deliveries <-chan amqp.Delivery) {
	ackEvery := uint64(max(1, b.cfg.Prefetch/4))
	var unacked uint64
	for d := range deliveries {
		if d.Type == batchType {
			b.handleBatch(d.Body)
		} else if shard, ok := parseShard(d.RoutingKey); ok {
			b.stats.deliveries.Add(1)
			b.handler(shard, d.Body)
		} else {
			b.log.Warn("dropping delivery with unexpected routing key", "routing_key", d.RoutingKey)
		}
		if unacked++; unacked >= ackEvery {
			if err := s.topo.Ack(d.DeliveryTag, true); err != nil {
				s.fail(fmt.Errorf("ack: %w", err))
			}
			unacked = 0
		}
	}
	// The delivery stream ends with the channel (the close watchers report
	// why) or when RabbitMQ cancels the consumer, e.g. because the queue
	// was deleted: rebuild the session.
	if !s.topo.IsClosed() {
		s.fail(errors.New("consumer cancelled by RabbitMQ"))
	}
}

// handleBatch hands on the items of a batch whose shards this node is
// subscribed to; the others are for rooms of other nodes.
func (b *Broker) handleBatch(body []byte) {
	b.stats.batches.Add(1)
	subscribed := *b.subscribed.Load()
	err := splitBatch(body, func(shard int, item []byte) {
		if _, ok := subscribed[shard]; ok {
			b.stats.deliveries.Add(1)
			b.handler(shard, item)
		}
	})
	if err != nil {
		b.stats.malformed.Add(1)
		b.log.Warn("dropping the rest of a malformed batch", "err", err)
	}
}

// dial opens the AMQP connection. Close interrupts a dial or handshake in
// progress instead of waiting for DialTimeout.
func (b *Broker) dial() (*amqp.Connection, error) {
	stop := func() {}
	cfg := amqp.Config{
		Heartbeat: b.cfg.Heartbeat,
		Locale:    "en_US",
		Properties: amqp.Table{
			"connection_name": "roomcast " + b.queue,
			"product":         "roomcast",
		},
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: b.cfg.DialTimeout, KeepAlive: 30 * time.Second}
			c, err := d.DialContext(b.ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Bounds the handshake; amqp091 clears it once connected.
			if err := c.SetDeadline(time.Now().Add(b.cfg.DialTimeout)); err != nil {
				_ = c.Close()
				return nil, err
			}
			stop = afterFunc(b.ctx, func() { _ = c.Close() })
			return c, nil
		},
	}
	conn, err := amqp.DialConfig(b.cfg.URL, cfg)
	stop()
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	return conn, nil
}

// afterFunc runs f when ctx is done, like context.AfterFunc, and returns a
// stop function that also waits for f if it already started, so no
// goroutine outlives the caller.
func afterFunc(ctx context.Context, f func()) (stop func()) {
	done := make(chan struct{})
	unregister := context.AfterFunc(ctx, func() {
		defer close(done)
		f()
	})
	return func() {
		if !unregister() {
			<-done
		}
	}
}

// sleepCtx waits d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
