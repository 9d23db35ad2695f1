package presence_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/envelope"
	"github.com/roomcast/roomcast/pkg/presence"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/roomlog"
	"github.com/roomcast/roomcast/pkg/testenv"
)

type fixture struct {
	s    *presence.Store
	rlog *roomlog.Log
	seq  int64
}

func newFixture(t *testing.T, cfg presence.Config) *fixture {
	rdb, prefix := testenv.Redis(t)
	rlog := roomlog.New(rdb, roomlog.Config{Prefix: prefix})
	cfg.Prefix = prefix
	return &fixture{s: presence.New(rdb, rlog, cfg), rlog: rlog, seq: time.Now().UnixMicro()}
}

func (f *fixture) next() int64 { f.seq++; return f.seq }

func enter(app, room, member, client, conn, node, data string, seq int64) presence.Change {
	c := presence.Change{Action: presence.Enter, App: app, Room: room, MemberID: member, ClientID: client, ConnID: conn, Node: node, Seq: seq}
	if data != "" {
		c.Data = []byte(data)
	}
	return c
}

func (f *fixture) apply(t *testing.T, c presence.Change) *presence.Event {
	t.Helper()
	ev, err := f.s.Apply(context.Background(), c)
	if err != nil {
		t.Fatalf("Apply(%+v): %v", c, err)
	}
	return ev
}

func action(t *testing.T, ev *presence.Event) (protocol.PresenceAction, protocol.PresenceMember, uint64) {
	t.Helper()
	if ev == nil {
		t.Fatal("no event, want one")
	}
	f := presence.Frame(&ev.Envelope)
	if f.Presence == nil {
		t.Fatalf("event envelope %+v is not a presence frame", ev.Envelope)
	}
	return f.Presence.Action, f.Presence.Member, f.Presence.Offset
}

func TestEnterUpdateLeaveEvents(t *testing.T) {
	f := newFixture(t, presence.Config{})
	ctx := context.Background()

	a, m, off := action(t, f.apply(t, enter("app", "lobby", "s1", "ada", "c1", "n1", `{"name":"Ada"}`, f.next())))
	if a != protocol.PresenceJoin || m.ClientID != "ada" || m.ConnectionID != "s1" || string(m.Data) != `{"name":"Ada"}` || m.Since == 0 || off != 1 {
		t.Fatalf("enter: %s %+v offset %d", a, m, off)
	}
	since := m.Since
	if ev := f.apply(t, enter("app", "lobby", "s1", "ada", "c1", "n1", `{"name":"Ada"}`, f.next())); ev != nil {
		t.Fatalf("enter with the same data made event %+v", ev)
	}
	a, m, off = action(t, f.apply(t, enter("app", "lobby", "s1", "ada", "c1", "n1", `{"name":"Ada L."}`, f.next())))
	if a != protocol.PresenceUpdate || string(m.Data) != `{"name":"Ada L."}` || m.Since != since || off != 2 {
		t.Fatalf("update: %s %+v offset %d (since %d)", a, m, off, since)
	}
	a, m, off = action(t, f.apply(t, presence.Change{Action: presence.Leave, App: "app", Room: "lobby", MemberID: "s1", Seq: f.next()}))
	if a != protocol.PresenceLeave || m.ClientID != "ada" || string(m.Data) != `{"name":"Ada L."}` || off != 3 {
		t.Fatalf("leave: %s %+v offset %d", a, m, off)
	}
	if ev := f.apply(t, presence.Change{Action: presence.Leave, App: "app", Room: "lobby", MemberID: "s1", Seq: f.next()}); ev != nil {
		t.Fatalf("second leave made event %+v", ev)
	}
	// The events are in the presence channel's log.
	pos, err := f.rlog.Position(ctx, "app", protocol.PresenceChannel("lobby"))
	if err != nil || pos.Offset != 3 {
		t.Fatalf("presence channel position %+v, %v; want offset 3", pos, err)
	}
}

