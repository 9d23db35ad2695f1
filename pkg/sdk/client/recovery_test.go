package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// TestMain fails the package when a Client, connection or fake goroutine
// outlives the tests: everything a Client starts must end after Close (or
// a failed Dial).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(waitLimit); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines still running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to limit for every goroutine running this
// package's code to end, and returns the stacks of those that do not.
func leakedGoroutines(limit time.Duration) string {
	deadline := time.Now().Add(limit)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "sdk/client.(*") && !strings.Contains(g, "leakedGoroutines") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var sess1 = fakeSession{ID: testConnected.SessionID, Token: testConnected.ResumeToken}

// eventLog makes cfg report epoch changes to the returned log; with
// logMessages, messages and epoch changes land there in delivery order.
func eventLog(cfg *Config) chan string {
	log := make(chan string, 64)
	cfg.OnEpochChange = func(ec EpochChange) {
		log <- fmt.Sprintf("epoch %s %s:%d -> %s:%d", ec.Room, ec.Old.Epoch, ec.Old.Offset, ec.New.Epoch, ec.New.Offset)
	}
	return log
}

func logMessages(c *Client, log chan string) {
	c.OnAnyMessage(func(m protocol.Message) {
		if m.Transient {
			log <- fmt.Sprintf("msg %s transient %s", m.Room, m.Data)
			return
		}
		log <- fmt.Sprintf("msg %s %s:%d", m.Room, m.Epoch, m.Offset)
	})
}

func expectLog(t *testing.T, log chan string, want ...string) {
	t.Helper()
	for _, w := range want {
		if got := recv(t, log, w); got != w {
			t.Fatalf("got %q, want %q", got, w)
		}
	}
}

