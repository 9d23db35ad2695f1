package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/envelope"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/roomlog"
	"github.com/roomcast/roomcast/pkg/testenv"
)

// memBus stands in for RabbitMQ: the hub's contract with the broker is
// only Publish/Subscribe/Unsubscribe, and these tests steer deliveries by
// hand (reorder, drop, duplicate). Redis is real.
type memBus struct {
	mu        sync.Mutex
	published [][]byte
	subs      map[int]int
	fail      error // returned by every publish when set
}

func (b *memBus) Publish(_ context.Context, _ int, body []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return b.fail
	}
	b.published = append(b.published, body)
	return nil
}

func (b *memBus) PublishAsync(ctx context.Context, shard int, body []byte, done func(error)) {
	done(b.Publish(ctx, shard, body))
}

func (b *memBus) Subscribe(_ context.Context, shard int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs[shard]++
	return nil
}

func (b *memBus) Unsubscribe(shard int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs[shard]--
}

// member records what the hub sent it. Frames are the codec's bytes
// without a WebSocket header (the test's Frame func).
type member struct {
	codec   protocol.Codec // nil: JSON
	mu      sync.Mutex
	queued  [][]byte // frames not flushed yet
	msgs    []protocol.Message
	replies []protocol.Reply
}

// QueueFrame holds f until Flush, as a connection does, so a test sees
// only what the hub flushed.
func (m *member) QueueFrame(f []byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.queued = append(m.queued, f)
	return len(m.queued) == 1
}

func (m *member) Flush() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.queued {
		sf, err := m.Codec().DecodeServerFrame(f)
		if err != nil {
			panic(err)
		}
		if sf.Message != nil {
			m.msgs = append(m.msgs, *sf.Message)
		}
	}
	m.queued = nil
}

func (m *member) Codec() protocol.Codec {
	if m.codec == nil {
		return protocol.JSON
	}
	return m.codec
}

func (m *member) Reply(r *protocol.Reply) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.replies = append(m.replies, *r)
}

func (m *member) offsets() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []uint64
	for _, msg := range m.msgs {
		out = append(out, msg.Offset)
	}
	return out
}

type fixture struct {
	h    *Hub
	bus  *memBus
	rlog *roomlog.Log
	log  *staleLog
	rdb  *redis.Client
}

func newFixture(t *testing.T) *fixture {
	rdb, prefix := testenv.Redis(t)
	rlog := roomlog.New(rdb, roomlog.Config{Prefix: prefix})
	bus := &memBus{subs: map[int]int{}}
	sl := &staleLog{Log: rlog}
	frame := func(c protocol.Codec, f *protocol.ServerFrame) ([]byte, error) { return c.AppendServerFrame(nil, f) }
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := New(Config{Shards: 16, Workers: 2, GapWait: 50 * time.Millisecond, Frame: frame}, log, bus, sl)
	t.Cleanup(h.Close)
	return &fixture{h: h, bus: bus, rlog: rlog, log: sl, rdb: rdb}
}

// appendN stores n messages in the room's log (as a publishing node would)
// and returns their AMQP bodies in offset order, without delivering them.
func (f *fixture) appendN(t *testing.T, room string, n int) [][]byte {
	t.Helper()
	var bodies [][]byte
	for i := 0; i < n; i++ {
		p, err := f.h.Append(context.Background(), envelope.Envelope{App: "a", Room: room, Data: []byte(`1`)}, "")
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, p.env.Marshal())
	}
	return bodies
}

func (f *fixture) join(t *testing.T, room string) *member {
	t.Helper()
	m := &member{}
	if err := f.h.Join(context.Background(), "a", room, m, 1, nil); err != nil {
		t.Fatal(err)
	}
	waitReply(t, m)
	return m
}

// waitReply waits for m's join reply.
func waitReply(t *testing.T, m *member) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, "join reply", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.replies) == 1
	})
}

