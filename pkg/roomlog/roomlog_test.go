package roomlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/testenv"
)

func newLog(t testing.TB, cfg Config) (*Log, *redis.Client) {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	cfg.Prefix = prefix
	return New(rdb, cfg), rdb
}

func mustAppend(t testing.TB, l *Log, app, room string, payload []byte, key string) (protocol.Position, bool) {
	t.Helper()
	pos, dup, err := l.Append(context.Background(), app, room, payload, key)
	if err != nil {
		t.Fatalf("Append(%s, %s): %v", app, room, err)
	}
	return pos, dup
}

func TestSequentialOffsets(t *testing.T) {
	t.Parallel()
	l, _ := newLog(t, Config{})
	ctx := context.Background()
	const n = 20
	var epoch string
	for i := 1; i <= n; i++ {
		pos, dup := mustAppend(t, l, "app1", "room", []byte(fmt.Sprintf("m%d", i)), "")
		if dup {
			t.Fatalf("append %d reported dup", i)
		}
		if pos.Offset != uint64(i) {
			t.Fatalf("append %d got offset %d", i, pos.Offset)
		}
		if i == 1 {
			epoch = pos.Epoch
			if len(epoch) != 16 {
				t.Fatalf("epoch %q is not 16 hex chars", epoch)
			}
		} else if pos.Epoch != epoch {
			t.Fatalf("epoch changed from %q to %q", epoch, pos.Epoch)
		}
	}
	entries, err := l.Range(ctx, "app1", "room", epoch, 1, n)
	if err != nil {
		t.Fatalf("Range: %v", err)
	}
	if len(entries) != n {
		t.Fatalf("Range returned %d entries, want %d", len(entries), n)
	}
	for i, e := range entries {
		if e.Offset != uint64(i+1) || string(e.Payload) != fmt.Sprintf("m%d", i+1) {
			t.Fatalf("entry %d = {%d %q}", i, e.Offset, e.Payload)
		}
	}
	// Another room, and the same room name in another app, count on their own.
	if pos, _ := mustAppend(t, l, "app1", "other", []byte("x"), ""); pos.Offset != 1 {
		t.Fatalf("other room got offset %d, want 1", pos.Offset)
	}
	if pos, _ := mustAppend(t, l, "app2", "room", []byte("x"), ""); pos.Offset != 1 {
		t.Fatalf("same room in other app got offset %d, want 1", pos.Offset)
	}
}

func TestBinaryPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	l, _ := newLog(t, Config{})
	payload := make([]byte, 256)
	for i := range payload {
		payload[i] = byte(i)
	}
	pos, _ := mustAppend(t, l, "a", "r", payload, "")
	entries, err := l.Range(context.Background(), "a", "r", pos.Epoch, 1, 1)
	if err != nil || len(entries) != 1 || !bytes.Equal(entries[0].Payload, payload) {
		t.Fatalf("Range = %v, %v; want the 256-byte payload back", entries, err)
	}
}

