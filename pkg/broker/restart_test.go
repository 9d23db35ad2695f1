//go:build disruptive

// These tests stop or throttle the shared RabbitMQ. They run only with
// -tags disruptive, serially (-p 1), and always restore the server.
//
//	go test -tags disruptive -p 1 -run 'Restart|Disruptive' ./broker/ -count=1

package broker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/testenv"
)

// restartApp makes sure RabbitMQ runs again when the test ends, pass or fail.
func restartApp(t *testing.T) {
	t.Cleanup(func() {
		rabbitmqctl(t, "start_app")
		rabbitmqctl(t, "await_startup")
		if out := rabbitmqctl(t, "status"); !strings.Contains(out, "RabbitMQ version") {
			t.Errorf("rabbitmqctl status after start_app looks wrong:\n%s", out)
		}
	})
}

type publishResult struct {
	seq        int
	start, end time.Time
	err        error
}

// readyWatch records whether a broker's Ready went false and back to true.
type readyWatch struct {
	wentDown, cameBack atomic.Bool
}

func watchReady(t *testing.T, n *node) *readyWatch {
	w := &readyWatch{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			r := n.Ready()
			if !r {
				w.wentDown.Store(true)
			} else if w.wentDown.Load() {
				w.cameBack.Store(true)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return w
}

// A RabbitMQ restart (stop_app / start_app) is survived: both nodes go
// not-ready and come back, OnReconnect fires, traffic flows within 10s of
// start_app, no Publish outlives PublishTimeout, and every message acked
// after the subscriber recovered is delivered. Messages acked but lost
// inside RabbitMQ's non-durable queues around the restart are counted and
// logged (the gateway fills those gaps from Redis).
func TestRestartRabbitMQ(t *testing.T) {
	u := testenv.AMQPVHost(t)
	restartApp(t) // registered after the vhost: runs before its deletion
	const publishTimeout = 2 * time.Second
	cfg := func(c *Config) {
		c.PublishTimeout = publishTimeout
		c.ReconnectMax = 5 * time.Second // the production default
	}
	pub := newNode(t, u, "pub", cfg)
	sub := newNode(t, u, "sub", cfg)
	waitReady(t, pub, sub)
	subscribe(t, sub, 1)
	pubWatch, subWatch := watchReady(t, pub), watchReady(t, sub)
	var pubReconnected atomic.Bool
	pub.OnReconnect(func() { pubReconnected.Store(true) })
	var subRecoveredAt atomic.Pointer[time.Time]
	sub.OnReconnect(func() {
		now := time.Now()
		subRecoveredAt.Store(&now)
	})

	// One publisher goroutine, sequential, like a room's publish path.
	var mu sync.Mutex
	var results []publishResult
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			r := publishResult{seq: seq, start: time.Now()}
			r.err = pub.Publish(context.Background(), 1, []byte(strconv.Itoa(seq)))
			r.end = time.Now()
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
			if r.err != nil && !errors.Is(r.err, ErrNotConfirmed) {
				t.Errorf("Publish error does not wrap ErrNotConfirmed: %v", r.err)
			}
		}
	})
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	})

	testenv.WaitFor(t, 10*time.Second, "traffic before the stop", func() bool { return sub.rec.count(1) >= 200 })
	stoppedAt := time.Now()
	rabbitmqctl(t, "stop_app")
	testenv.WaitFor(t, 15*time.Second, "both nodes not ready", func() bool { return !pub.Ready() && !sub.Ready() })
	subscribe(t, sub, 2) // recorded while down, bound on reconnect
	// Let publishes run into the outage until one has failed.
	testenv.WaitFor(t, 3*publishTimeout, "a Publish fails during the outage", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range results {
			if r.err != nil {
				return true
			}
		}
		return false
	})
	rabbitmqctl(t, "start_app")
	startedAt := time.Now()

	seqAtStart := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(results)
	}()
	testenv.WaitFor(t, 10*time.Second, "traffic flows again within 10s of start_app", func() bool {
		msgs := sub.rec.get(1)
		return len(msgs) > 0 && atoi(t, msgs[len(msgs)-1]) > seqAtStart
	})
	t.Logf("traffic resumed %v after start_app returned", time.Since(startedAt).Round(time.Millisecond))
	testenv.WaitFor(t, 10*time.Second, "OnReconnect on both", func() bool {
		return pubReconnected.Load() && subRecoveredAt.Load() != nil
	})
	recovered := *subRecoveredAt.Load()
	publish(t, pub, 2, "subscribed while down")
	testenv.WaitFor(t, 5*time.Second, "shard subscribed during the outage delivers", func() bool {
		return sub.rec.has(2, "subscribed while down")
	})
	// More traffic after recovery, then stop and let it drain.
	testenv.WaitFor(t, 10*time.Second, "traffic after recovery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range results {
			if r.start.After(recovered) && r.err == nil {
				n++
			}
		}
		return n >= 200
	})
	close(stop)
	wg.Wait()
	lastAcked := -1
	for _, r := range results {
		if r.err == nil {
			lastAcked = r.seq
		}
	}
	testenv.WaitFor(t, 10*time.Second, "last acked message delivered", func() bool {
		return sub.rec.has(1, strconv.Itoa(lastAcked))
	})

	delivered := map[int]int{}
	for _, m := range sub.rec.get(1) {
		delivered[atoi(t, m)]++
	}
	var acked, failed, dups int
	lost := map[string]int{}
	var maxDur time.Duration
	for _, r := range results {
		maxDur = max(maxDur, r.end.Sub(r.start))
		if r.err != nil {
			failed++
			continue
		}
		acked++
		if delivered[r.seq] > 1 {
			dups++
		}
		if delivered[r.seq] > 0 {
			continue
		}
		switch {
		case r.start.After(recovered):
			lost["after subscriber recovered"]++
			t.Errorf("message %d acked after the subscriber recovered was not delivered", r.seq)
		case r.start.Before(stoppedAt):
			lost["before stop_app"]++
		default:
			lost["between stop_app and subscriber recovery"]++
		}
	}
	t.Logf("publishes: %d acked, %d failed (outage %v); acked but lost: %v; delivered twice: %d; longest Publish %v",
		acked, failed, recovered.Sub(stoppedAt).Round(time.Millisecond), lost, dups, maxDur.Round(time.Millisecond))
	t.Logf("pub stats %+v", pub.Stats())
	t.Logf("sub stats %+v", sub.Stats())

	if maxDur > publishTimeout+time.Second {
		t.Errorf("a Publish took %v; PublishTimeout is %v", maxDur, publishTimeout)
	}
	if failed == 0 {
		t.Error("no Publish failed although RabbitMQ was down")
	}
	for name, w := range map[string]*readyWatch{"pub": pubWatch, "sub": subWatch} {
		if !w.wentDown.Load() || !w.cameBack.Load() {
			t.Errorf("%s: Ready went false: %v, came back: %v", name, w.wentDown.Load(), w.cameBack.Load())
		}
	}
	if pub.Stats().Reconnects != 1 || sub.Stats().Reconnects != 1 {
		t.Errorf("reconnects: pub %d, sub %d; want 1 each", pub.Stats().Reconnects, sub.Stats().Reconnects)
	}
}