func TestStateChangesInOrder(t *testing.T) {
	g := newFakeGateway(t)
	st := newStates()
	c, fc := dial(t, g, Config{OnStateChange: st.record, ReconnectBaseDelay: time.Millisecond})
	fc.drop()
	fc2 := g.accept(t)
	fc2.handshake(t, fakeSession{"sess-2", "tok-2"})
	fc2.resumeOK(t, sess1, "tok-3")
	st.next(t, StateResumed)
	_ = c.Close()
	waitClosed(t, c.Done(), "Done")

	st.mu.Lock()
	defer st.mu.Unlock()
	var got []State
	for _, sc := range st.all {
		got = append(got, sc.State)
	}
	want := []State{StateConnecting, StateConnected, StateReconnecting, StateConnecting, StateResumed, StateClosed}
	if !slices.Equal(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
	if r := st.all[2]; r.Err == nil || r.Attempt != 1 || r.Delay > time.Millisecond {
		t.Errorf("reconnecting %+v, want the drop's error, attempt 1, a delay within the base", r)
	}
	if r := st.all[4]; !r.Recovered {
		t.Errorf("resumed %+v, want recovered (the session was resumed, no rooms)", r)
	}
	if r := st.all[5]; !errors.Is(r.Err, ErrClosed) {
		t.Errorf("closed %+v, want ErrClosed", r)
	}
}

func TestBackoffGrowsUntilMaxReconnectAttempts(t *testing.T) {
	g := newFakeGateway(t)
	st := newStates()
	const base, maxDelay, attempts = time.Millisecond, 4 * time.Millisecond, 5
	c, fc := dial(t, g, Config{OnStateChange: st.record, ReconnectBaseDelay: base, ReconnectMaxDelay: maxDelay, MaxReconnectAttempts: attempts})
	g.refuse.Store(http.StatusServiceUnavailable)
	fc.drop()
	waitClosed(t, c.Done(), "Done")

	var he *HandshakeError
	if err := c.Err(); !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "gave up after 5") {
		t.Fatalf("Err() = %v, want giving up after 5 attempts, wrapping the 503", err)
	}
	if n := len(g.refused); n != attempts {
		t.Errorf("%d handshakes, want %d", n, attempts)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	n := 0
	for _, sc := range st.all {
		if sc.State != StateReconnecting {
			continue
		}
		n++
		if sc.Attempt != n || sc.Delay < 0 || sc.Delay > min(maxDelay, base<<(n-1)) {
			t.Errorf("reconnecting %+v: want attempt %d waiting at most %s", sc, n, min(maxDelay, base<<(n-1)))
		}
		if n > 1 && !errors.As(sc.Err, &he) {
			t.Errorf("attempt %d reports %v, want the previous attempt's 503", n, sc.Err)
		}
	}
	if n != attempts {
		t.Errorf("%d reconnecting states, want %d", n, attempts)
	}
}

func TestBackoffIsFullJitter(t *testing.T) {
	c := &Client{cfg: Config{ReconnectBaseDelay: 100 * time.Millisecond, ReconnectMaxDelay: time.Second}}
	for attempt := 1; attempt <= 40; attempt++ {
		window := min(time.Second, 100*time.Millisecond<<min(attempt-1, 20))
		lo, hi := window, time.Duration(0)
		for range 2000 {
			d := c.backoff(protocol.RetryBackoff, attempt)
			if d < 0 || d > window {
				t.Fatalf("attempt %d waits %s, outside [0, %s]", attempt, d, window)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter spreads over the whole window, from near zero.
		if lo > window/10 || hi < window*9/10 {
			t.Fatalf("attempt %d: delays within [%s, %s], want spread over [0, %s]", attempt, lo, hi, window)
		}
	}
	for _, r := range []protocol.Retry{protocol.RetryNow, protocol.RetryRefreshToken} {
		for range 1000 {
			if d := c.backoff(r, 1); d < 0 || d >= 100*time.Millisecond {
				t.Fatalf("%v waits %s, want under 100ms", r, d)
			}
		}
	}
}

func TestHandshakeRefusalWhileReconnecting(t *testing.T) {
	for _, tt := range []struct {
		status   int
		terminal bool
	}{
		{http.StatusUnauthorized, true},
		{http.StatusForbidden, true},
		{http.StatusTooManyRequests, false},
		{http.StatusInternalServerError, false},
		{http.StatusBadGateway, false},
	} {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			g := newFakeGateway(t)
			st := newStates()
			c, fc := dial(t, g, Config{OnStateChange: st.record, ReconnectBaseDelay: time.Millisecond})
			g.refuse.Store(int32(tt.status))
			fc.drop()
			if tt.terminal {
				waitClosed(t, c.Done(), "Done")
				var he *HandshakeError
				if !errors.As(c.Err(), &he) || he.StatusCode != tt.status {
					t.Fatalf("Err() = %v, want *HandshakeError{%d}", c.Err(), tt.status)
				}
				if n := len(g.refused); n != 1 {
					t.Fatalf("%d handshakes after a %d, want 1", n, tt.status)
				}
				return
			}
			recv(t, g.refused, "a refused handshake")
			recv(t, g.refused, "a second refused handshake")
			g.refuse.Store(0)
			fc2 := g.accept(t)
			fc2.handshake(t, fakeSession{"sess-2", "tok-2"})
			fc2.resumeOK(t, sess1, "tok-3")
			st.next(t, StateResumed)
			if err := c.Err(); err != nil {
				t.Fatalf("Err() = %v after reconnecting", err)
			}
		})
	}
}

func TestResumeReplaysOverlapOnceAndReportsEachRoom(t *testing.T) {
	g := newFakeGateway(t)
	st := newStates()
	cfg := Config{OnStateChange: st.record, ReconnectBaseDelay: time.Millisecond}
	log := eventLog(&cfg)
	c, fc := dial(t, g, cfg)
	logMessages(c, log)
	joinAt(t, c, fc, "a", protocol.Position{Offset: 3, Epoch: "e1"})
	joinAt(t, c, fc, "b", protocol.Position{Offset: 10, Epoch: "e1"})
	fc.message(t, protocol.Message{Room: "a", Offset: 4, Epoch: "e1"})
	fc.message(t, protocol.Message{Room: "a", Offset: 5, Epoch: "e1"})
	fc.message(t, protocol.Message{Room: "b", Offset: 11, Epoch: "e1"})
	expectLog(t, log, "msg a e1:4", "msg a e1:5", "msg b e1:11")

	fc.drop()
	fc2 := g.accept(t)
	fc2.handshake(t, fakeSession{"sess-2", "tok-2"})
	fc2.resumeOK(t, sess1, "tok-3", "a", "b")
	// a's stream still holds 2..8: recovered, replayed from 4 (overlap).
	// b's holds 20..25 only: 12..19 are gone.
	streams := map[string]fakeStream{"a": {"e1", 2, 8}, "b": {"e1", 20, 25}}
	joins := map[string]protocol.Command{}
	for range 2 {
		cmd := fc2.rejoin(t, streams)
		joins[cmd.Room] = cmd
	}
	if s := joins["a"].Since; s == nil || *s != (protocol.Position{Offset: 5, Epoch: "e1"}) {
		t.Errorf("a re-joined since %+v, want e1:5", s)
	}
	if s := joins["b"].Since; s == nil || *s != (protocol.Position{Offset: 11, Epoch: "e1"}) {
		t.Errorf("b re-joined since %+v, want e1:11", s)
	}
	fc2.message(t, protocol.Message{Room: "b", Offset: 26, Epoch: "e1"})
	fc2.message(t, protocol.Message{Room: "a", Offset: 9, Epoch: "e1"})
	fc2.message(t, protocol.Message{Room: "a", Offset: 10, Epoch: "e1"}) // sentinel

	var a, b []string
	for len(a) < 5 || len(b) < 1 {
		m := recv(t, log, "a message")
		if strings.HasPrefix(m, "msg a ") {
			a = append(a, m)
		} else {
			b = append(b, m)
		}
	}
	if want := []string{"msg a e1:6", "msg a e1:7", "msg a e1:8", "msg a e1:9", "msg a e1:10"}; !slices.Equal(a, want) {
		t.Errorf("room a got %q, want %q: each message once, in order", a, want)
	}
	if want := []string{"msg b e1:26"}; !slices.Equal(b, want) {
		t.Errorf("room b got %q, want %q", b, want)
	}

	res := st.next(t, StateResumed)
	if res.Recovered {
		t.Errorf("resumed %+v, want Recovered false: room b lost messages", res)
	}
	rooms := map[string]RoomRecovery{}
	for _, r := range res.Rooms {
		rooms[r.Room] = r
	}
	if r := rooms["a"]; !r.Recovered || r.Position != (protocol.Position{Offset: 8, Epoch: "e1"}) || r.EpochChanged || r.Err != nil {
		t.Errorf("room a: %+v, want recovered at e1:8", r)
	}
	if r := rooms["b"]; r.Recovered || r.Position != (protocol.Position{Offset: 25, Epoch: "e1"}) || r.EpochChanged || r.Err != nil {
		t.Errorf("room b: %+v, want not recovered, at e1:25, same epoch", r)
	}
	if info := c.Info(); info.SessionID != sess1.ID || info.ResumeToken != "tok-3" {
		t.Errorf("client holds %q/%q, want the resumed session with the new token", info.SessionID, info.ResumeToken)
	}
}

func TestFailedResumeContinuesWithTheNewSession(t *testing.T) {
	for _, code := range []protocol.Code{protocol.CodeSessionInvalid, protocol.CodeUnavailable} {
		t.Run(string(code), func(t *testing.T) {
			g := newFakeGateway(t)
			st := newStates()
			cfg := Config{OnStateChange: st.record, ReconnectBaseDelay: time.Millisecond}
			log := eventLog(&cfg)
			c, fc := dial(t, g, cfg)
			logMessages(c, log)
			joinAt(t, c, fc, "a", protocol.Position{Offset: 5, Epoch: "e1"})

			fc.drop()
			fc2 := g.accept(t)
			sess2 := fakeSession{"sess-2", "tok-2"}
			fc2.handshake(t, sess2)
			fc2.resumeFail(t, code)
			// The room's stream still has what was missed: since is sent
			// anyway and the room recovers, though the session did not.
			join := fc2.rejoin(t, map[string]fakeStream{"a": {"e1", 1, 7}})
			if join.Since == nil || *join.Since != (protocol.Position{Offset: 5, Epoch: "e1"}) {
				t.Fatalf("re-join since %+v, want e1:5", join.Since)
			}
			expectLog(t, log, "msg a e1:6", "msg a e1:7")
			res := st.next(t, StateResumed)
			if res.Recovered || len(res.Rooms) != 1 || !res.Rooms[0].Recovered {
				t.Fatalf("resumed %+v, want Recovered false overall (session lost), room a recovered", res)
			}
			if info := c.Info(); info.SessionID != sess2.ID || info.ResumeToken != sess2.Token {
				t.Fatalf("client holds %q/%q, want the new connection's session", info.SessionID, info.ResumeToken)
			}

			// The next reconnect resumes that session.
			fc2.drop()
			fc3 := g.accept(t)
			fc3.handshake(t, fakeSession{"sess-3", "tok-5"})
			fc3.resumeOK(t, sess2, "tok-6")
			if join := fc3.rejoin(t, map[string]fakeStream{"a": {"e1", 1, 7}}); join.Since == nil || join.Since.Offset != 7 {
				t.Fatalf("second re-join since %+v, want e1:7", join.Since)
			}
			if res := st.next(t, StateResumed); !res.Recovered {
				t.Fatalf("second resume %+v, want recovered", res)
			}
		})
	}
}

func TestNoResumeTokenMeansNoResume(t *testing.T) {
	g := newFakeGateway(t)
	st := newStates()
	noRedis := testConnected
	noRedis.SessionID, noRedis.ResumeToken = "", "" // the gateway's Redis was down
	c, fc := dialWith(t, g, Config{OnStateChange: st.record, ReconnectBaseDelay: time.Millisecond}, noRedis)
	joinAt(t, c, fc, "a", protocol.Position{Offset: 5, Epoch: "e1"})
	fc.drop()
	fc2 := g.accept(t)
	fc2.handshake(t, fakeSession{"sess-2", "tok-2"})
	// No resume: the first command is the re-join.
	fc2.rejoin(t, map[string]fakeStream{"a": {"e1", 1, 5}})
	if res := st.next(t, StateResumed); res.Recovered || len(res.Rooms) != 1 || !res.Rooms[0].Recovered {
		t.Fatalf("resumed %+v, want Recovered false (no session to resume), room a recovered", res)
	}
	if info := c.Info(); info.SessionID != "sess-2" || info.ResumeToken != "tok-2" {
		t.Fatalf("client holds %q/%q, want the new session", info.SessionID, info.ResumeToken)
	}
}

func TestLiveEpochChangeIsReportedBeforeItsFirstMessage(t *testing.T) {
	g := newFakeGateway(t)
	cfg := Config{}
	log := eventLog(&cfg)
	c, fc := dial(t, g, cfg)
	logMessages(c, log)
	joinAt(t, c, fc, "a", protocol.Position{Offset: 5, Epoch: "e1"})
	fc.message(t, protocol.Message{Room: "a", Offset: 6, Epoch: "e1"})
	fc.message(t, protocol.Message{Room: "a", Offset: 1, Epoch: "e2"}) // the room's state was lost
	fc.message(t, protocol.Message{Room: "a", Offset: 1, Epoch: "e2"}) // duplicate in the new epoch
	fc.message(t, protocol.Message{Room: "a", Offset: 2, Epoch: "e2"})
	expectLog(t, log, "msg a e1:6", "epoch a e1:6 -> e2:1", "msg a e2:1", "msg a e2:2")
}

func TestTransientMessagesAreNeverDropped(t *testing.T) {
	g := newFakeGateway(t)
	log := make(chan string, 16)
	c, fc := dial(t, g, Config{})
	logMessages(c, log)
	joinAt(t, c, fc, "a", protocol.Position{Offset: 5, Epoch: "e1"})
	for _, d := range []string{`"x"`, `"x"`, `"y"`} {
		fc.message(t, protocol.Message{Room: "a", Transient: true, Data: []byte(d)})
	}
	fc.message(t, protocol.Message{Room: "a", Offset: 6, Epoch: "e1"})
	expectLog(t, log, `msg a transient "x"`, `msg a transient "x"`, `msg a transient "y"`, "msg a e1:6")
}

func TestRejoinEpochChangeIsReported(t *testing.T) {
	g := newFakeGateway(t)
	st := newStates()
	cfg := Config{OnStateChange: st.record, ReconnectBaseDelay: time.Millisecond}
	log := eventLog(&cfg)
	c, fc := dial(t, g, cfg)
	logMessages(c, log)
	joinAt(t, c, fc, "a", protocol.Position{Offset: 5, Epoch: "e1"})
	fc.drop()
	fc2 := g.accept(t)
	fc2.handshake(t, fakeSession{"sess-2", "tok-2"})
	fc2.resumeOK(t, sess1, "tok-3", "a")
	fc2.rejoin(t, map[string]fakeStream{"a": {"e2", 1, 3}})
	res := st.next(t, StateResumed)
	if len(res.Rooms) != 1 || res.Rooms[0].Recovered || !res.Rooms[0].EpochChanged || res.Rooms[0].Position != (protocol.Position{Offset: 3, Epoch: "e2"}) {
		t.Fatalf("resumed %+v, want room a not recovered, epoch changed, at e2:3", res)
	}
	fc2.message(t, protocol.Message{Room: "a", Offset: 3, Epoch: "e2"}) // before the join position
	fc2.message(t, protocol.Message{Room: "a", Offset: 4, Epoch: "e2"})
	expectLog(t, log, "epoch a e1:5 -> e2:3", "msg a e2:4")
}

func TestRequestsWaitForTheConnection(t *testing.T) {
	g := newFakeGateway(t)
	st := newStates()
	c, fc := dial(t, g, Config{OnStateChange: st.record, ReconnectBaseDelay: time.Millisecond})
	fc.drop()
	st.next(t, StateReconnecting)
	fc2 := g.accept(t) // the reconnect is under way; `connected` not sent yet

	pub, join := make(chan error, 1), make(chan error, 1)
	go func() { _, err := c.Publish(context.Background(), "a", []byte(`1`)); pub <- err }()
	go func() { _, err := c.Join(context.Background(), "b"); join <- err }()
	// A Join whose ctx ends while disconnected fails and joins nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() { _, err := c.Join(ctx, "c"); cancelled <- err }()
	cancel()
	if err := recv(t, cancelled, "the cancelled Join"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Join: %v", err)
	}
	select {
	case err := <-pub:
		t.Fatalf("Publish returned %v while disconnected, want it to wait", err)
	case err := <-join:
		t.Fatalf("Join returned %v while disconnected, want it to wait", err)
	default:
	}

	fc2.handshake(t, fakeSession{"sess-2", "tok-2"})
	fc2.resumeOK(t, sess1, "tok-3")
	for range 2 {
		cmd := fc2.cmd(t)
		switch {
		case cmd.Op == protocol.OpPublish && cmd.Room == "a":
			fc2.reply(t, protocol.Reply{ID: cmd.ID, Room: "a", Position: &protocol.Position{Offset: 1, Epoch: "e1"}})
		case cmd.Op == protocol.OpJoin && cmd.Room == "b" && cmd.Since == nil:
			fc2.reply(t, protocol.Reply{ID: cmd.ID, Room: "b", Position: &protocol.Position{Offset: 1, Epoch: "e1"}})
		default:
			t.Fatalf("unexpected command %+v", cmd)
		}
	}
	if err := recv(t, pub, "Publish"); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := recv(t, join, "Join"); err != nil {
		t.Fatalf("Join: %v", err)
	}
	if res := st.next(t, StateResumed); len(res.Rooms) != 0 {
		t.Fatalf("resumed %+v, want no rooms: b was joined after", res)
	}

	// The next reconnect re-joins b only: c was never joined.
	fc2.drop()
	fc3 := g.accept(t)
	fc3.handshake(t, fakeSession{"sess-3", "tok-4"})
	fc3.resumeOK(t, fakeSession{sess1.ID, "tok-3"}, "tok-5") // the rotated token
	fc3.rejoin(t, map[string]fakeStream{"b": {"e1", 1, 1}})
	if res := st.next(t, StateResumed); len(res.Rooms) != 1 {
		t.Fatalf("resumed %+v, want room b only", res)
	}
}

func TestJoinInFlightFailsButTheRoomIsRejoined(t *testing.T) {
	g := newFakeGateway(t)
	st := newStates()
	log := make(chan string, 16)
	c, fc := dial(t, g, Config{OnStateChange: st.record, ReconnectBaseDelay: time.Millisecond})
	logMessages(c, log)
	res := make(chan error, 1)
	go func() { _, err := c.Join(context.Background(), "a"); res <- err }()
	expectCmd(t, fc, protocol.OpJoin)
	fc.drop() // the reply is lost
	if err := recv(t, res, "Join"); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Join: err = %v, want ErrDisconnected", err)
	}
	fc2 := g.accept(t)
	fc2.handshake(t, fakeSession{"sess-2", "tok-2"})
	fc2.resumeOK(t, sess1, "tok-3")
	if cmd := fc2.rejoin(t, map[string]fakeStream{"a": {"e1", 1, 4}}); cmd.Since != nil {
		t.Fatalf("re-join since %+v, want none: no position was ever known", cmd.Since)
	}
	fc2.message(t, protocol.Message{Room: "a", Offset: 5, Epoch: "e1"})
	expectLog(t, log, "msg a e1:5")
	if r := st.next(t, StateResumed); len(r.Rooms) != 1 || r.Rooms[0].Room != "a" || r.Rooms[0].Recovered {
		t.Fatalf("resumed %+v, want room a, not recovered", r)
	}
}