func TestConcurrentAppends(t *testing.T) {
	t.Parallel()
	l, _ := newLog(t, Config{})
	ctx := context.Background()
	const workers, each = 50, 20
	const total = workers * each

	type rec struct {
		pos     protocol.Position
		payload string
	}
	var (
		mu   sync.Mutex
		recs []rec
		wg   sync.WaitGroup
		errs = make(chan error, workers)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for i := range each {
				payload := fmt.Sprintf("w%d-%d", w, i)
				pos, dup, err := l.Append(ctx, "app", "busy", []byte(payload), "")
				if err != nil {
					errs <- err
					return
				}
				if dup {
					errs <- fmt.Errorf("%s reported dup", payload)
					return
				}
				if pos.Offset <= last {
					errs <- fmt.Errorf("worker %d: offset %d after %d", w, pos.Offset, last)
					return
				}
				last = pos.Offset
				mu.Lock()
				recs = append(recs, rec{pos, payload})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	byOffset := make(map[uint64]string, total)
	epoch := recs[0].pos.Epoch
	for _, r := range recs {
		if r.pos.Epoch != epoch {
			t.Fatalf("mixed epochs %q and %q", epoch, r.pos.Epoch)
		}
		if _, ok := byOffset[r.pos.Offset]; ok {
			t.Fatalf("offset %d assigned twice", r.pos.Offset)
		}
		byOffset[r.pos.Offset] = r.payload
	}
	for off := uint64(1); off <= total; off++ {
		if _, ok := byOffset[off]; !ok {
			t.Fatalf("offset %d missing (gap)", off)
		}
	}
	if len(byOffset) != total {
		t.Fatalf("%d offsets assigned, want %d", len(byOffset), total)
	}

	entries, err := l.Range(ctx, "app", "busy", epoch, 1, total)
	if err != nil {
		t.Fatalf("Range: %v", err)
	}
	if len(entries) != total {
		t.Fatalf("Range returned %d entries, want %d", len(entries), total)
	}
	for i, e := range entries {
		if e.Offset != uint64(i+1) {
			t.Fatalf("entry %d has offset %d", i, e.Offset)
		}
		if string(e.Payload) != byOffset[e.Offset] {
			t.Fatalf("offset %d: stream has %q, Append returned it for %q", e.Offset, e.Payload, byOffset[e.Offset])
		}
	}
}

func TestPositionCreatesEpoch(t *testing.T) {
	t.Parallel()
	l, _ := newLog(t, Config{})
	ctx := context.Background()
	p0, err := l.Position(ctx, "a", "fresh")
	if err != nil {
		t.Fatalf("Position: %v", err)
	}
	if p0.Offset != 0 || len(p0.Epoch) != 16 {
		t.Fatalf("Position on a new room = %+v, want offset 0 and a 16-char epoch", p0)
	}
	if again, err := l.Position(ctx, "a", "fresh"); err != nil || again != p0 {
		t.Fatalf("second Position = %+v, %v; want %+v", again, err, p0)
	}
	// Nothing to replay yet, but the epoch is live.
	if entries, err := l.Range(ctx, "a", "fresh", p0.Epoch, 1, 10); err != nil || len(entries) != 0 {
		t.Fatalf("Range on an empty room = %v, %v; want none, nil", entries, err)
	}
	pos, _ := mustAppend(t, l, "a", "fresh", []byte("first"), "")
	if pos.Offset != 1 || pos.Epoch != p0.Epoch {
		t.Fatalf("first Append = %+v, want offset 1 in epoch %q", pos, p0.Epoch)
	}
	if p1, err := l.Position(ctx, "a", "fresh"); err != nil || p1 != pos {
		t.Fatalf("Position after Append = %+v, %v; want %+v", p1, err, pos)
	}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	l, rdb := newLog(t, Config{})
	ctx := context.Background()
	_, _, stream := l.roomKeys("a", "r")

	first, dup := mustAppend(t, l, "a", "r", []byte("one"), "k1")
	if dup || first.Offset != 1 {
		t.Fatalf("first Append = %+v dup=%v", first, dup)
	}
	again, dup := mustAppend(t, l, "a", "r", []byte("one, retried"), "k1")
	if !dup || again != first {
		t.Fatalf("repeat = %+v dup=%v; want %+v dup=true", again, dup, first)
	}
	if n := rdb.XLen(ctx, stream).Val(); n != 1 {
		t.Fatalf("stream has %d entries after a duplicate, want 1", n)
	}
	entries, err := l.Range(ctx, "a", "r", first.Epoch, 1, 1)
	if err != nil || len(entries) != 1 || string(entries[0].Payload) != "one" {
		t.Fatalf("Range = %v, %v; want the first payload", entries, err)
	}

	other, dup := mustAppend(t, l, "a", "r", []byte("two"), "k2")
	if dup || other.Offset != 2 {
		t.Fatalf("different key = %+v dup=%v; want offset 2", other, dup)
	}
	// No key: never deduplicated.
	for want := uint64(3); want <= 4; want++ {
		if p, dup := mustAppend(t, l, "a", "r", []byte("same"), ""); dup || p.Offset != want {
			t.Fatalf("keyless append = %+v dup=%v; want offset %d", p, dup, want)
		}
	}
	// Keys are per room.
	if p, dup := mustAppend(t, l, "a", "r2", []byte("one"), "k1"); dup || p.Offset != 1 {
		t.Fatalf("same key in another room = %+v dup=%v; want a fresh append", p, dup)
	}

	long := strings.Repeat("x", MaxIdempotencyKeyBytes)
	if _, dup := mustAppend(t, l, "a", "r", []byte("long"), long); dup {
		t.Fatal("key of the maximum length reported dup")
	}
	if _, _, err := l.Append(ctx, "a", "r", []byte("too long"), long+"x"); !errors.Is(err, ErrInvalidIdempotencyKey) {
		t.Fatalf("over-long key: err = %v, want ErrInvalidIdempotencyKey", err)
	}
}

func TestConcurrentIdempotentRetries(t *testing.T) {
	t.Parallel()
	l, _ := newLog(t, Config{})
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fresh int
		seen  = map[protocol.Position]bool{}
	)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pos, dup, err := l.Append(context.Background(), "a", "r", []byte("p"), "same-key")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if !dup {
				fresh++
			}
			seen[pos] = true
		}()
	}
	wg.Wait()
	if fresh != 1 || len(seen) != 1 {
		t.Fatalf("%d non-dup appends and %d distinct positions; want 1 and 1", fresh, len(seen))
	}
}

