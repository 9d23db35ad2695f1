package broker

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/roomcast/roomcast/pkg/testenv"
)

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	h := func(int, []byte) {}
	const secretURL = "amqp://guest:s3cr3t@127.0.0.1:5672/%zz"
	for name, tc := range map[string]struct {
		cfg Config
		h   Handler
	}{
		"no URL":           {Config{NodeID: "n"}, h},
		"bad URL":          {Config{URL: secretURL, NodeID: "n"}, h},
		"no NodeID":        {Config{URL: "amqp://127.0.0.1/"}, h},
		"nil handler":      {Config{URL: "amqp://127.0.0.1/", NodeID: "n"}, nil},
		"negative timeout": {Config{URL: "amqp://127.0.0.1/", NodeID: "n", PublishTimeout: -1}, h},
		"max below min":    {Config{URL: "amqp://127.0.0.1/", NodeID: "n", ReconnectMin: time.Second, ReconnectMax: time.Millisecond}, h},
	} {
		b, err := New(tc.cfg, nil, tc.h)
		if err == nil {
			_ = b.Close()
			t.Errorf("%s: New succeeded", name)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: error leaks the password: %v", name, err)
		}
	}
}

func TestParseShard(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]int{"room.0": 0, "room.7": 7, "room.255": 255, "room.123456": 123456} {
		if got, ok := parseShard(key); !ok || got != want {
			t.Errorf("parseShard(%q) = %d, %v; want %d", key, got, ok, want)
		}
		if routingKey(want) != key {
			t.Errorf("routingKey(%d) = %q; want %q", want, routingKey(want), key)
		}
	}
	for _, key := range []string{"", "room.", "room.x", "room.-1", "rooms.1", "room.1.2", "room.99999999999999999999"} {
		if _, ok := parseShard(key); ok {
			t.Errorf("parseShard(%q) accepted", key)
		}
	}
}

// Each node receives the shards it subscribed to and nothing else; both
// receive a shard both subscribed to.
func TestRoutingBetweenNodes(t *testing.T) {
	t.Parallel()
	u := testenv.AMQPVHost(t)
	a := newNode(t, u, "a", nil)
	b := newNode(t, u, "b", nil)
	waitReady(t, a, b)
	subscribe(t, a, 1, 3)
	subscribe(t, b, 2, 3)

	publish(t, a, 1, "to-a")
	publish(t, a, 2, "to-b") // confirmed, so routed before the next publish
	publish(t, b, 3, "to-both")
	testenv.WaitFor(t, 5*time.Second, "a gets shards 1 and 3", func() bool {
		return a.rec.has(1, "to-a") && a.rec.has(3, "to-both")
	})
	testenv.WaitFor(t, 5*time.Second, "b gets shards 2 and 3", func() bool {
		return b.rec.has(2, "to-b") && b.rec.has(3, "to-both")
	})
	// "to-both" was published after the others were confirmed, and a
	// node's queue keeps order: had a foreign shard reached it, it would
	// already be there.
	if a.rec.hasAny("to-b") || b.rec.hasAny("to-a") {
		t.Fatalf("a node received a shard it did not subscribe to: a=%v b=%v", a.rec.get(2), b.rec.get(1))
	}
	if got := b.Stats().Deliveries; got != 2 {
		t.Errorf("b.Deliveries = %d; want 2", got)
	}
	if got := a.Stats(); got.Confirmed != 2 || got.Published != 2 || got.Shards != 2 || got.Binds != 2 {
		t.Errorf("a.Stats = %+v; want 2 published and confirmed, 2 shards, 2 binds", got)
	}
}

