package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/rest"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/tests/harness"
)

// pclient is a raw connection with a reader goroutine: replies go to the
// waiting call, presence events are recorded in arrival order.
type pclient struct {
	t         testing.TB
	r         *harness.Raw
	connected *protocol.Connected
	nextID    atomic.Uint64

	mu      sync.Mutex
	waiting map[uint64]chan *protocol.Reply
	events  []protocol.PresenceEvent
	closed  bool
}

func dialPresence(t testing.TB, url, tok string) *pclient {
	t.Helper()
	r, c := harness.Connect(t, url, tok)
	p := &pclient{t: t, r: r, connected: c, waiting: map[uint64]chan *protocol.Reply{}}
	go p.read()
	return p
}

func (p *pclient) read() {
	for {
		f, err := p.r.Read(time.Hour)
		if err != nil || f.Op == ws.OpClose {
			p.mu.Lock()
			p.closed = true
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		switch {
		case f.Server.Reply != nil:
			if ch, ok := p.waiting[f.Server.Reply.ID]; ok {
				ch <- f.Server.Reply
				delete(p.waiting, f.Server.Reply.ID)
			}
		case f.Server.Presence != nil:
			p.events = append(p.events, *f.Server.Presence)
		}
		p.mu.Unlock()
	}
}

// call sends cmd and waits for its reply; it fails the test on an error
// reply.
func (p *pclient) call(cmd map[string]any) *protocol.Reply {
	p.t.Helper()
	r := p.try(cmd)
	if r.Error != nil {
		p.t.Fatalf("%v: %s: %s", cmd, r.Error.Code, r.Error.Message)
	}
	return r
}

// try sends cmd and returns its reply, error or not.
func (p *pclient) try(cmd map[string]any) *protocol.Reply {
	p.t.Helper()
	id := p.nextID.Add(1)
	cmd["id"] = id
	ch := make(chan *protocol.Reply, 1)
	p.mu.Lock()
	p.waiting[id] = ch
	p.mu.Unlock()
	p.r.WriteJSON(cmd)
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		p.t.Fatalf("%v: no reply", cmd)
		return nil
	}
}

func (p *pclient) snapshot() []protocol.PresenceEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]protocol.PresenceEvent(nil), p.events...)
}

// count returns how many events of action each member (connection id) got.
func (p *pclient) count(action protocol.PresenceAction) map[string]int {
	out := map[string]int{}
	for _, e := range p.snapshot() {
		if e.Action == action {
			out[e.Member.ConnectionID]++
		}
	}
	return out
}

// drop cuts the TCP connection without a close frame, like a lost network.
func (p *pclient) drop() { _ = p.r.Conn.Close() }

func presenceCaps() token.Capabilities {
	return token.Capabilities{"*": {token.OpJoin, token.OpPresence, token.OpPublish}}
}

// getAll pages through a room's presence set.
func getAll(t testing.TB, p *pclient, room string, limit int) []protocol.PresenceMember {
	t.Helper()
	var all []protocol.PresenceMember
	cursor := ""
	for {
		cmd := map[string]any{"op": "presence.get", "room": room, "limit": limit}
		if cursor != "" {
			cmd["cursor"] = cursor
		}
		r := p.call(cmd)
		if len(r.Members) > limit {
			t.Fatalf("page of %d members, limit %d", len(r.Members), limit)
		}
		all = append(all, r.Members...)
		if r.Cursor == "" {
			return all
		}
		cursor = r.Cursor
	}
}