func TestTrimming(t *testing.T) {
	t.Parallel()
	const size = 100
	l, rdb := newLog(t, Config{StreamSize: size})
	ctx := context.Background()
	var pos protocol.Position
	for i := 1; i <= size*3; i++ {
		pos, _ = mustAppend(t, l, "a", "r", []byte(fmt.Sprint(i)), "")
	}
	_, _, stream := l.roomKeys("a", "r")
	if n := rdb.XLen(ctx, stream).Val(); n < size || n >= size*3 {
		t.Fatalf("stream holds %d entries, want trimmed to about %d", n, size)
	}

	got, err := l.Range(ctx, "a", "r", pos.Epoch, 1, 10)
	if !errors.Is(err, ErrTruncated) || len(got) != 0 {
		t.Fatalf("old range = %d entries, %v; want none, ErrTruncated", len(got), err)
	}
	// A range straddling the trim point returns the newest, contiguous part.
	got, err = l.Range(ctx, "a", "r", pos.Epoch, 1, size*3)
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("whole range: err = %v, want ErrTruncated", err)
	}
	if len(got) < size || got[len(got)-1].Offset != size*3 {
		t.Fatalf("whole range returned %d entries ending at %d", len(got), got[len(got)-1].Offset)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Offset != got[i-1].Offset+1 {
			t.Fatalf("partial range not contiguous at %d", got[i].Offset)
		}
	}
	// The most recent StreamSize entries are always complete.
	got, err = l.Range(ctx, "a", "r", pos.Epoch, size*2+1, size*3)
	if err != nil || len(got) != size || got[0].Offset != size*2+1 || string(got[size-1].Payload) != fmt.Sprint(size*3) {
		t.Fatalf("recent range = %d entries, %v; want %d complete", len(got), err, size)
	}
}

func TestRangeBounds(t *testing.T) {
	t.Parallel()
	l, _ := newLog(t, Config{})
	ctx := context.Background()
	var pos protocol.Position
	for i := 1; i <= 5; i++ {
		pos, _ = mustAppend(t, l, "a", "r", []byte(fmt.Sprint(i)), "")
	}
	offsets := func(es []Entry) []uint64 {
		var out []uint64
		for _, e := range es {
			out = append(out, e.Offset)
		}
		return out
	}
	cases := []struct {
		from, to uint64
		want     []uint64
	}{
		{0, 2, []uint64{1, 2}},          // 0 reads as 1
		{2, 4, []uint64{2, 3, 4}},       // inner
		{4, 100, []uint64{4, 5}},        // ends at the head
		{6, 10, nil},                    // caught up: nothing to replay
		{3, 2, nil},                     // empty
		{5, ^uint64(0), []uint64{5}},    // open-ended
		{1, 5, []uint64{1, 2, 3, 4, 5}}, // all
		{3, 3, []uint64{3}},             // single
		{0, 0, nil},                     // empty, treated as [1,0]
		{6, ^uint64(0), nil},            // open-ended, caught up
		{1, 1 << 40, []uint64{1, 2, 3, 4, 5}},
	}
	for _, c := range cases {
		got, err := l.Range(ctx, "a", "r", pos.Epoch, c.from, c.to)
		if err != nil || !slices.Equal(offsets(got), c.want) {
			t.Errorf("Range(%d, %d) = %v, %v; want %v, nil", c.from, c.to, offsets(got), err, c.want)
		}
	}
	if _, err := l.Range(ctx, "a", "r", "0000000000000000", 1, 5); !errors.Is(err, ErrEpochChanged) {
		t.Errorf("wrong epoch: err = %v, want ErrEpochChanged", err)
	}
	if _, err := l.Range(ctx, "a", "never-used", pos.Epoch, 1, 5); !errors.Is(err, ErrEpochChanged) {
		t.Errorf("room without state: err = %v, want ErrEpochChanged", err)
	}
	// Even an empty range checks the epoch.
	if _, err := l.Range(ctx, "a", "r", "0000000000000000", 6, 5); !errors.Is(err, ErrEpochChanged) {
		t.Errorf("empty range, wrong epoch: err = %v, want ErrEpochChanged", err)
	}
}