// A memory alarm makes RabbitMQ block publishing connections: the broker
// logs it, Publish gives up within PublishTimeout instead of hanging, and
// traffic resumes when the alarm clears.
func TestDisruptiveBlockedConnection(t *testing.T) {
	u := testenv.AMQPVHost(t)
	watermark := strings.TrimSpace(rabbitmqctl(t, "eval", "vm_memory_monitor:get_vm_memory_high_watermark()."))
	if _, err := strconv.ParseFloat(watermark, 64); err != nil {
		t.Fatalf("cannot restore a watermark of %q; refusing to change it", watermark)
	}
	t.Cleanup(func() { rabbitmqctl(t, "set_vm_memory_high_watermark", watermark) })
	const publishTimeout = time.Second
	a := newNode(t, u, "a", func(c *Config) { c.PublishTimeout = publishTimeout })
	waitReady(t, a)
	subscribe(t, a, 1)
	publish(t, a, 1, "before")

	rabbitmqctl(t, "set_vm_memory_high_watermark", "0.0000001")
	var longest time.Duration
	var failures int
	testenv.WaitFor(t, 20*time.Second, "blocked connection logged", func() bool {
		start := time.Now()
		if err := a.Publish(context.Background(), 1, []byte("during")); err != nil {
			failures++
			if !errors.Is(err, ErrNotConfirmed) {
				t.Fatalf("Publish while blocked = %v; want ErrNotConfirmed", err)
			}
		}
		longest = max(longest, time.Since(start))
		return a.log.contains("blocked the connection")
	})
	start := time.Now()
	err := a.Publish(context.Background(), 1, []byte("while blocked"))
	longest = max(longest, time.Since(start))
	if !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("Publish on a blocked connection = %v; want ErrNotConfirmed", err)
	}
	if longest > publishTimeout+time.Second {
		t.Errorf("a Publish took %v while blocked; PublishTimeout is %v", longest, publishTimeout)
	}
	if !a.Ready() {
		t.Error("a blocked connection is still connected: Ready should stay true")
	}

	rabbitmqctl(t, "set_vm_memory_high_watermark", watermark)
	testenv.WaitFor(t, 20*time.Second, "unblocked", func() bool { return a.log.contains("unblocked the connection") })
	publish(t, a, 1, "after")
	testenv.WaitFor(t, 5*time.Second, "delivery after unblock", func() bool { return a.rec.has(1, "after") })
	t.Logf("failed publishes while blocked: %d; longest Publish %v; stats %+v", failures+1, longest, a.Stats())
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("bad body %q", s)
	}
	return n
}