func TestPresenceThousandMembersOverTwoGateways(t *testing.T) {
	env := harness.NewEnv(t)
	gws := []*harness.Process{env.Gateway(t, "pg1"), env.Gateway(t, "pg2")}
	env.Presence(t, "pw1")
	env.Presence(t, "pw2")
	const (
		room        = "stage"
		members     = 1000
		subscribers = 40
		leavers     = 100
	)
	clients := make([]*pclient, members)
	for i := range clients {
		tok := env.Token(t, fmt.Sprintf("user-%d", i), presenceCaps(), time.Hour)
		clients[i] = dialPresence(t, gws[i%2].WSURL(), tok)
		clients[i].call(map[string]any{"op": "join", "room": room})
	}
	// The first few clients on both gateways subscribe before anyone enters.
	subs := clients[:subscribers]
	for _, s := range subs {
		s.call(map[string]any{"op": "presence.subscribe", "room": room})
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.call(map[string]any{"op": "presence.enter", "room": room, "data": map[string]int{"seat": i}})
		}()
	}
	wg.Wait()

	ids := map[string]int{} // connection id → client index
	for i, c := range clients {
		ids[c.connected.SessionID] = i
	}
	for _, s := range subs {
		testenv.WaitFor(t, 30*time.Second, "every subscriber to see 1,000 joins", func() bool { return len(s.count(protocol.PresenceJoin)) == members })
	}
	for si, s := range subs {
		for id, n := range s.count(protocol.PresenceJoin) {
			if _, ok := ids[id]; !ok || n != 1 {
				t.Fatalf("subscriber %d: join of %q seen %d times (known member: %v)", si, id, n, ok)
			}
		}
		checkOffsets(t, s.snapshot())
	}

	all := getAll(t, clients[members-1], room, 300)
	if len(all) != members {
		t.Fatalf("presence.get returned %d members, want %d", len(all), members)
	}
	seen := map[string]bool{}
	for _, m := range all {
		i, ok := ids[m.ConnectionID]
		if !ok || seen[m.ConnectionID] {
			t.Fatalf("presence.get: unknown or repeated member %+v", m)
		}
		seen[m.ConnectionID] = true
		var data struct{ Seat int }
		if err := json.Unmarshal(m.Data, &data); err != nil || data.Seat != i || m.ClientID != fmt.Sprintf("user-%d", i) {
			t.Fatalf("member %+v: want client user-%d, seat %d", m, i, i)
		}
	}
	if c := clients[0].call(map[string]any{"op": "presence.count", "room": room}).Count; c == nil || c.Clients != members || c.Connections != members {
		t.Fatalf("presence.count = %+v", c)
	}

	// The last 100 leave: half explicitly, half by closing normally.
	gone := clients[members-leavers:]
	for i, c := range gone {
		if i%2 == 0 {
			c.call(map[string]any{"op": "presence.leave", "room": room})
		} else {
			c.r.WriteFrame(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
		}
	}
	for _, s := range subs {
		testenv.WaitFor(t, 30*time.Second, "every subscriber to see 100 leaves", func() bool { return len(s.count(protocol.PresenceLeave)) == leavers })
	}
	for si, s := range subs {
		for id, n := range s.count(protocol.PresenceLeave) {
			if i, ok := ids[id]; !ok || i < members-leavers || n != 1 {
				t.Fatalf("subscriber %d: leave of %q (client %d) seen %d times", si, id, i, n)
			}
		}
		checkOffsets(t, s.snapshot())
	}
	if got := len(getAll(t, clients[0], room, 1000)); got != members-leavers {
		t.Fatalf("after the leaves presence.get returned %d members, want %d", got, members-leavers)
	}
}

// checkOffsets: presence events arrive in offset order without gaps.
func checkOffsets(t testing.TB, evs []protocol.PresenceEvent) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		if evs[i].Offset != evs[i-1].Offset+1 {
			t.Fatalf("presence event %d has offset %d after %d", i, evs[i].Offset, evs[i-1].Offset)
		}
	}
}