func TestStreamAndMetaExpiry(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	// Stream expires quickly; meta lives on.
	l := New(rdb, Config{Prefix: prefix, StreamTTL: time.Second, MetaTTL: time.Hour})
	for i := 0; i < 3; i++ {
		mustAppend(t, l, "a", "quiet", []byte("m"), "")
	}
	pos, err := l.Position(ctx, "a", "quiet")
	if err != nil || pos.Offset != 3 {
		t.Fatalf("Position = %+v, %v", pos, err)
	}
	// Before expiry the range is complete.
	if got, err := l.Range(ctx, "a", "quiet", pos.Epoch, 1, 3); err != nil || len(got) != 3 {
		t.Fatalf("Range before expiry = %d entries, %v", len(got), err)
	}
	testenv.WaitFor(t, 10*time.Second, "recovery stream to expire", func() bool {
		_, err := l.Range(ctx, "a", "quiet", pos.Epoch, 1, 3)
		return errors.Is(err, ErrTruncated)
	})
	// Epoch and offset persist: a client that missed nothing still resumes
	// and the next message continues the offsets.
	if got, err := l.Range(ctx, "a", "quiet", pos.Epoch, 4, 3); err != nil || len(got) != 0 {
		t.Fatalf("caught-up Range after stream expiry = %v, %v; want none, nil", got, err)
	}
	if p, err := l.Position(ctx, "a", "quiet"); err != nil || p != pos {
		t.Fatalf("Position after stream expiry = %+v, %v; want %+v", p, err, pos)
	}
	next, _ := mustAppend(t, l, "a", "quiet", []byte("m4"), "")
	if next.Offset != 4 || next.Epoch != pos.Epoch {
		t.Fatalf("Append after stream expiry = %+v, want offset 4 in %q", next, pos.Epoch)
	}
	if got, err := l.Range(ctx, "a", "quiet", pos.Epoch, 1, 4); !errors.Is(err, ErrTruncated) || len(got) != 1 || got[0].Offset != 4 {
		t.Fatalf("Range over expired and new = %v, %v; want [4], ErrTruncated", got, err)
	}

	// Now let the meta expire too (a Log with a short MetaTTL refreshes
	// the room's meta to it). Range does not refresh TTLs, so it can poll.
	short := New(rdb, Config{Prefix: prefix, StreamTTL: time.Second, MetaTTL: time.Second})
	mustAppend(t, short, "a", "quiet", []byte("m5"), "")
	testenv.WaitFor(t, 10*time.Second, "room meta to expire", func() bool {
		_, err := short.Range(ctx, "a", "quiet", pos.Epoch, 1, 5)
		return errors.Is(err, ErrEpochChanged)
	})
	fresh, err := l.Position(ctx, "a", "quiet")
	if err != nil {
		t.Fatalf("Position: %v", err)
	}
	if fresh.Epoch == pos.Epoch || fresh.Offset != 0 {
		t.Fatalf("Position after meta expiry = %+v, want a new epoch at offset 0", fresh)
	}
	if p, _ := mustAppend(t, l, "a", "quiet", []byte("new"), ""); p.Offset != 1 || p.Epoch != fresh.Epoch {
		t.Fatalf("Append in the new epoch = %+v, want offset 1 in %q", p, fresh.Epoch)
	}
}

func TestLostMetaStartsCleanEpoch(t *testing.T) {
	t.Parallel()
	l, rdb := newLog(t, Config{})
	ctx := context.Background()
	var old protocol.Position
	for i := 0; i < 5; i++ {
		old, _ = mustAppend(t, l, "a", "r", []byte("old"), "")
	}
	// Simulate losing the meta hash while the stream survives (eviction,
	// partial data loss).
	_, meta, _ := l.roomKeys("a", "r")
	if err := rdb.Del(ctx, meta).Err(); err != nil {
		t.Fatal(err)
	}
	p, _ := mustAppend(t, l, "a", "r", []byte("new"), "")
	if p.Offset != 1 || p.Epoch == old.Epoch {
		t.Fatalf("Append after meta loss = %+v, want offset 1 in a new epoch", p)
	}
	got, err := l.Range(ctx, "a", "r", p.Epoch, 1, 10)
	if err != nil || len(got) != 1 || string(got[0].Payload) != "new" {
		t.Fatalf("Range in the new epoch = %v, %v; want only the new entry", got, err)
	}
	if _, err := l.Range(ctx, "a", "r", old.Epoch, 1, 5); !errors.Is(err, ErrEpochChanged) {
		t.Fatalf("Range in the old epoch: err = %v, want ErrEpochChanged", err)
	}
}