func waitOffsets(t *testing.T, m *member, want ...uint64) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, "offsets", func() bool { return len(m.offsets()) >= len(want) })
	got := m.offsets()
	if len(got) != len(want) {
		t.Fatalf("offsets %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("offsets %v, want %v", got, want)
		}
	}
}

func TestOutOfOrderDeliveryIsReordered(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	m := f.join(t, "r")
	b := f.appendN(t, "r", 5)
	for _, i := range []int{2, 0, 1, 4, 3} {
		f.h.HandleDelivery(0, b[i])
	}
	waitOffsets(t, m, 1, 2, 3, 4, 5)
}

func TestGapIsFilledFromTheRecoveryStream(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	m := f.join(t, "r")
	b := f.appendN(t, "r", 5)
	for _, i := range []int{0, 1, 3, 4} { // offset 3 never arrives over AMQP
		f.h.HandleDelivery(0, b[i])
	}
	waitOffsets(t, m, 1, 2, 3, 4, 5)
	if s := f.h.Stats(); s.GapFills == 0 {
		t.Fatalf("stats %+v: no gap fill counted", s)
	}
}

func TestDuplicatesAreDropped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	m := f.join(t, "r")
	b := f.appendN(t, "r", 2)
	for _, i := range []int{0, 0, 1, 0, 1} {
		f.h.HandleDelivery(0, b[i])
	}
	b = append(b, f.appendN(t, "r", 1)...)
	f.h.HandleDelivery(0, b[2])
	waitOffsets(t, m, 1, 2, 3)
}

func TestResyncCatchesUpWhatTheQueueLost(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	m := f.join(t, "r")
	f.appendN(t, "r", 3) // routed while the node's queue was gone: never delivered
	f.h.Resync()
	waitOffsets(t, m, 1, 2, 3)
}

func TestJoinGetsOnlyMessagesAfterItsPosition(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first := f.join(t, "r")
	b := f.appendN(t, "r", 2)
	f.h.HandleDelivery(0, b[0])
	f.h.HandleDelivery(0, b[1])
	waitOffsets(t, first, 1, 2)
	second := f.join(t, "r")
	if pos := second.replies[0].Position; pos == nil || pos.Offset != 2 {
		t.Fatalf("join position %+v, want offset 2", second.replies[0].Position)
	}
	b = append(b, f.appendN(t, "r", 1)...)
	f.h.HandleDelivery(0, b[2])
	waitOffsets(t, second, 3)
	waitOffsets(t, first, 1, 2, 3)
}

// staleLog is the real room log, except that once stale is set Position
// returns a position older than the room's state, as when a node delivers
// a message between a joiner's position read and its add.
type staleLog struct {
	*roomlog.Log
	stale atomic.Pointer[protocol.Position]
	gate  atomic.Pointer[gatedRanges]
}

func (s *staleLog) Position(ctx context.Context, app, room string) (protocol.Position, error) {
	if p := s.stale.Load(); p != nil {
		return *p, nil
	}
	return s.Log.Position(ctx, app, room)
}

// gatedRanges holds every Range until open is closed, and says on entered
// that one is waiting: a slow Redis, on demand.
type gatedRanges struct {
	open    chan struct{}
	entered chan struct{}
	once    sync.Once
}

// newGate installs a closed gate on f's log; it opens at the latest when
// the test ends, before the hub closes (a worker stuck in Range would
// otherwise never let Close return).
func (f *fixture) newGate(t *testing.T) *gatedRanges {
	g := &gatedRanges{open: make(chan struct{}), entered: make(chan struct{}, 1)}
	f.log.gate.Store(g)
	t.Cleanup(g.release)
	return g
}

func (g *gatedRanges) release() { g.once.Do(func() { close(g.open) }) }

// joinBehindGate starts a recovering join (since offset 0) of room whose
// stream read waits at a closed gate, and returns once it waits there.
func (f *fixture) joinBehindGate(t *testing.T, room string) (*member, *gatedRanges) {
	t.Helper()
	g := f.newGate(t)
	pos, err := f.rlog.Position(context.Background(), "a", room)
	if err != nil {
		t.Fatal(err)
	}
	m := &member{}
	if err := f.h.Join(context.Background(), "a", room, m, 7, &protocol.Position{Offset: 0, Epoch: pos.Epoch}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the join never read the stream")
	}
	return m, g
}