func TestPresenceMembersOfAKilledGatewayLeave(t *testing.T) {
	env := harness.NewEnv(t)
	ttl := "3s"
	doomed := env.Gateway(t, "kg1", "GATEWAY_PRESENCE_NODE_TTL="+ttl)
	stays := env.Gateway(t, "kg2", "GATEWAY_PRESENCE_NODE_TTL="+ttl)
	env.Presence(t, "kw1", "PRESENCE_SWEEP_INTERVAL=1s")
	env.Presence(t, "kw2", "PRESENCE_SWEEP_INTERVAL=1s")
	const room = "hall"
	enter := func(gw *harness.Process, name string) *pclient {
		c := dialPresence(t, gw.WSURL(), env.Token(t, name, presenceCaps(), time.Hour))
		c.call(map[string]any{"op": "join", "room": room})
		c.call(map[string]any{"op": "presence.enter", "room": room})
		return c
	}
	watcher := dialPresence(t, stays.WSURL(), env.Token(t, "watcher", presenceCaps(), time.Hour))
	watcher.call(map[string]any{"op": "presence.subscribe", "room": room})
	doomedIDs := map[string]bool{}
	for i := 0; i < 300; i++ {
		doomedIDs[enter(doomed, fmt.Sprintf("d%d", i)).connected.SessionID] = true
	}
	for i := 0; i < 50; i++ {
		enter(stays, fmt.Sprintf("s%d", i))
	}
	testenv.WaitFor(t, 30*time.Second, "350 joins", func() bool { return len(watcher.count(protocol.PresenceJoin)) == 350 })

	killed := time.Now()
	if err := doomed.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Expiry (3 s) + sweep interval (1 s) + the 5 s the issue allows.
	testenv.WaitFor(t, 9*time.Second, "the killed gateway's 300 members to leave", func() bool {
		return len(watcher.count(protocol.PresenceLeave)) >= 300
	})
	t.Logf("300 members left %s after kill -9 (node TTL %s)", time.Since(killed).Round(100*time.Millisecond), ttl)
	for id, n := range watcher.count(protocol.PresenceLeave) {
		if !doomedIDs[id] || n != 1 {
			t.Fatalf("leave of %s seen %d times (member of the killed gateway: %v)", id, n, doomedIDs[id])
		}
	}
	all := getAll(t, watcher, room, 1000)
	if len(all) != 50 {
		t.Fatalf("presence.get after the kill: %d members, want the 50 of the live gateway", len(all))
	}
	checkOffsets(t, watcher.snapshot())
}