func TestFailedStreamWriteLeavesNoGap(t *testing.T) {
	t.Parallel()
	l, rdb := newLog(t, Config{})
	ctx := context.Background()
	first, _ := mustAppend(t, l, "a", "r", []byte("1"), "")
	_, meta, stream := l.roomKeys("a", "r")
	// Make XADD fail: the stream key holds a string.
	if err := rdb.Set(ctx, stream, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Append(ctx, "a", "r", []byte("2"), "k"); err == nil {
		t.Fatal("Append over a non-stream key succeeded")
	}
	if off := rdb.HGet(ctx, meta, "offset").Val(); off != "1" {
		t.Fatalf("offset after a failed append = %s, want 1", off)
	}
	rdb.Del(ctx, stream)
	// The failed attempt recorded no idempotency entry: the retry appends.
	p, dup := mustAppend(t, l, "a", "r", []byte("2"), "k")
	if dup || p.Offset != 2 || p.Epoch != first.Epoch {
		t.Fatalf("Append after repair = %+v dup=%v, want offset 2", p, dup)
	}
}

func TestKeyLayout(t *testing.T) {
	t.Parallel()
	l, rdb := newLog(t, Config{})
	ctx := context.Background()
	const app, room = "app", "lobby:{odd}*room"
	mustAppend(t, l, app, room, []byte("x"), "idem-1")
	if _, err := l.Position(ctx, app, "joined-only"); err != nil {
		t.Fatal(err)
	}

	tag := hashTag(app, room)
	if len(tag) != 18 || tag[0] != '{' || tag[17] != '}' {
		t.Fatalf("tag %q is not {16 hex}", tag)
	}
	keys, err := rdb.Keys(ctx, l.prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{
		l.prefix + "room" + tag + ":" + app + ":" + room + ":idem:idem-1",
		l.prefix + "room" + tag + ":" + app + ":" + room + ":meta",
		l.prefix + "room" + tag + ":" + app + ":" + room + ":stream",
		l.prefix + "room" + hashTag(app, "joined-only") + ":" + app + ":joined-only:meta",
	}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("keys = %q\nwant %q", keys, want)
	}
	for _, k := range keys {
		// Redis Cluster hashes the text between the first '{' and the
		// next '}': it must be the room's tag for every key of the room.
		open := strings.IndexByte(k, '{')
		end := strings.IndexByte(k[open:], '}')
		got := k[open : open+end+1]
		if strings.Contains(k, ":"+room+":") && got != tag {
			t.Errorf("key %q hashes on %q, want %q", k, got, tag)
		}
	}
	// TTLs are set on every key.
	for _, k := range keys {
		if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("key %q has no TTL (%v)", k, ttl)
		}
	}
	_, meta, stream := l.roomKeys(app, room)
	if ttl := rdb.PTTL(ctx, stream).Val(); ttl > DefaultStreamTTL {
		t.Errorf("stream TTL %v > %v", ttl, DefaultStreamTTL)
	}
	if ttl := rdb.PTTL(ctx, meta).Val(); ttl <= DefaultStreamTTL || ttl > DefaultMetaTTL {
		t.Errorf("meta TTL %v, want in (%v, %v]", ttl, DefaultStreamTTL, DefaultMetaTTL)
	}
}

func TestDefaults(t *testing.T) {
	l := New(nil, Config{})
	if _, meta, _ := l.roomKeys("a", "r"); !strings.HasPrefix(meta, "rc:room{") {
		t.Errorf("default key %q does not start with rc:room{", meta)
	}
	want := settings{streamSize: 1000, streamTTLms: 120_000, metaTTLms: 86_400_000}
	if l.def != want || l.idemMS != 120_000 {
		t.Errorf("defaults = %+v idem %d, want %+v idem 120000", l.def, l.idemMS, want)
	}
	// MetaTTL never ends before the stream it describes.
	l = New(nil, Config{StreamTTL: time.Hour, MetaTTL: time.Minute})
	if l.def.metaTTLms != time.Hour.Milliseconds() {
		t.Errorf("meta TTL %dms, want raised to the stream TTL", l.def.metaTTLms)
	}
	for _, p := range []string{"a{", "}b"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New with prefix %q did not panic", p)
				}
			}()
			New(nil, Config{Prefix: p})
		}()
	}
}