func TestStaleAndRetriedChanges(t *testing.T) {
	f := newFixture(t, presence.Config{})
	enterSeq, leaveSeq := f.next(), f.next()
	// The leave arrives first: the enter made before it must not bring the
	// member back.
	if ev := f.apply(t, presence.Change{Action: presence.Leave, App: "a", Room: "r", MemberID: "s1", Seq: leaveSeq}); ev != nil {
		t.Fatalf("leave of an absent member made %+v", ev)
	}
	if ev := f.apply(t, enter("a", "r", "s1", "u", "c1", "n1", "", enterSeq)); ev != nil {
		t.Fatalf("stale enter made %+v", ev)
	}
	if n, _ := f.s.Count(context.Background(), "a", "r"); n.Connections != 0 {
		t.Fatalf("count after stale enter = %+v", n)
	}

	// A retried task (same seq) replays the same event, at the same offset.
	seq := f.next()
	first := f.apply(t, enter("a", "r", "s2", "u", "c2", "n1", `1`, seq))
	again := f.apply(t, enter("a", "r", "s2", "u", "c2", "n1", `1`, seq))
	if first == nil || again == nil || !again.Replay || again.Envelope.Offset != first.Envelope.Offset || again.Envelope.Event != "join" {
		t.Fatalf("retry: first %+v, again %+v", first, again)
	}
	lseq := f.next()
	l1 := f.apply(t, presence.Change{Action: presence.Leave, App: "a", Room: "r", MemberID: "s2", Seq: lseq})
	l2 := f.apply(t, presence.Change{Action: presence.Leave, App: "a", Room: "r", MemberID: "s2", Seq: lseq})
	if l1 == nil || l2 == nil || !l2.Replay || l2.Envelope.Offset != l1.Envelope.Offset {
		t.Fatalf("leave retry: %+v, %+v", l1, l2)
	}
}

func TestTakeoverAndDetach(t *testing.T) {
	f := newFixture(t, presence.Config{})
	ctx := context.Background()
	action(t, f.apply(t, enter("a", "r", "s1", "u", "c1", "n1", `{"x":1}`, f.next())))
	dropped := f.next() // c1 drops
	// The client resumes on n2 (connection c2) and enters again: no event.
	if ev := f.apply(t, enter("a", "r", "s1", "u", "c2", "n2", `{"x":1}`, f.next())); ev != nil {
		t.Fatalf("takeover made %+v", ev)
	}
	// c1's detach comes after the grace: c2 holds the member, nothing happens.
	if ev := f.apply(t, presence.Change{Action: presence.Detach, App: "a", Room: "r", MemberID: "s1", ConnID: "c1", Seq: dropped}); ev != nil {
		t.Fatalf("detach of a taken-over member made %+v", ev)
	}
	// n1 dies: the sweep leaves the member alone (it is on n2 now).
	if ev := f.apply(t, presence.Change{Action: presence.Sweep, App: "a", Room: "r", MemberID: "s1", Node: "n1", Seq: f.next()}); ev != nil {
		t.Fatalf("sweep of the old node made %+v", ev)
	}
	members, _, err := f.s.Get(ctx, "a", "r", "", 0)
	if err != nil || len(members) != 1 {
		t.Fatalf("members %+v, %v", members, err)
	}
	// c2 drops and nobody resumes: its detach leaves.
	a, _, _ := action(t, f.apply(t, presence.Change{Action: presence.Detach, App: "a", Room: "r", MemberID: "s1", ConnID: "c2", Seq: f.next()}))
	if a != protocol.PresenceLeave {
		t.Fatalf("detach: %s", a)
	}
	rooms, err := f.s.Rooms(ctx, "a", "s1")
	if err != nil || len(rooms) != 0 {
		t.Fatalf("member index after leave: %v, %v", rooms, err)
	}
}