// Subscribe is counted: two subscribes and one unsubscribe leave the
// shard bound; the last unsubscribe unbinds it and stops delivery.
func TestSubscribeRefcountAndUnsubscribe(t *testing.T) {
	t.Parallel()
	u := testenv.AMQPVHost(t)
	a := newNode(t, u, "a", nil)
	b := newNode(t, u, "b", nil)
	waitReady(t, a, b)
	subscribe(t, a, 5, 5, 6)
	subscribe(t, b, 5)
	a.Unsubscribe(5)
	if got := boundShards(t, u, "roomcast.node.a"); !slices.Equal(got, []string{"room.5", "room.6"}) {
		t.Fatalf("after 2 subscribes and 1 unsubscribe, bindings = %v; want room.5 and room.6", got)
	}
	publish(t, b, 5, "m1")
	testenv.WaitFor(t, 5*time.Second, "a still receives shard 5", func() bool { return a.rec.has(5, "m1") })

	a.Unsubscribe(5)
	if got := boundShards(t, u, "roomcast.node.a"); !slices.Equal(got, []string{"room.6"}) {
		t.Fatalf("after the last unsubscribe, bindings = %v; want room.6 only", got)
	}
	publish(t, b, 5, "m2")
	publish(t, b, 6, "marker")
	testenv.WaitFor(t, 5*time.Second, "a gets the marker", func() bool { return a.rec.has(6, "marker") })
	testenv.WaitFor(t, 5*time.Second, "b gets m2", func() bool { return b.rec.has(5, "m2") })
	if a.rec.has(5, "m2") {
		t.Fatal("a received shard 5 after unsubscribing")
	}

	// An unmatched Unsubscribe is ignored and logged, not a negative count.
	a.Unsubscribe(5)
	if !a.log.contains("unsubscribe without subscribe") {
		t.Error("unmatched Unsubscribe was not logged")
	}
	subscribe(t, a, 5)
	if got := boundShards(t, u, "roomcast.node.a"); !slices.Equal(got, []string{"room.5", "room.6"}) {
		t.Fatalf("re-subscribe after a stray unsubscribe: bindings = %v", got)
	}
	if s := a.Stats(); s.Binds != 3 || s.Unbinds != 1 || s.Shards != 2 {
		t.Errorf("a.Stats = %+v; want 3 binds, 1 unbind, 2 shards", s)
	}
}

// One publisher's messages arrive in order within a shard; many
// concurrent publishers all get confirms and every message arrives.
func TestOrderAndConcurrentPublishers(t *testing.T) {
	t.Parallel()
	u := testenv.AMQPVHost(t)
	pub := newNode(t, u, "pub", nil)
	sub := newNode(t, u, "sub", nil)
	waitReady(t, pub, sub)
	subscribe(t, sub, 0, 1, 2, 3)

	const n = 2000
	for i := range n {
		publish(t, pub, 0, strconv.Itoa(i))
	}
	testenv.WaitFor(t, 10*time.Second, "all sequential messages", func() bool { return sub.rec.count(0) == n })
	for i, m := range sub.rec.get(0) {
		if m != strconv.Itoa(i) {
			t.Fatalf("shard 0 message %d is %q: order broken", i, m)
		}
	}

	const goroutines, each = 32, 100
	publishConcurrently(t, pub, goroutines, each, func(g int) int { return 1 + g%3 })
	testenv.WaitFor(t, 10*time.Second, "all concurrent messages", func() bool {
		return sub.rec.count(1)+sub.rec.count(2)+sub.rec.count(3) == goroutines*each
	})
	for shard := 1; shard <= 3; shard++ {
		checkPublisherOrder(t, sub, shard)
	}
	if s := pub.Stats(); s.Confirmed != n+goroutines*each || s.Failed != 0 {
		t.Errorf("pub.Stats = %+v; want %d confirmed, 0 failed", s, n+goroutines*each)
	}
}