func (s *staleLog) Range(ctx context.Context, app, room, epoch string, from, to uint64) ([]roomlog.Entry, error) {
	if g := s.gate.Load(); g != nil {
		select {
		case g.entered <- struct{}{}:
		default:
		}
		<-g.open
	}
	return s.Log.Range(ctx, app, room, epoch, from, to)
}

func TestJoinBehindTheRoomIsCaughtUpFromTheStream(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first := f.join(t, "r")
	b := f.appendN(t, "r", 3)
	for _, body := range b {
		f.h.HandleDelivery(0, body)
	}
	waitOffsets(t, first, 1, 2, 3)
	pos, err := f.rlog.Position(context.Background(), "a", "r")
	if err != nil {
		t.Fatal(err)
	}
	pos.Offset = 1 // the joiner read its position when the room stood at 1
	f.log.stale.Store(&pos)
	second := f.join(t, "r")
	waitOffsets(t, second, 2, 3)
}

func TestTransientMessagesSkipOrdering(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	m := f.join(t, "r")
	p, err := f.h.Append(context.Background(), envelope.Envelope{App: "a", Room: "r", Transient: true, Data: []byte(`"typing"`)}, "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Position != nil {
		t.Fatalf("transient message got a position: %+v", p.Position)
	}
	f.h.HandleDelivery(0, p.env.Marshal())
	waitOffsets(t, m, 0)
}

func TestLastLeaveUnsubscribesTheShard(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	m1, m2 := f.join(t, "r"), f.join(t, "r")
	f.h.Leave("a", "r", m1)
	if f.h.Rooms() != 1 {
		t.Fatal("room removed while a member remains")
	}
	f.h.Leave("a", "r", m2)
	if f.h.Rooms() != 0 {
		t.Fatal("room kept after the last member left")
	}
	f.bus.mu.Lock()
	defer f.bus.mu.Unlock()
	for shard, n := range f.bus.subs {
		if n != 0 {
			t.Fatalf("shard %d left with %d subscriptions", shard, n)
		}
	}
}

func TestIdempotentRepeatIsRebroadcastButDeliveredOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	m := f.join(t, "r")
	env := envelope.Envelope{App: "a", Room: "r", Data: []byte(`"once"`)}
	first, err := f.h.Append(context.Background(), env, "key-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.h.Append(context.Background(), env, "key-1")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.Position.Offset != first.Position.Offset {
		t.Fatalf("repeat: %+v, first %+v", again.Position, first.Position)
	}
	for _, p := range []*Published{first, again} {
		if err := f.h.Broadcast(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	f.bus.mu.Lock()
	bodies := append([][]byte(nil), f.bus.published...)
	f.bus.mu.Unlock()
	if len(bodies) != 2 {
		t.Fatalf("%d broadcasts, want 2 (the repeat re-sends the stored message)", len(bodies))
	}
	for _, b := range bodies {
		f.h.HandleDelivery(0, b)
	}
	waitOffsets(t, m, 1)
}

func (f *fixture) joinSince(t *testing.T, room string, since *protocol.Position) (*member, protocol.Reply) {
	t.Helper()
	m := &member{}
	if err := f.h.Join(context.Background(), "a", room, m, 7, since); err != nil {
		t.Fatal(err)
	}
	waitReply(t, m)
	return m, m.replies[0]
}

func TestJoinSinceRecoversMissedMessages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.appendN(t, "r", 5) // published while the client was away
	pos, err := f.rlog.Position(context.Background(), "a", "r")
	if err != nil {
		t.Fatal(err)
	}
	m, reply := f.joinSince(t, "r", &protocol.Position{Offset: 2, Epoch: pos.Epoch})
	if !reply.Recovered || reply.Position.Offset != 5 {
		t.Fatalf("reply %+v, want recovered at offset 5", reply)
	}
	waitOffsets(t, m, 3, 4, 5)
	b := f.appendN(t, "r", 1)
	f.h.HandleDelivery(0, b[0])
	waitOffsets(t, m, 3, 4, 5, 6)
}