func TestLeaveStopsDeliveryAndRejoins(t *testing.T) {
	g := newFakeGateway(t)
	st := newStates()
	log := make(chan string, 16)
	c, fc := dial(t, g, Config{OnStateChange: st.record, ReconnectBaseDelay: time.Millisecond})
	logMessages(c, log)
	joinAt(t, c, fc, "a", protocol.Position{Offset: 1, Epoch: "e1"})
	joinAt(t, c, fc, "b", protocol.Position{Offset: 1, Epoch: "e1"})

	left := make(chan error, 1)
	go func() { left <- c.Leave(context.Background(), "a") }()
	leave := expectCmd(t, fc, protocol.OpLeave)
	// Messages the server sends before it handles the leave are not
	// delivered any more.
	fc.message(t, protocol.Message{Room: "a", Offset: 2, Epoch: "e1"})
	fc.message(t, protocol.Message{Room: "b", Offset: 2, Epoch: "e1"})
	expectLog(t, log, "msg b e1:2")
	fc.reply(t, protocol.Reply{ID: leave.ID, Room: "a"})
	if err := recv(t, left, "Leave"); err != nil {
		t.Fatalf("Leave: %v", err)
	}

	fc.drop()
	fc2 := g.accept(t)
	fc2.handshake(t, fakeSession{"sess-2", "tok-2"})
	fc2.resumeOK(t, sess1, "tok-3", "b")
	fc2.rejoin(t, map[string]fakeStream{"b": {"e1", 1, 2}}) // a would fail the test
	if r := st.next(t, StateResumed); len(r.Rooms) != 1 {
		t.Fatalf("resumed %+v, want room b only", r)
	}

	// A Leave cut off by a lost connection succeeds: the membership ended
	// with the connection and the room is not re-joined.
	go func() { left <- c.Leave(context.Background(), "b") }()
	expectCmd(t, fc2, protocol.OpLeave)
	fc2.drop()
	if err := recv(t, left, "Leave"); err != nil {
		t.Fatalf("Leave during a drop: %v", err)
	}
	fc3 := g.accept(t)
	fc3.handshake(t, fakeSession{"sess-3", "tok-4"})
	fc3.resumeOK(t, fakeSession{sess1.ID, "tok-3"}, "tok-5") // the rotated token
	if r := st.next(t, StateResumed); len(r.Rooms) != 0 {
		t.Fatalf("resumed %+v, want no rooms", r)
	}
}