// Racing Subscribe/Unsubscribe calls leave a shard bound exactly when its
// count is positive.
func TestSubscribeUnsubscribeRace(t *testing.T) {
	t.Parallel()
	u := testenv.AMQPVHost(t)
	a := newNode(t, u, "a", nil)
	waitReady(t, a)

	const shards, workers, ops = 8, 16, 200
	final := make([][shards]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			held := &final[w]
			for range ops {
				s := r.IntN(shards)
				if held[s] > 0 && r.IntN(2) == 0 {
					a.Unsubscribe(s)
					held[s]--
				} else {
					if err := a.Subscribe(context.Background(), s); err != nil {
						t.Errorf("Subscribe: %v", err)
						return
					}
					held[s]++
				}
			}
			// Drop everything on some shards so both outcomes occur.
			for s := range shards {
				if s%2 == 0 {
					for ; held[s] > 0; held[s]-- {
						a.Unsubscribe(s)
					}
				}
			}
		})
	}
	wg.Wait()
	var want []string
	for s := range shards {
		total := 0
		for w := range workers {
			total += final[w][s]
		}
		if total > 0 {
			want = append(want, routingKey(s))
		}
	}
	slices.Sort(want)
	if len(want) == 0 || len(want) == shards {
		t.Fatalf("test did not produce both bound and unbound shards: %v", want)
	}
	if got := boundShards(t, u, "roomcast.node.a"); !slices.Equal(got, want) {
		t.Fatalf("bindings = %v; want %v", got, want)
	}
	if got := a.Stats().Shards; got != len(want) {
		t.Fatalf("Stats.Shards = %d; want %d", got, len(want))
	}
}