func TestPresenceResumeWithinTheGraceMakesNoEvents(t *testing.T) {
	env := harness.NewEnv(t)
	gw1 := env.Gateway(t, "rg1", "GATEWAY_PRESENCE_GRACE=2s")
	gw2 := env.Gateway(t, "rg2", "GATEWAY_PRESENCE_GRACE=2s")
	pw := env.Presence(t, "rw1")
	const room = "desk"
	watcher := dialPresence(t, gw2.WSURL(), env.Token(t, "watcher", presenceCaps(), time.Hour))
	watcher.call(map[string]any{"op": "presence.subscribe", "room": room})

	tok := env.Token(t, "ada", presenceCaps(), time.Hour)
	ada := dialPresence(t, gw1.WSURL(), tok)
	ada.call(map[string]any{"op": "join", "room": room})
	ada.call(map[string]any{"op": "presence.enter", "room": room, "data": map[string]string{"name": "Ada"}})
	testenv.WaitFor(t, 10*time.Second, "ada's join", func() bool { return len(watcher.snapshot()) == 1 })

	// The network drops; ada resumes her session on the other gateway.
	ada.drop()
	back := dialPresence(t, gw2.WSURL(), tok)
	r := back.call(map[string]any{"op": "resume", "session_id": ada.connected.SessionID, "resume_token": ada.connected.ResumeToken})
	if r.SessionID != ada.connected.SessionID {
		t.Fatalf("resume: %+v", r)
	}
	back.call(map[string]any{"op": "join", "room": room})

	// The dropped connection's detach runs after the 2 s grace and must
	// find the member taken over. Wait until the presence worker has
	// handled it: nothing scheduled, nothing pending.
	testenv.WaitFor(t, 15*time.Second, "the detach to be handled", func() bool {
		return pw.Metric(t, "roomcast_presence_queue_scheduled") == 0 && pw.Metric(t, "roomcast_presence_queue_pending") == 0 &&
			pw.Metric(t, "roomcast_presence_queue_retry") == 0 && pw.Metric(t, "roomcast_presence_tasks_total") >= 2 // at least the enter and the detach
	})
	// A sentinel member enters and leaves: the watcher's events after ada's
	// join are exactly the sentinel's, in order.
	bob := dialPresence(t, gw1.WSURL(), env.Token(t, "bob", presenceCaps(), time.Hour))
	bob.call(map[string]any{"op": "join", "room": room})
	bob.call(map[string]any{"op": "presence.enter", "room": room})
	// Changes are applied concurrently: an enter and a leave in quick
	// succession may collapse to nothing. Let the join land first.
	testenv.WaitFor(t, 10*time.Second, "bob's join", func() bool { return len(watcher.snapshot()) >= 2 })
	bob.call(map[string]any{"op": "presence.leave", "room": room})
	testenv.WaitFor(t, 10*time.Second, "bob's join and leave", func() bool { return len(watcher.snapshot()) >= 3 })
	evs := watcher.snapshot()
	if len(evs) != 3 || evs[1].Member.ClientID != "bob" || evs[1].Action != protocol.PresenceJoin ||
		evs[2].Member.ClientID != "bob" || evs[2].Action != protocol.PresenceLeave {
		t.Fatalf("events after ada's resume: %+v", evs)
	}
	members := getAll(t, watcher, room, 10)
	if len(members) != 1 || members[0].ConnectionID != ada.connected.SessionID || string(members[0].Data) != `{"name":"Ada"}` {
		t.Fatalf("members after the resume: %+v", members)
	}

	// Without a resume the member leaves after the grace, with one event.
	back.drop()
	testenv.WaitFor(t, 15*time.Second, "ada to leave after the grace", func() bool { return len(watcher.snapshot()) == 4 })
	if e := watcher.snapshot()[3]; e.Action != protocol.PresenceLeave || e.Member.ClientID != "ada" {
		t.Fatalf("last event %+v, want ada's leave", e)
	}
}

func TestPresenceBadInput(t *testing.T) {
	env := harness.NewEnv(t)
	gw := env.Gateway(t, "bg1", "GATEWAY_MAX_PRESENCE_DATA_BYTES=64")
	c := dialPresence(t, gw.WSURL(), env.Token(t, "u", token.Capabilities{"open": {token.OpJoin, token.OpPresence}, "closed": {token.OpJoin}}, time.Hour))
	c.call(map[string]any{"op": "join", "room": "closed"})
	for _, tc := range []struct {
		cmd  map[string]any
		code protocol.Code
	}{
		{map[string]any{"op": "presence.enter", "room": "open"}, protocol.CodeNotJoined},
		{map[string]any{"op": "presence.enter", "room": "closed"}, protocol.CodeForbidden},
		{map[string]any{"op": "presence.get", "room": "closed"}, protocol.CodeForbidden},
		{map[string]any{"op": "presence.subscribe", "room": "closed"}, protocol.CodeForbidden},
		{map[string]any{"op": "presence.update", "room": "open", "data": 1}, protocol.CodeNotPresent},
		{map[string]any{"op": "presence.leave", "room": "open"}, protocol.CodeNotPresent},
		{map[string]any{"op": "presence.unsubscribe", "room": "open"}, protocol.CodeNotJoined},
		{map[string]any{"op": "presence.get", "room": "open", "limit": 1001}, protocol.CodeBadRequest},
		{map[string]any{"op": "presence.get", "room": "open", "limit": -1}, protocol.CodeBadRequest},
		{map[string]any{"op": "presence.get", "room": "open", "cursor": "%%%"}, protocol.CodeBadRequest},
		{map[string]any{"op": "presence.count", "room": ""}, protocol.CodeInvalidRoom},
	} {
		if r := c.try(tc.cmd); r.Error == nil || r.Error.Code != tc.code {
			t.Errorf("%v: reply %+v, want %s", tc.cmd, r, tc.code)
		}
	}
	c.call(map[string]any{"op": "join", "room": "open"})
	big := map[string]string{"bio": string(make([]byte, 100))}
	if r := c.try(map[string]any{"op": "presence.enter", "room": "open", "data": big}); r.Error == nil || r.Error.Code != protocol.CodeMessageTooLarge {
		t.Fatalf("oversized presence data: %+v", r)
	}
	// The connection still works.
	if r := c.call(map[string]any{"op": "presence.count", "room": "open"}); r.Count == nil {
		t.Fatalf("count after bad input: %+v", r)
	}
}

