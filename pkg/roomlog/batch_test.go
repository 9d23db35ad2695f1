package roomlog

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/protocol"
)

type appendResult struct {
	pos protocol.Position
	dup bool
	err error
}

// appendAll queues the appends without waiting between them (as a
// connection's read loop does) and returns their results in call order.
func appendAll(l *Log, calls [][3]string) []appendResult {
	res := make([]appendResult, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Add(1)
		l.AppendAsync(context.Background(), "a", c[0], []byte(c[1]), c[2], func(pos protocol.Position, dup bool, err error) {
			res[i] = appendResult{pos, dup, err}
			wg.Done()
		})
	}
	wg.Wait()
	return res
}

// Appends queued back to back over several rooms get each room's offsets
// in call order, are stored as queued, and share round trips.
func TestAppendAsyncKeepsEachRoomsOrder(t *testing.T) {
	t.Parallel()
	l, _ := newLog(t, Config{Pipelines: 2, Batch: 16})
	var calls [][3]string
	for i := range 300 {
		calls = append(calls, [3]string{fmt.Sprintf("r%d", i%5), fmt.Sprintf("m%d", i), ""})
	}
	res := appendAll(l, calls)
	next := map[string]uint64{}
	epoch := map[string]string{}
	for i, r := range res {
		if r.err != nil || r.dup {
			t.Fatalf("append %d: %+v", i, r)
		}
		room := calls[i][0]
		next[room]++
		epoch[room] = r.pos.Epoch
		if r.pos.Offset != next[room] {
			t.Fatalf("append %d to %s got offset %d, want %d", i, room, r.pos.Offset, next[room])
		}
	}
	for room, n := range next {
		entries, err := l.Range(context.Background(), "a", room, epoch[room], 1, n)
		if err != nil || uint64(len(entries)) != n {
			t.Fatalf("Range %s: %d entries, %v", room, len(entries), err)
		}
		for j, e := range entries {
			if want := fmt.Sprintf("m%d", j*5+int(room[1]-'0')); string(e.Payload) != want {
				t.Fatalf("%s offset %d holds %q, want %q", room, e.Offset, e.Payload, want)
			}
		}
	}
}

// Idempotency keys work inside one round trip: a repeat of a key queued
// in the same batch is a duplicate of the first.
func TestAppendAsyncIdempotencyWithinABatch(t *testing.T) {
	t.Parallel()
	l, _ := newLog(t, Config{})
	res := appendAll(l, [][3]string{{"r", "x", "k1"}, {"r", "y", ""}, {"r", "x again", "k1"}, {"r", "z", "k2"}})
	want := []struct {
		off uint64
		dup bool
	}{{1, false}, {2, false}, {1, true}, {3, false}}
	for i, r := range res {
		if r.err != nil || r.pos.Offset != want[i].off || r.dup != want[i].dup {
			t.Fatalf("append %d = %+v; want offset %d dup %v", i, r, want[i].off, want[i].dup)
		}
	}
}

// When Redis does not have the script (it was flushed), the batch is sent
// again with the script's source, in order.
func TestAppendAsyncAfterScriptFlush(t *testing.T) {
	t.Parallel()
	l, rdb := newLog(t, Config{})
	mustAppend(t, l, "a", "r", []byte("before"), "")
	// SCRIPT FLUSH is server-wide, but harmless to the other tests: every
	// script user here (go-redis Script.Run, asynq, redis_rate, this
	// package) loads the script again on NOSCRIPT.
	if err := rdb.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	res := appendAll(l, [][3]string{{"r", "1", ""}, {"r", "2", ""}, {"s", "3", ""}})
	for i, want := range []uint64{2, 3, 1} {
		if res[i].err != nil || res[i].pos.Offset != want {
			t.Fatalf("append %d after SCRIPT FLUSH = %+v; want offset %d", i, res[i], want)
		}
	}
}

// A failure stops the room's call at the failing message: the ones after
// it fail too, unattempted, so a retry cannot land them out of order.
func TestAppendAsyncFailureStopsTheRest(t *testing.T) {
	t.Parallel()
	l, rdb := newLog(t, Config{})
	ctx := context.Background()
	mustAppend(t, l, "a", "r", []byte("1"), "")
	base, meta, _ := l.roomKeys("a", "r")
	if err := rdb.Set(ctx, base+":idem:bad", "garbage", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	res := appendAll(l, [][3]string{{"r", "2", ""}, {"r", "3", "bad"}, {"r", "4", ""}, {"other", "5", ""}})
	if res[0].err != nil || res[0].pos.Offset != 2 {
		t.Fatalf("append before the failure = %+v; want offset 2", res[0])
	}
	for _, i := range []int{1, 2} {
		if res[i].err == nil {
			t.Fatalf("append %d after a malformed idempotency record succeeded: %+v", i, res[i])
		}
	}
	if res[3].err != nil || res[3].pos.Offset != 1 {
		t.Fatalf("another room's append = %+v; want offset 1", res[3])
	}
	if off := rdb.HGet(ctx, meta, "offset").Val(); off != "2" {
		t.Fatalf("offset after the failed call = %s, want 2", off)
	}
}

// A caller whose context ended before its turn is answered with that
// error and appends nothing.
func TestAppendAsyncCancelled(t *testing.T) {
	t.Parallel()
	l, _ := newLog(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := l.Append(ctx, "a", "r", []byte("x"), "")
	if err == nil {
		t.Fatal("Append with a cancelled context succeeded")
	}
	if p, _ := mustAppend(t, l, "a", "r", []byte("y"), ""); p.Offset != 1 {
		t.Fatalf("next append got offset %d, want 1", p.Offset)
	}
}

// BenchmarkAppendAsync queues appends to one room back to back, as a
// connection's read loop does, with up to 256 waiting for their answer
// (the SDK's default publish window): the lane sends what queued during
// each round trip in one call. Compare BenchmarkAppend, one round trip per
// append.
func BenchmarkAppendAsync(b *testing.B) {
	l, _ := newLog(b, Config{})
	payload := bytes.Repeat([]byte("x"), 128)
	window := make(chan struct{}, 256)
	var failed atomic.Bool
	b.ReportAllocs()
	for b.Loop() {
		window <- struct{}{}
		l.AppendAsync(context.Background(), "app", "bench", payload, "", func(_ protocol.Position, _ bool, err error) {
			if err != nil {
				failed.Store(true)
			}
			<-window
		})
	}
	for range cap(window) {
		window <- struct{}{}
	}
	if failed.Load() {
		b.Fatal("an append failed")
	}
}