// A gateway starts while RabbitMQ refuses it: Publish fails within its
// timeout, Subscribe records the intent, and once RabbitMQ accepts the
// connection the binding is made and traffic flows.
func TestStartWhileUnavailable(t *testing.T) {
	t.Parallel()
	vhost := testenv.RandomName("rc-test-")
	u := strings.TrimSuffix(testenv.AMQPBaseURL(), "/") + "/" + vhost // vhost does not exist yet
	a := newNode(t, u, "a", func(c *Config) {
		c.PublishTimeout = 300 * time.Millisecond
		c.ReconnectMax = 200 * time.Millisecond
	})
	var reconnects atomic.Int32
	a.OnReconnect(func() { reconnects.Add(1) })

	err := a.Publish(context.Background(), 4, []byte("early"))
	if !errors.Is(err, ErrNotConfirmed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish while unavailable = %v; want ErrNotConfirmed and DeadlineExceeded", err)
	}
	if a.Ready() {
		t.Fatal("Ready while the vhost does not exist")
	}
	subscribe(t, a, 4)
	testenv.WaitFor(t, 5*time.Second, "failed connect logged", func() bool { return a.log.contains("connect failed") })

	rabbitmqctl(t, "add_vhost", vhost)
	t.Cleanup(func() { rabbitmqctl(t, "delete_vhost", vhost) })
	rabbitmqctl(t, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
	waitReady(t, a)
	if got := boundShards(t, u, "roomcast.node.a"); !slices.Equal(got, []string{"room.4"}) {
		t.Fatalf("bindings after first connect = %v; want room.4", got)
	}
	publish(t, a, 4, "late")
	testenv.WaitFor(t, 5*time.Second, "delivery after connect", func() bool { return a.rec.has(4, "late") })
	// Shard 4 was subscribed before the first connect, so what was routed
	// to it before the binding missed the node: the callbacks (the
	// gateway's re-sync from Redis) run once, though it is no reconnect.
	testenv.WaitFor(t, 5*time.Second, "OnReconnect after a first connect with deferred bindings", func() bool { return reconnects.Load() == 1 })
	if a.Stats().Reconnects != 0 {
		t.Fatalf("Stats.Reconnects = %d after the first connect", a.Stats().Reconnects)
	}
	if a.Stats().Failed != 1 {
		t.Errorf("Stats.Failed = %d; want 1", a.Stats().Failed)
	}
}

// A forced connection close (as an operator or a RabbitMQ node going away
// would do) is survived: Ready drops, the node reconnects, its bindings come
// back before OnReconnect runs, and traffic flows again.
func TestReconnectAfterConnectionClosed(t *testing.T) {
	t.Parallel()
	u := testenv.AMQPVHost(t)
	a := newNode(t, u, "a", nil)
	b := newNode(t, u, "b", nil)
	waitReady(t, a, b)
	subscribe(t, a, 1, 2)
	subscribe(t, b, 9)
	a.Unsubscribe(2) // must not come back after the reconnect
	wantBound := []string{"room.1"}
	for s := 100; s < 150; s++ { // many shards: re-bound in one pipeline
		subscribe(t, a, s)
		wantBound = append(wantBound, routingKey(s))
	}
	slices.Sort(wantBound)

	var aBound []string
	var aBoundErr error
	aReconnected := make(chan struct{})
	a.OnReconnect(func() {
		aBound, aBoundErr = boundShardsErr(u, "roomcast.node.a")
		close(aReconnected)
	})
	var bReconnects atomic.Int32
	b.OnReconnect(func() { bReconnects.Add(1) })

	// Keep the nodes out while they are disconnected: revoke access, then
	// close their connections.
	vhost := vhostOf(t, u)
	rabbitmqctl(t, "clear_permissions", "-p", vhost, "guest")
	rabbitmqctl(t, "close_all_connections", "-p", vhost, "test: forced close")
	testenv.WaitFor(t, 5*time.Second, "a not ready after losing its connection", func() bool { return !a.Ready() })
	// Interest registered while disconnected is bound on reconnect.
	subscribe(t, a, 7)
	wantBound = append(wantBound, "room.7")
	slices.Sort(wantBound)
	testenv.WaitFor(t, 5*time.Second, "a reconnect attempt refused", func() bool {
		return a.log.contains("access to vhost")
	})
	if a.Ready() {
		t.Fatal("a is ready although access is revoked")
	}
	rabbitmqctl(t, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
	select {
	case <-aReconnected:
	case <-time.After(15 * time.Second):
		t.Fatal("OnReconnect did not fire on a")
	}
	testenv.WaitFor(t, 15*time.Second, "b reconnects", func() bool { return bReconnects.Load() == 1 && b.Ready() })
	if !a.Ready() {
		t.Error("Ready is false after OnReconnect")
	}
	if aBoundErr != nil || !slices.Equal(aBound, wantBound) {
		t.Errorf("bindings when OnReconnect ran = %v (%v); want %v", aBound, aBoundErr, wantBound)
	}
	publish(t, b, 1, "after")
	publish(t, b, 7, "after")
	testenv.WaitFor(t, 5*time.Second, "traffic after reconnect", func() bool {
		return a.rec.has(1, "after") && a.rec.has(7, "after")
	})
	if got := a.Stats(); got.Reconnects != 1 || got.Binds != 2+50+52 || got.Unbinds != 1 {
		t.Errorf("a.Stats = %+v; want 1 reconnect, 104 binds, 1 unbind", got)
	}
}

// A channel-level error (publishing to an exchange someone deleted) is
// survived: the publish is retried on a new connection that re-declares
// the exchange and re-binds, and it is delivered.
func TestChannelErrorRecovers(t *testing.T) {
	t.Parallel()
	u := testenv.AMQPVHost(t)
	a := newNode(t, u, "a", nil)
	waitReady(t, a)
	subscribe(t, a, 3)
	reconnected := make(chan struct{}, 1)
	a.OnReconnect(func() { reconnected <- struct{}{} })

	if err := rawChannel(t, u).ExchangeDelete(DefaultExchange, false, false); err != nil {
		t.Fatalf("delete exchange: %v", err)
	}
	publish(t, a, 3, "after-delete")
	testenv.WaitFor(t, 10*time.Second, "delivery after channel error", func() bool { return a.rec.has(3, "after-delete") })
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("OnReconnect did not fire")
	}
	if s := a.Stats(); s.Republished == 0 || s.Reconnects != 1 {
		t.Errorf("Stats = %+v; want a republish and 1 reconnect", s)
	}
}

// A nack is retried, and Publish fails with ErrNotConfirmed if RabbitMQ
// keeps nacking.
func TestNackRetriesThenFails(t *testing.T) {
	t.Parallel()
	u := testenv.AMQPVHost(t)
	a := newNode(t, u, "a", func(c *Config) { c.PublishTimeout = 500 * time.Millisecond })
	waitReady(t, a)
	// A full queue with reject-publish makes RabbitMQ nack what is routed to it.
	ch := rawChannel(t, u)
	if _, err := ch.QueueDeclare("full", false, true, false, false,
		amqp.Table{"x-max-length": int64(1), "x-overflow": "reject-publish"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("full", "room.7", DefaultExchange, false, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, a, 7, "fills the queue")
	err := a.Publish(context.Background(), 7, []byte("rejected"))
	if !errors.Is(err, ErrNotConfirmed) || !strings.Contains(err.Error(), "nacked") {
		t.Fatalf("Publish to a rejecting queue = %v; want ErrNotConfirmed after nacks", err)
	}
	if s := a.Stats(); s.Nacked < 2 || s.Republished == 0 || s.Failed != 1 {
		t.Errorf("Stats = %+v; want several nacks, republishes, 1 failure", s)
	}
	if !a.Ready() {
		t.Error("a nack must not drop the connection")
	}
}

// A message no node is bound for is acked (not an error) and counted.
func TestUnroutableIsReturnedNotFailed(t *testing.T) {
	t.Parallel()
	u := testenv.AMQPVHost(t)
	a := newNode(t, u, "a", nil)
	waitReady(t, a)
	publish(t, a, 42, "nobody listens")
	testenv.WaitFor(t, 5*time.Second, "return counted", func() bool { return a.Stats().Returned == 1 })
}

// The node queue is capped with drop-head, and a stalled handler holds at
// most Prefetch messages: the backlog stays in RabbitMQ, where the cap
// drops the oldest, and the newest still arrive.
func TestQueueMaxLengthDropsOldest(t *testing.T) {
	t.Parallel()
	u := testenv.AMQPVHost(t)
	release := make(chan struct{})
	var got []string
	var mu sync.Mutex
	stalled := make(chan struct{}, 1)
	log, _ := newTestLogger(t)
	b, err := New(Config{URL: u, NodeID: "slow", QueueMaxLength: 5, Prefetch: 1}, log, func(_ int, body []byte) {
		mu.Lock()
		got = append(got, string(body))
		mu.Unlock()
		select {
		case stalled <- struct{}{}:
			<-release
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	var releaseOnce sync.Once
	unstall := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unstall) // runs before Close even if the test fails
	pub := newNode(t, u, "pub", nil)
	n := &node{Broker: b}
	waitReady(t, n, pub)
	subscribe(t, n, 0)

	publish(t, pub, 0, "0")
	<-stalled // the handler now holds message 0
	const total = 50
	for i := 1; i < total; i++ {
		publish(t, pub, 0, strconv.Itoa(i))
	}
	unstall()
	last := strconv.Itoa(total - 1)
	testenv.WaitFor(t, 5*time.Second, "the newest message arrives", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(got, last)
	})
	mu.Lock()
	defer mu.Unlock()
	// 1 held by the handler + at most 1 prefetched + 5 queued.
	if len(got) > 7 {
		t.Fatalf("received %d of %d messages (%v); the queue cap did not drop the oldest", len(got), total, got)
	}
	t.Logf("received %v", got)
}

// Close interrupts a connection attempt stuck in the handshake and a
// Publish waiting for a connection, and leaves no goroutine behind (see
// TestMain).
func TestCloseWhileConnecting(t *testing.T) {
	t.Parallel()
	// A server that accepts TCP and never speaks AMQP.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		for c := range accepted {
			_ = c.Close()
		}
	})
	log, _ := newTestLogger(t)
	b, err := New(Config{
		URL:            "amqp://guest:guest@" + ln.Addr().String() + "/",
		NodeID:         "stuck",
		DialTimeout:    time.Minute,
		PublishTimeout: time.Minute,
	}, log, func(int, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-accepted:
		accepted <- c // keep it for cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("broker never dialed")
	}
	pubErr := make(chan error, 1)
	go func() { pubErr <- b.Publish(context.Background(), 1, []byte("x")) }()
	if err := b.Subscribe(context.Background(), 1); err != nil {
		t.Fatalf("Subscribe while connecting: %v", err)
	}

	closed := make(chan struct{})
	go func() {
		_ = b.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the stuck handshake")
	}
	if err := <-pubErr; !errors.Is(err, ErrNotConfirmed) || !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish during Close = %v; want ErrNotConfirmed and ErrClosed", err)
	}
	if b.Ready() {
		t.Fatal("Ready after Close")
	}
}

// Close during the reconnect backoff returns at once.
func TestCloseDuringBackoff(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // now refuses connections
	a := newNode(t, "amqp://guest:guest@"+addr+"/", "refused", func(c *Config) {
		c.ReconnectMin, c.ReconnectMax = time.Minute, time.Minute
	})
	testenv.WaitFor(t, 5*time.Second, "failed connect logged", func() bool { return a.log.contains("connect failed") })
	closed := make(chan struct{})
	go func() {
		_ = a.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the backoff")
	}
}

// After Close: no Handler call, Publish and Subscribe fail with ErrClosed,
// a second Close is harmless.
func TestCloseStopsEverything(t *testing.T) {
	t.Parallel()
	u := testenv.AMQPVHost(t)
	var closedAt atomic.Bool
	var lateCalls atomic.Int32
	log, _ := newTestLogger(t)
	a, err := New(Config{URL: u, NodeID: "a"}, log, func(int, []byte) {
		if closedAt.Load() {
			lateCalls.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := newNode(t, u, "pub", nil)
	an := &node{Broker: a}
	waitReady(t, an, pub)
	subscribe(t, an, 0)

	// Keep traffic flowing into a while it closes.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := pub.Publish(context.Background(), 0, []byte(strconv.Itoa(i))); err != nil {
				t.Errorf("Publish: %v", err)
				return
			}
		}
	})
	testenv.WaitFor(t, 5*time.Second, "deliveries flowing", func() bool { return a.Stats().Deliveries > 10 })
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closedAt.Store(true)
	testenv.WaitFor(t, 5*time.Second, "more traffic published after Close", func() bool {
		return pub.Stats().Confirmed > a.Stats().Deliveries+10
	})
	close(stop)
	wg.Wait()
	if n := lateCalls.Load(); n != 0 {
		t.Fatalf("%d Handler calls after Close returned", n)
	}
	if err := a.Publish(context.Background(), 0, nil); !errors.Is(err, ErrClosed) || !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("Publish after Close = %v", err)
	}
	if err := a.Subscribe(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close = %v", err)
	}
	a.Unsubscribe(0) // harmless
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if a.Ready() {
		t.Fatal("Ready after Close")
	}
}

// Subscribe gives up waiting for the topology lock when its context ends.
func TestSubscribeHonoursContext(t *testing.T) {
	t.Parallel()
	a := newNode(t, "amqp://guest:guest@127.0.0.1:1/", "ctx", nil)
	a.topo <- struct{}{} // someone else is changing topology
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := a.Subscribe(ctx, 1)
	<-a.topo
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Subscribe = %v; want DeadlineExceeded", err)
	}
	if a.Stats().Shards != 0 {
		t.Fatal("a Subscribe that gave up was counted")
	}
}