func TestJoinSinceWhileTheRoomIsLive(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	other := f.join(t, "r")
	b := f.appendN(t, "r", 4)
	for _, body := range b[:3] { // offset 4 is still in flight to this node
		f.h.HandleDelivery(0, body)
	}
	waitOffsets(t, other, 1, 2, 3)
	pos, _ := f.rlog.Position(context.Background(), "a", "r")
	m, reply := f.joinSince(t, "r", &protocol.Position{Offset: 1, Epoch: pos.Epoch})
	if !reply.Recovered {
		t.Fatalf("reply %+v, want recovered", reply)
	}
	f.h.HandleDelivery(0, b[3])
	waitOffsets(t, m, 2, 3, 4)
	waitOffsets(t, other, 1, 2, 3, 4)
}

func TestJoinSinceAnotherEpochIsNotRecovered(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.appendN(t, "r", 3)
	m, reply := f.joinSince(t, "r", &protocol.Position{Offset: 1, Epoch: "not-this-epoch"})
	if reply.Recovered || reply.Position.Offset != 3 {
		t.Fatalf("reply %+v, want not recovered at offset 3", reply)
	}
	b := f.appendN(t, "r", 1)
	f.h.HandleDelivery(0, b[0])
	waitOffsets(t, m, 4) // live only
}

func TestJoinSinceBeyondTheStreamIsNotRecovered(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	rlog := roomlog.New(rdb, roomlog.Config{Prefix: prefix, StreamSize: 10})
	frame := func(c protocol.Codec, f *protocol.ServerFrame) ([]byte, error) { return c.AppendServerFrame(nil, f) }
	h := New(Config{Shards: 16, Workers: 1, Frame: frame}, slog.New(slog.NewTextHandler(os.Stderr, nil)), &memBus{subs: map[int]int{}}, rlog)
	t.Cleanup(h.Close)
	f := &fixture{h: h, rlog: rlog}
	f.appendN(t, "r", 400) // the stream keeps only the newest ~10 (approximate trimming)
	pos, _ := rlog.Position(context.Background(), "a", "r")
	m, reply := f.joinSince(t, "r", &protocol.Position{Offset: 1, Epoch: pos.Epoch})
	if reply.Recovered {
		t.Fatalf("reply %+v: recovered although offsets 2.. were trimmed", reply)
	}
	if got := m.offsets(); len(got) != 0 {
		t.Fatalf("a partial replay was delivered: %v", got)
	}
}

// A joiner's recovery read runs off the room's worker: while it waits for
// Redis, the room goes on delivering to its members, and the joiner, once
// its read is back, gets everything — what it missed and what the room
// delivered meanwhile — in order, then live traffic.
func TestSlowJoinReadDoesNotHoldUpTheRoom(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	other := f.join(t, "r")
	b := f.appendN(t, "r", 3)
	f.h.HandleDelivery(0, b[0])
	f.h.HandleDelivery(0, b[1])
	waitOffsets(t, other, 1, 2)

	m, g := f.joinBehindGate(t, "r")
	// Redis is "slow" for the joiner; the room is not.
	f.h.HandleDelivery(0, b[2])
	more := f.appendN(t, "r", 2)
	for _, body := range more {
		f.h.HandleDelivery(0, body)
	}
	waitOffsets(t, other, 1, 2, 3, 4, 5)
	m.mu.Lock()
	early := len(m.replies) + len(m.msgs)
	m.mu.Unlock()
	if early != 0 {
		t.Fatalf("the joiner heard %d frames before its read came back", early)
	}

	g.release()
	waitReply(t, m)
	if r := m.replies[0]; !r.Recovered || r.Position.Offset != 3 {
		t.Fatalf("reply %+v, want recovered at offset 3", r)
	}
	waitOffsets(t, m, 1, 2, 3, 4, 5)
	last := f.appendN(t, "r", 1)
	f.h.HandleDelivery(0, last[0])
	waitOffsets(t, m, 1, 2, 3, 4, 5, 6)
	waitOffsets(t, other, 1, 2, 3, 4, 5, 6)
}