func TestTransientPublishInFlightFails(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{ReconnectBaseDelay: time.Millisecond})
	res := make(chan error, 1)
	go func() { _, err := c.Publish(context.Background(), "a", []byte(`1`), Transient()); res <- err }()
	if cmd := expectCmd(t, fc, protocol.OpPublish); cmd.IdempotencyKey != "" {
		t.Fatalf("transient publish carries idempotency key %q", cmd.IdempotencyKey)
	}
	fc.drop()
	if err := recv(t, res, "Publish"); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("transient Publish: err = %v, want ErrDisconnected", err)
	}
}

func TestPublishKeepsTheCallersIdempotencyKey(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{ReconnectBaseDelay: time.Millisecond})
	res := make(chan error, 1)
	go func() {
		_, err := c.Publish(context.Background(), "a", []byte(`1`), WithIdempotencyKey("order-42"))
		res <- err
	}()
	if cmd := expectCmd(t, fc, protocol.OpPublish); cmd.IdempotencyKey != "order-42" {
		t.Fatalf("sent key %q, want the caller's", cmd.IdempotencyKey)
	}
	fc.drop()
	fc2 := g.accept(t)
	fc2.handshake(t, fakeSession{"sess-2", "tok-2"})
	fc2.resumeOK(t, sess1, "tok-3")
	again := expectCmd(t, fc2, protocol.OpPublish)
	if again.IdempotencyKey != "order-42" {
		t.Fatalf("retried with key %q, want the caller's", again.IdempotencyKey)
	}
	fc2.reply(t, protocol.Reply{ID: again.ID, Room: "a", Position: &protocol.Position{Offset: 1, Epoch: "e1"}})
	if err := recv(t, res, "Publish"); err != nil {
		t.Fatal(err)
	}
}

