package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/testenv"
)

// Concurrent publishes go out in batches: fewer AMQP messages than
// publishes. Every node gets exactly the messages of the shards it is
// subscribed to (a batch carries others too), each publisher's in order.
func TestBatchesReachOnlySubscribedShards(t *testing.T) {
	t.Parallel()
	u := testenv.AMQPVHost(t)
	pub := newNode(t, u, "pub", func(c *Config) { c.PublishChannels = 1 })
	one := newNode(t, u, "one", nil)
	two := newNode(t, u, "two", nil)
	waitReady(t, pub, one, two)
	subscribe(t, one, 1)
	subscribe(t, two, 2, 3)

	const goroutines, each = 48, 40
	publishConcurrently(t, pub, goroutines, each, func(g int) int { return 1 + g%4 }) // shard 4: nobody
	per := goroutines / 4 * each
	testenv.WaitFor(t, 10*time.Second, "every subscribed message", func() bool {
		return one.rec.count(1) == per && two.rec.count(2) == per && two.rec.count(3) == per
	})
	for _, n := range []*node{one, two} {
		for shard := 1; shard <= 4; shard++ {
			checkPublisherOrder(t, n, shard)
		}
	}
	if one.rec.count(2)+one.rec.count(3)+one.rec.count(4) != 0 || two.rec.count(1)+two.rec.count(4) != 0 {
		t.Fatal("a node was handed a shard it is not subscribed to")
	}
	s := pub.Stats()
	if s.Published != goroutines*each || s.Confirmed != goroutines*each || s.Sends >= s.Published {
		t.Errorf("pub.Stats = %+v; want %d published and confirmed in fewer sends", s, goroutines*each)
	}
	if one.Stats().Batches == 0 || one.Stats().Malformed != 0 {
		t.Errorf("one.Stats = %+v; want batches received, none malformed", one.Stats())
	}
	// Deliveries count messages handed on, after the shard filter.
	if got := one.Stats().Deliveries; got != uint64(per) {
		t.Errorf("one.Deliveries = %d; want %d", got, per)
	}
}

// PublishBatch 1 sends every publish alone.
func TestPublishBatchOneSendsAlone(t *testing.T) {
	t.Parallel()
	u := testenv.AMQPVHost(t)
	pub := newNode(t, u, "pub", func(c *Config) { c.PublishChannels, c.PublishBatch = 1, 1 })
	sub := newNode(t, u, "sub", nil)
	waitReady(t, pub, sub)
	subscribe(t, sub, 0)
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			if err := pub.Publish(context.Background(), 0, fmt.Appendf(nil, "%d", i)); err != nil {
				t.Errorf("Publish: %v", err)
			}
		})
	}
	wg.Wait()
	testenv.WaitFor(t, 10*time.Second, "every message", func() bool { return sub.rec.count(0) == 64 })
	if s := pub.Stats(); s.Sends != 64 || s.Published != 64 {
		t.Errorf("pub.Stats = %+v; want 64 sends of one publish", s)
	}
	if s := sub.Stats(); s.Batches != 0 || s.Deliveries != 64 {
		t.Errorf("sub.Stats = %+v; want 64 deliveries, no batch", s)
	}
}

func TestPublishAsyncAnswersOnce(t *testing.T) {
	t.Parallel()
	u := testenv.AMQPVHost(t)
	a := newNode(t, u, "a", nil)
	waitReady(t, a)
	subscribe(t, a, 5)
	done := make(chan error, 2)
	a.PublishAsync(context.Background(), 5, []byte("async"), func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("PublishAsync: %v", err)
	}
	testenv.WaitFor(t, 5*time.Second, "delivery", func() bool { return a.rec.has(5, "async") })
	a.PublishAsync(context.Background(), -1, nil, func(err error) { done <- err })
	if err := <-done; err == nil {
		t.Fatal("PublishAsync to a negative shard succeeded")
	}
	select {
	case err := <-done:
		t.Fatalf("done called again: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a.PublishAsync(context.Background(), 5, []byte("late"), func(err error) { done <- err })
	if err := <-done; !errors.Is(err, ErrClosed) || !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("PublishAsync after Close = %v; want ErrNotConfirmed and ErrClosed", err)
	}
}

func TestSplitBatchRoundTrip(t *testing.T) {
	items := []struct {
		shard int
		body  string
	}{{0, "a"}, {255, ""}, {1 << 20, strings.Repeat("x", 300)}, {7, "\x00\xff"}}
	var b []byte
	for _, it := range items {
		b = appendItem(b, it.shard, []byte(it.body))
	}
	i := 0
	err := splitBatch(b, func(shard int, body []byte) {
		if shard != items[i].shard || string(body) != items[i].body {
			t.Errorf("item %d = %d %q; want %d %q", i, shard, body, items[i].shard, items[i].body)
		}
		i++
	})
	if err != nil || i != len(items) {
		t.Fatalf("splitBatch: %v after %d items", err, i)
	}
	for _, bad := range [][]byte{{0x80}, {1, 5, 'a'}, {1}, bytes.Repeat([]byte{0xff}, 11), {0x80, 0x00, 0}} {
		if err := splitBatch(bad, func(int, []byte) {}); !errors.Is(err, errBadBatch) {
			t.Errorf("splitBatch(%x) = %v; want errBadBatch", bad, err)
		}
	}
}

// FuzzSplitBatch: a batch body from the wire never panics, hands on only
// bodies inside it, and what it hands on encodes back to a prefix of it.
func FuzzSplitBatch(f *testing.F) {
	f.Add([]byte{})
	f.Add(appendItem(appendItem(nil, 3, []byte("hello")), 300, nil))
	f.Add([]byte{1, 5, 'a'})
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var again []byte
		err := splitBatch(b, func(shard int, body []byte) {
			if shard < 0 || shard > maxShard {
				t.Fatalf("shard %d out of range", shard)
			}
			again = appendItem(again, shard, body)
		})
		if !bytes.HasPrefix(b, again) {
			t.Fatalf("items re-encode to %x, not a prefix of %x", again, b)
		}
		if err == nil && len(again) != len(b) {
			t.Fatalf("no error, but items cover %d of %d bytes", len(again), len(b))
		}
	})
}