func TestMatchGlob(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything:at/all", true},
		{"chat:*", "chat:", true},
		{"chat:*", "chat:lobby", true},
		{"chat:*", "chats:lobby", false},
		{"chat:*", "xchat:lobby", false},
		{"*:live", "dash:live", true},
		{"*:live", "dash:live:2", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXcYYb", false},
		{"a**c", "ac", true},
		{"exact", "exact", true},
		{"exact", "exact2", false},
		{"", "", true},
		{"", "x", false},
		{"?", "x", false}, // only '*' is special
		{"*a", "baaa", true},
	}
	for _, c := range cases {
		if got := matchGlob(c.pattern, c.s); got != c.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func TestRuleSelection(t *testing.T) {
	l := New(nil, Config{
		StreamSize: 500,
		StreamTTL:  time.Minute,
		Rules: []Rule{
			{App: "chat", RoomPattern: "vip:*", StreamSize: 5000},
			{App: "chat", StreamTTL: 10 * time.Minute},
			{RoomPattern: "dash:*", StreamSize: 10, StreamTTL: 5 * time.Second},
		},
	})
	cases := []struct {
		app, room string
		size      int
		ttl       time.Duration
	}{
		{"chat", "vip:1", 5000, time.Minute},      // first rule; TTL falls back to Config
		{"chat", "dash:x", 500, 10 * time.Minute}, // second rule wins over the third
		{"other", "dash:x", 10, 5 * time.Second},  // any app
		{"other", "vip:1", 500, time.Minute},      // no rule
	}
	for _, c := range cases {
		s := l.settingsFor(c.app, c.room)
		if s.streamSize != c.size || s.streamTTLms != c.ttl.Milliseconds() {
			t.Errorf("%s/%s: size %d ttl %dms, want %d %v", c.app, c.room, s.streamSize, s.streamTTLms, c.size, c.ttl)
		}
	}
}

func TestRulesApply(t *testing.T) {
	t.Parallel()
	const size = 100
	l, rdb := newLog(t, Config{
		Rules: []Rule{{App: "a", RoomPattern: "chat:*", StreamSize: size, StreamTTL: 5 * time.Second}},
	})
	ctx := context.Background()
	rooms := []struct {
		app, room string
		ruled     bool
	}{
		{"a", "chat:1", true},
		{"a", "feed:1", false}, // pattern does not match
		{"b", "chat:1", false}, // other app
	}
	for _, r := range rooms {
		var pos protocol.Position
		for i := 0; i < size*3; i++ {
			pos, _ = mustAppend(t, l, r.app, r.room, []byte("m"), "")
		}
		_, err := l.Range(ctx, r.app, r.room, pos.Epoch, 1, 10)
		if r.ruled && !errors.Is(err, ErrTruncated) {
			t.Errorf("%s/%s: old range err = %v, want ErrTruncated (rule StreamSize %d)", r.app, r.room, err, size)
		}
		if !r.ruled && err != nil {
			t.Errorf("%s/%s: old range err = %v, want complete (default StreamSize)", r.app, r.room, err)
		}
		_, _, stream := l.roomKeys(r.app, r.room)
		ttl := rdb.PTTL(ctx, stream).Val()
		if r.ruled && (ttl <= 0 || ttl > 5*time.Second) {
			t.Errorf("%s/%s: stream TTL %v, want <= 5s from the rule", r.app, r.room, ttl)
		}
		if !r.ruled && ttl <= 5*time.Second {
			t.Errorf("%s/%s: stream TTL %v, want the 2m default", r.app, r.room, ttl)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	rdb, prefix := testenv.Redis(b)
	l := New(rdb, Config{Prefix: prefix})
	ctx := context.Background()
	payload := bytes.Repeat([]byte("x"), 128)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := l.Append(ctx, "app", "bench", payload, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRange100(b *testing.B) {
	rdb, prefix := testenv.Redis(b)
	l := New(rdb, Config{Prefix: prefix})
	ctx := context.Background()
	payload := bytes.Repeat([]byte("x"), 128)
	var pos protocol.Position
	for range 100 {
		var err error
		if pos, _, err = l.Append(ctx, "app", "bench", payload, ""); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		es, err := l.Range(ctx, "app", "bench", pos.Epoch, 1, 100)
		if err != nil || len(es) != 100 {
			b.Fatalf("Range = %d, %v", len(es), err)
		}
	}
}