func TestTokenExpiredWithAStaticTokenEnds(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{ReconnectBaseDelay: time.Millisecond})
	fc.close(t, protocol.CloseTokenExpired, "expired")
	waitClosed(t, c.Done(), "Done")
	var ce *CloseError
	if !errors.As(c.Err(), &ce) || ce.Code != protocol.CloseTokenExpired {
		t.Fatalf("Err() = %v, want close 4002", c.Err())
	}
	select {
	case <-g.conns:
		t.Fatal("reconnected with the same expired token")
	default:
	}
}

func TestDialNetworkErrorIsReturnedAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	st := newStates()
	_, err = Dial(context.Background(), Config{URL: "ws://" + addr + "/v1/connect", Token: testToken, OnStateChange: st.record})
	var ce *CloseError
	if err == nil || errors.As(err, &ce) {
		t.Fatalf("Dial: err = %v, want a network error", err)
	}
	// Dial returned after its goroutines ended: the states are all there.
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.all) != 1 || st.all[0].State != StateConnecting {
		t.Fatalf("states %+v, want connecting only", st.all)
	}
}

func TestJoinTwiceKeepsDelivering(t *testing.T) {
	g := newFakeGateway(t)
	log := make(chan string, 16)
	c, fc := dial(t, g, Config{})
	logMessages(c, log)
	joinAt(t, c, fc, "a", protocol.Position{Offset: 5, Epoch: "e1"})
	fc.message(t, protocol.Message{Room: "a", Offset: 6, Epoch: "e1"})
	expectLog(t, log, "msg a e1:6")
	// Joined already: the server answers with where the room stands now,
	// ahead of messages still on their way. They must not be dropped.
	joinAt(t, c, fc, "a", protocol.Position{Offset: 8, Epoch: "e1"})
	fc.message(t, protocol.Message{Room: "a", Offset: 7, Epoch: "e1"})
	fc.message(t, protocol.Message{Room: "a", Offset: 8, Epoch: "e1"})
	expectLog(t, log, "msg a e1:7", "msg a e1:8")
}