// A member that leaves while its join waits for the stream gets its join
// answered and nothing else.
func TestLeaveDuringSlowJoinRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	other := f.join(t, "r")
	b := f.appendN(t, "r", 2)
	for _, body := range b {
		f.h.HandleDelivery(0, body)
	}
	waitOffsets(t, other, 1, 2)
	m, g := f.joinBehindGate(t, "r")
	f.h.Leave("a", "r", m)
	g.release()
	waitReply(t, m)
	more := f.appendN(t, "r", 1)
	f.h.HandleDelivery(0, more[0])
	waitOffsets(t, other, 1, 2, 3)
	if got := m.offsets(); len(got) != 0 {
		t.Fatalf("a member that left got %v", got)
	}
}

// Publish appends and broadcasts without waiting: publishes queued back to
// back get their room's offsets in call order, a repeated idempotency key
// re-sends the stored message, and the answers carry the positions.
func TestPublishQueuesInOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	type answer struct {
		p   *Published
		err error
	}
	const n = 50
	answers := make([]chan answer, n+1)
	for i := range answers {
		answers[i] = make(chan answer, 1)
		env := envelope.Envelope{App: "a", Room: "r", Data: fmt.Appendf(nil, "%d", i)}
		key := ""
		if i == 0 || i == n {
			key = "same" // the last one repeats the first
		}
		f.h.Publish(context.Background(), env, key, func(p *Published, err error) { answers[i] <- answer{p, err} })
	}
	for i, ch := range answers {
		a := <-ch
		want := uint64(i + 1)
		if i == n {
			want = 1
		}
		if a.err != nil || a.p == nil || a.p.Position == nil || a.p.Position.Offset != want || a.p.Duplicate != (i == n) {
			t.Fatalf("publish %d answered %+v, %v; want offset %d", i, a.p, a.err, want)
		}
	}
	f.bus.mu.Lock()
	defer f.bus.mu.Unlock()
	if len(f.bus.published) != n+1 {
		t.Fatalf("%d broadcasts, want %d", len(f.bus.published), n+1)
	}
	if env, err := envelope.Decode(f.bus.published[n]); err != nil || string(env.Data) != "0" || env.Offset != 1 {
		t.Fatalf("the repeat broadcast %+v, %v; want the stored first message", env, err)
	}
}

// Publish tells the two failures apart: the room log's (no Published: the
// message has no offset) and the broker's (the Published with its
// position: the message is stored and may still be delivered).
func TestPublishReportsWhichStepFailed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	publish := func(room string) (*Published, error) {
		done := make(chan struct{})
		var p *Published
		var err error
		f.h.Publish(context.Background(), envelope.Envelope{App: "a", Room: room, Data: []byte(`1`)}, "", func(pp *Published, e error) {
			p, err = pp, e
			close(done)
		})
		<-done
		return p, err
	}
	f.bus.mu.Lock()
	f.bus.fail = errors.New("broker down")
	f.bus.mu.Unlock()
	p, err := publish("broken")
	if !errors.Is(err, ErrUnavailable) || p == nil || p.Position == nil || p.Position.Offset != 1 {
		t.Fatalf("broker failure: Publish answered %+v, %v; want the stored position and ErrUnavailable", p, err)
	}
	// A room whose stream key holds a string: the append fails. (The
	// room's first append would start an epoch and clear the key.)
	if err := f.rdb.Set(context.Background(), f.rlog.Target("a", "broken").Stream, "not a stream", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	p, err = publish("broken")
	if !errors.Is(err, ErrUnavailable) || p != nil {
		t.Fatalf("room log failure: Publish answered %+v, %v; want no Published and ErrUnavailable", p, err)
	}
}