func TestCountsClientsOnceAndPagesEverything(t *testing.T) {
	f := newFixture(t, presence.Config{})
	ctx := context.Background()
	const n = 250
	for i := 0; i < n; i++ {
		// Clients with two tabs each: 125 clients, 250 members.
		f.apply(t, enter("a", "big", fmt.Sprintf("s%04d", i), fmt.Sprintf("u%d", i/2), fmt.Sprintf("c%d", i), "n1", "", f.next()))
	}
	c, err := f.s.Count(ctx, "a", "big")
	if err != nil || c.Clients != n/2 || c.Connections != n {
		t.Fatalf("count %+v, %v; want %d clients, %d connections", c, err, n/2, n)
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		page, next, err := f.s.Get(ctx, "a", "big", cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, m := range page {
			if seen[m.ConnectionID] {
				t.Fatalf("member %s on two pages", m.ConnectionID)
			}
			seen[m.ConnectionID] = true
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != n || pages != 3 {
		t.Fatalf("paged %d members in %d pages, want %d in 3", len(seen), pages, n)
	}
	if _, _, err := f.s.Get(ctx, "a", "big", "!!not-a-cursor", 10); err != presence.ErrCursor {
		t.Fatalf("bad cursor: %v", err)
	}
	// Removing one of a client's two members keeps the client counted.
	f.apply(t, presence.Change{Action: presence.Leave, App: "a", Room: "big", MemberID: "s0000", Seq: f.next()})
	if c, _ := f.s.Count(ctx, "a", "big"); c.Clients != n/2 || c.Connections != n-1 {
		t.Fatalf("count after one leave %+v", c)
	}
}

func TestLeaseAndDeadNodes(t *testing.T) {
	f := newFixture(t, presence.Config{NodeTTL: 300 * time.Millisecond})
	ctx := context.Background()
	lost, err := f.s.Lease(ctx, "n1")
	if err != nil || !lost {
		t.Fatalf("first lease: lost=%v err=%v; want lost (no lease before)", lost, err)
	}
	if lost, _ := f.s.Lease(ctx, "n1"); lost {
		t.Fatal("renewal reported a lost lease")
	}
	f.apply(t, enter("a", "r", "s1", "u", "c1", "n1", "", f.next()))
	if dead, _ := f.s.DeadNodes(ctx); len(dead) != 0 {
		t.Fatalf("dead nodes with a live lease: %v", dead)
	}
	testenv.WaitFor(t, 5*time.Second, "lease to expire", func() bool {
		dead, _ := f.s.DeadNodes(ctx)
		return len(dead) == 1 && dead[0] == "n1"
	})
	ms, err := f.s.NodeMembers(ctx, "n1", 100)
	if err != nil || len(ms) != 1 || ms[0] != (presence.NodeMember{App: "a", Room: "r", MemberID: "s1"}) {
		t.Fatalf("node members %+v, %v", ms, err)
	}
}

// Concurrent workers applying one member's enter and leave in either order
// always end with the member gone and the events, in stream order, never
// ending on a join.
func TestConcurrentEnterLeaveOrder(t *testing.T) {
	f := newFixture(t, presence.Config{})
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		member := fmt.Sprintf("m%d", i)
		e, l := f.next(), f.next()
		var wg sync.WaitGroup
		for _, c := range []presence.Change{
			enter("a", "race", member, "u", "c", "n", "", e),
			{Action: presence.Leave, App: "a", Room: "race", MemberID: member, Seq: l},
		} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := f.s.Apply(ctx, c); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	if c, _ := f.s.Count(ctx, "a", "race"); c.Connections != 0 {
		t.Fatalf("%d members left behind", c.Connections)
	}
	pos, err := f.rlog.Position(ctx, "a", protocol.PresenceChannel("race"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := f.rlog.Range(ctx, "a", protocol.PresenceChannel("race"), pos.Epoch, 1, pos.Offset)
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]protocol.PresenceAction{}
	for _, e := range entries {
		env := decode(t, e)
		fr := presence.Frame(&env)
		state[fr.Presence.Member.ConnectionID] = fr.Presence.Action
	}
	for m, a := range state {
		if a != protocol.PresenceLeave {
			t.Errorf("member %s: last event %s, want leave", m, a)
		}
	}
}

func decode(t *testing.T, e roomlog.Entry) envelope.Envelope {
	t.Helper()
	env, err := envelope.Decode(e.Payload)
	if err != nil {
		t.Fatalf("stream entry %d: %v", e.Offset, err)
	}
	return env
}