func TestPresenceOverREST(t *testing.T) {
	env := harness.NewEnv(t)
	gw := env.Gateway(t, "prest")
	env.Presence(t, "prestw")
	const room = "team/ops" // a '/' travels percent-encoded in the path
	for i := 0; i < 5; i++ {
		c := dialPresence(t, gw.WSURL(), env.Token(t, fmt.Sprintf("u%d", i%3), presenceCaps(), time.Hour))
		c.call(map[string]any{"op": "join", "room": room})
		c.call(map[string]any{"op": "presence.enter", "room": room, "data": map[string]int{"i": i}})
	}
	get := func(path, cred string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, gw.HTTPURL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+cred)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		checkAgainstSpec(t, http.MethodGet, gw.HTTPURL()+path, req.Header, nil, resp.StatusCode, resp.Header, body)
		return resp.StatusCode, body
	}
	key := env.Key.String()
	base := "/v1/rooms/" + url.PathEscape(room) + "/presence"
	var counted struct{ Clients, Connections int }
	testenv.WaitFor(t, 10*time.Second, "5 members", func() bool {
		status, body := get(base+"/count", key)
		return status == 200 && json.Unmarshal(body, &counted) == nil && counted.Connections == 5
	})
	if counted.Clients != 3 {
		t.Fatalf("count %+v, want 3 clients, 5 connections", counted)
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		path := base + "?limit=2"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		status, body := get(path, key)
		var page struct {
			Room    string
			Members []struct {
				ConnectionID string `json:"connection_id"`
			}
			Cursor string
		}
		if status != 200 || json.Unmarshal(body, &page) != nil || page.Room != room || len(page.Members) > 2 {
			t.Fatalf("page %d: %d %s", pages, status, body)
		}
		for _, m := range page.Members {
			if seen[m.ConnectionID] {
				t.Fatalf("member %s on two pages", m.ConnectionID)
			}
			seen[m.ConnectionID] = true
		}
		if cursor = page.Cursor; cursor == "" {
			break
		}
	}
	if len(seen) != 5 {
		t.Fatalf("paged %d members, want 5", len(seen))
	}
	// The Go REST SDK reads the same.
	sdk, err := rest.New(rest.Config{GatewayURL: gw.HTTPURL(), APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := sdk.PresenceMembers(context.Background(), room, 2)
	if err != nil || len(ms) != 5 {
		t.Fatalf("REST SDK PresenceMembers: %d members, %v", len(ms), err)
	}
	if n, err := sdk.PresenceCount(context.Background(), room); err != nil || n.Clients != 3 || n.Connections != 5 {
		t.Fatalf("REST SDK PresenceCount: %+v, %v", n, err)
	}

	noPresence := env.Token(t, "x", token.Capabilities{"*": {token.OpJoin}}, time.Hour)
	for _, tc := range []struct {
		path, cred string
		status     int
	}{
		{base, noPresence, http.StatusForbidden},
		{base, "nope", http.StatusUnauthorized},
		{base + "?limit=0", key, http.StatusBadRequest},
		{base + "?limit=1001", key, http.StatusBadRequest},
		{base + "?cursor=%25%25", key, http.StatusBadRequest},
		{"/v1/rooms/" + url.PathEscape("bad\x01room") + "/presence", key, http.StatusBadRequest},
	} {
		if status, body := get(tc.path, tc.cred); status != tc.status {
			t.Errorf("GET %s: %d %s, want %d", tc.path, status, body, tc.status)
		}
	}
}
