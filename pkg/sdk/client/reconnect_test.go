package client

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// states records state changes in order.
type states struct {
	mu  sync.Mutex
	all []StateChange
	ch  chan StateChange
}

func newStates() *states { return &states{ch: make(chan StateChange, 64)} }

func (s *states) record(sc StateChange) {
	s.mu.Lock()
	s.all = append(s.all, sc)
	s.mu.Unlock()
	s.ch <- sc
}

// next waits for the next state change of kind want, skipping others.
func (s *states) next(t *testing.T, want State) StateChange {
	t.Helper()
	for {
		sc := recv(t, s.ch, "state "+want.String())
		if sc.State == want {
			return sc
		}
	}
}

func expectCmd(t testing.TB, fc *fakeConn, op protocol.Op) protocol.Command {
	t.Helper()
	c := fc.cmd(t)
	if c.Op != op {
		t.Fatalf("client sent %q, want %q", c.Op, op)
	}
	return c
}

// joinAt joins room on the first connection at position pos.
func joinAt(t testing.TB, c *Client, fc *fakeConn, room string, pos protocol.Position) {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := c.Join(context.Background(), room); done <- err }()
	cmd := expectCmd(t, fc, protocol.OpJoin)
	fc.reply(t, protocol.Reply{ID: cmd.ID, Room: room, Position: &pos})
	if err := recv(t, done, "Join"); err != nil {
		t.Fatal(err)
	}
}

func TestReconnectResumesAndRecoversWithoutDuplicates(t *testing.T) {
	g := newFakeGateway(t)
	st := newStates()
	c, fc := dial(t, g, Config{OnStateChange: st.record, ReconnectBaseDelay: time.Millisecond})
	got := make(chan uint64, 16)
	c.OnMessage("r", func(m protocol.Message) { got <- m.Offset })
	joinAt(t, c, fc, "r", protocol.Position{Offset: 3, Epoch: "e1"})
	for _, off := range []uint64{4, 5} {
		fc.message(t, protocol.Message{Room: "r", Offset: off, Epoch: "e1"})
	}
	if recv(t, got, "4") != 4 || recv(t, got, "5") != 5 {
		t.Fatal("live messages out of order")
	}

	_ = fc.conn.Close() // the network drops: no close frame
	st.next(t, StateReconnecting)
	fc2 := g.accept(t)
	fc2.sendConnected(t, protocol.Connected{ConnectionID: "conn-2", SessionID: "sess-2", ResumeToken: "tok-2"})
	resume := expectCmd(t, fc2, protocol.OpResume)
	if resume.SessionID != "sess-1" || resume.ResumeToken != "resume-secret" {
		t.Fatalf("resume with %q/%q, want the first session's credentials", resume.SessionID, resume.ResumeToken)
	}
	fc2.reply(t, protocol.Reply{ID: resume.ID, SessionID: "sess-1", ResumeToken: "tok-3", Rooms: []string{"r"}})
	join := expectCmd(t, fc2, protocol.OpJoin)
	if join.Room != "r" || join.Since == nil || *join.Since != (protocol.Position{Offset: 5, Epoch: "e1"}) {
		t.Fatalf("re-join %+v since %+v, want since offset 5 of e1", join, join.Since)
	}
	fc2.reply(t, protocol.Reply{ID: join.ID, Room: "r", Position: &protocol.Position{Offset: 7, Epoch: "e1"}, Recovered: true})
	// The replay overlaps what was delivered (5): it must not repeat.
	for _, off := range []uint64{5, 6, 7, 8} {
		fc2.message(t, protocol.Message{Room: "r", Offset: off, Epoch: "e1"})
	}
	for _, want := range []uint64{6, 7, 8} {
		if off := recv(t, got, fmt.Sprint(want)); off != want {
			t.Fatalf("after resume got offset %d, want %d", off, want)
		}
	}
	res := st.next(t, StateResumed)
	if !res.Recovered || len(res.Rooms) != 1 || !res.Rooms[0].Recovered || res.Rooms[0].Room != "r" {
		t.Fatalf("resumed %+v, want recovered room r", res)
	}
	if info := c.Info(); info.SessionID != "sess-1" || info.ResumeToken != "tok-3" {
		t.Fatalf("after resume the client holds %q/%q, want sess-1 with the rotated token", info.SessionID, info.ResumeToken)
	}
}

func TestRefusedResumeIsNotRecovered(t *testing.T) {
	g := newFakeGateway(t)
	st := newStates()
	c, fc := dial(t, g, Config{OnStateChange: st.record, ReconnectBaseDelay: time.Millisecond})
	joinAt(t, c, fc, "r", protocol.Position{Offset: 1, Epoch: "e1"})
	_ = fc.conn.Close()
	fc2 := g.accept(t)
	fc2.sendConnected(t, protocol.Connected{SessionID: "sess-2", ResumeToken: "tok-2"})
	resume := expectCmd(t, fc2, protocol.OpResume)
	fc2.reply(t, protocol.Reply{ID: resume.ID, Error: &protocol.Error{Code: protocol.CodeSessionInvalid, Message: "expired"}})
	join := expectCmd(t, fc2, protocol.OpJoin)
	fc2.reply(t, protocol.Reply{ID: join.ID, Room: "r", Position: &protocol.Position{Offset: 9, Epoch: "e2"}})
	res := st.next(t, StateResumed)
	if res.Recovered || len(res.Rooms) != 1 || res.Rooms[0].Recovered || !res.Rooms[0].EpochChanged {
		t.Fatalf("resumed %+v, want not recovered, epoch changed", res)
	}
	if info := c.Info(); info.SessionID != "sess-2" || info.ResumeToken != "tok-2" {
		t.Fatalf("the client holds %q/%q, want the new connection's session", info.SessionID, info.ResumeToken)
	}
}

func TestTerminalCloseCodesEndTheClient(t *testing.T) {
	for _, code := range []protocol.CloseCode{protocol.CloseInvalidToken, protocol.CloseForbidden, protocol.CloseOriginRejected, protocol.CloseKicked, protocol.CloseUnsupportedProtocol} {
		t.Run(code.String(), func(t *testing.T) {
			g := newFakeGateway(t)
			c, fc := dial(t, g, Config{ReconnectBaseDelay: time.Millisecond})
			fc.close(t, code, "no")
			waitClosed(t, c.Done(), "Done")
			var ce *CloseError
			if !errors.As(c.Err(), &ce) || ce.Code != code {
				t.Fatalf("Err() = %v, want close %d", c.Err(), code)
			}
			select {
			case <-g.conns:
				t.Fatal("the client reconnected after a terminal close code")
			default:
			}
		})
	}
}

func TestServerShutdownReconnectsAtOnce(t *testing.T) {
	g := newFakeGateway(t)
	st := newStates()
	// A base delay of a minute: only the 4000 rule can make it quick.
	_, fc := dial(t, g, Config{OnStateChange: st.record, ReconnectBaseDelay: time.Minute, ReconnectMaxDelay: time.Minute})
	fc.close(t, protocol.CloseServerShutdown, "draining")
	sc := st.next(t, StateReconnecting)
	if sc.Delay >= 100*time.Millisecond {
		t.Fatalf("reconnect after 4000 waits %s, want under 100ms", sc.Delay)
	}
	g.accept(t)
}

func TestTokenExpiredFetchesANewToken(t *testing.T) {
	g := newFakeGateway(t)
	var calls atomic.Int32
	provider := func(context.Context) (string, error) {
		return fmt.Sprintf("tok-%d", calls.Add(1)), nil
	}
	_, fc := dial(t, g, Config{TokenProvider: provider, ReconnectBaseDelay: time.Millisecond})
	if !slices.Contains(fc.protocols, protocol.TokenSubprotocolPrefix+"tok-1") {
		t.Fatalf("first connection offered %v", fc.protocols)
	}
	fc.close(t, protocol.CloseTokenExpired, "expired")
	fc2 := g.accept(t)
	if !slices.Contains(fc2.protocols, protocol.TokenSubprotocolPrefix+"tok-2") {
		t.Fatalf("after 4002 the client offered %v, want a new token from the provider", fc2.protocols)
	}
}

func TestPublishIsRetriedWithTheSameIdempotencyKey(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{ReconnectBaseDelay: time.Millisecond})
	res := make(chan protocol.Position, 1)
	go func() {
		pos, err := c.Publish(context.Background(), "r", []byte(`1`))
		if err != nil {
			t.Errorf("Publish: %v", err)
		}
		res <- pos
	}()
	first := expectCmd(t, fc, protocol.OpPublish)
	if first.IdempotencyKey == "" {
		t.Fatal("publish sent without an idempotency key")
	}
	_ = fc.conn.Close() // the reply is lost with the connection
	fc2 := g.accept(t)
	fc2.sendConnected(t, protocol.Connected{SessionID: "sess-2", ResumeToken: "tok-2"})
	resume := expectCmd(t, fc2, protocol.OpResume)
	fc2.reply(t, protocol.Reply{ID: resume.ID, SessionID: "sess-1", ResumeToken: "tok-3"})
	again := expectCmd(t, fc2, protocol.OpPublish)
	if again.IdempotencyKey != first.IdempotencyKey {
		t.Fatalf("retried with key %q, first was %q", again.IdempotencyKey, first.IdempotencyKey)
	}
	fc2.reply(t, protocol.Reply{ID: again.ID, Room: "r", Position: &protocol.Position{Offset: 12, Epoch: "e"}})
	if pos := recv(t, res, "Publish"); pos.Offset != 12 {
		t.Fatalf("Publish returned %+v", pos)
	}
}

func TestCloseDuringBackoffEndsPromptly(t *testing.T) {
	g := newFakeGateway(t)
	st := newStates()
	c, fc := dial(t, g, Config{OnStateChange: st.record, ReconnectBaseDelay: time.Hour, ReconnectMaxDelay: time.Hour})
	_ = fc.conn.Close()
	// The client now waits up to an hour (or, on a short draw, is stuck in
	// an attempt the fake never answers): Close must cut either short.
	st.next(t, StateReconnecting)
	_ = c.Close()
	waitClosed(t, c.Done(), "Done after Close during backoff")
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err() = %v, want ErrClosed", c.Err())
	}
}

// jwtWithExp builds a token the client can read exp from (the fake does
// not verify signatures).
func jwtWithExp(n int, exp time.Time) string {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	return enc(`{"alg":"HS256","kid":"k1"}`) + "." + enc(fmt.Sprintf(`{"sub":"alice","n":%d,"exp":%d}`, n, exp.Unix())) + ".c2ln"
}

// A server that knows the refresh operation gets each new token in band:
// the connection lives on, nothing is re-joined.
func TestTokenIsRefreshedInBand(t *testing.T) {
	g := newFakeGateway(t)
	var calls atomic.Int32
	provider := func(context.Context) (string, error) {
		n := int(calls.Add(1))
		return jwtWithExp(n, time.Now().Add(4*time.Second)), nil
	}
	st := newStates()
	c, fc := dial(t, g, Config{TokenProvider: provider, OnStateChange: st.record})
	got := make(chan uint64, 16)
	c.OnMessage("r", func(m protocol.Message) { got <- m.Offset })
	joinAt(t, c, fc, "r", protocol.Position{Offset: 1, Epoch: "e"})
	for i := 2; i <= 3; i++ {
		ref := expectCmd(t, fc, protocol.OpRefresh)
		if want := jwtWithExp(i, tokenExpiry(ref.Token)); ref.Token != want {
			t.Fatalf("refresh %d carried %q, want the provider's token %d", i, ref.Token, i)
		}
		fc.reply(t, protocol.Reply{ID: ref.ID})
		fc.message(t, protocol.Message{Room: "r", Offset: uint64(i), Epoch: "e"})
		if got := recv(t, got, "a message after the refresh"); got != uint64(i) {
			t.Fatalf("got offset %d, want %d", got, i)
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, sc := range st.all {
		if sc.State == StateReconnecting {
			t.Fatalf("an in-band refresh looked like a reconnect: %+v", sc)
		}
	}
}

func TestTokenIsRefreshedBeforeItExpires(t *testing.T) {
	g := newFakeGateway(t)
	var calls atomic.Int32
	provider := func(context.Context) (string, error) {
		n := int(calls.Add(1))
		// Expires 4 s after issue: refreshed 2 s before, with no outage.
		return jwtWithExp(n, time.Now().Add(4*time.Second)), nil
	}
	st := newStates()
	c, fc := dial(t, g, Config{TokenProvider: provider, OnStateChange: st.record})
	got := make(chan uint64, 16)
	c.OnMessage("r", func(m protocol.Message) { got <- m.Offset })
	joinAt(t, c, fc, "r", protocol.Position{Offset: 1, Epoch: "e"})
	fc.message(t, protocol.Message{Room: "r", Offset: 2, Epoch: "e"})
	recv(t, got, "offset 2")

	// The client first asks in band; a server that does not know the
	// operation makes it replace the connection instead.
	ref := expectCmd(t, fc, protocol.OpRefresh)
	fc.reply(t, protocol.Reply{ID: ref.ID, Error: protocol.NewError(protocol.CodeUnknownOp, "unknown op")})

	// The replacement connection arrives while the first is still open.
	fc2 := g.accept(t)
	if calls.Load() != 3 || slices.Equal(fc2.protocols, fc.protocols) {
		t.Fatalf("replacement offered %v after %d provider calls, want a second token", fc2.protocols, calls.Load())
	}
	fc2.sendConnected(t, protocol.Connected{SessionID: "sess-2", ResumeToken: "tok-2"})
	resume := expectCmd(t, fc2, protocol.OpResume)
	fc2.reply(t, protocol.Reply{ID: resume.ID, SessionID: "sess-1", ResumeToken: "tok-3"})
	join := expectCmd(t, fc2, protocol.OpJoin)
	if join.Since == nil || join.Since.Offset != 2 {
		t.Fatalf("re-join since %+v, want offset 2", join.Since)
	}
	// Both connections deliver offset 3 (the old one still runs until the
	// new one is restored): the handler gets it once.
	fc.message(t, protocol.Message{Room: "r", Offset: 3, Epoch: "e"})
	fc2.reply(t, protocol.Reply{ID: join.ID, Room: "r", Position: &protocol.Position{Offset: 3, Epoch: "e"}, Recovered: true})
	fc2.message(t, protocol.Message{Room: "r", Offset: 3, Epoch: "e"})
	fc2.message(t, protocol.Message{Room: "r", Offset: 4, Epoch: "e"})
	if a, b := recv(t, got, "3"), recv(t, got, "4"); a != 3 || b != 4 {
		t.Fatalf("got %d, %d; want 3, 4", a, b)
	}
	// The old connection is handed over with 1001, which keeps the session.
	if code := recv(t, fc.closes, "the old connection's close"); code != 1001 {
		t.Fatalf("old connection closed with %d, want 1001", code)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, sc := range st.all {
		if sc.State == StateReconnecting {
			t.Fatalf("a token refresh looked like a reconnect: %+v", sc)
		}
	}
}

// A provider that says no token will come again (ErrNoToken: the user
// signed out) ends the Client instead of retrying forever.
func TestProviderWithoutTokensEndsTheClient(t *testing.T) {
	g := newFakeGateway(t)
	var calls atomic.Int32
	signedOut := errors.New("signed out")
	provider := func(context.Context) (string, error) {
		if calls.Add(1) == 1 {
			return "tok-1", nil
		}
		return "", fmt.Errorf("%w: %w", ErrNoToken, signedOut)
	}
	c, fc := dial(t, g, Config{TokenProvider: provider, ReconnectBaseDelay: time.Millisecond, ReconnectMaxDelay: time.Millisecond})
	fc.close(t, protocol.CloseTokenExpired, "expired")
	waitClosed(t, c.Done(), "Done after the provider ran out of tokens")
	if !errors.Is(c.Err(), signedOut) || calls.Load() != 2 {
		t.Fatalf("Err() = %v after %d provider calls, want the provider's error after 2", c.Err(), calls.Load())
	}
	_, err := Dial(context.Background(), Config{URL: g.URL(), TokenProvider: provider})
	if !errors.Is(err, ErrNoToken) {
		t.Fatalf("Dial = %v, want ErrNoToken", err)
	}
}

// logSignal is a log destination that closes seen the first time a line
// contains want.
type logSignal struct {
	want string
	seen chan struct{}
	once sync.Once
}

func (l *logSignal) Write(p []byte) (int, error) {
	if strings.Contains(string(p), l.want) {
		l.once.Do(func() { close(l.seen) })
	}
	return len(p), nil
}

// overflowed returns a client whose stuck handler let the buffer (2)
// overflow at offset 4 of room r, and that is now waiting for the handler
// to catch up; closing release unsticks the handler, and entered reports
// each offset it starts on (1 already taken).
func overflowed(t *testing.T, g *fakeGateway) (c *Client, entered chan uint64, release chan struct{}) {
	t.Helper()
	logs := &logSignal{want: "waiting for the handlers to catch up", seen: make(chan struct{})}
	c, fc := dial(t, g, Config{MessageBuffer: 2, ReconnectBaseDelay: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	entered = make(chan uint64, 8)
	release = make(chan struct{})
	c.OnMessage("r", func(m protocol.Message) {
		entered <- m.Offset
		<-release
	})
	joinAt(t, c, fc, "r", protocol.Position{Epoch: "e1"})
	fc.message(t, protocol.Message{Room: "r", Offset: 1, Epoch: "e1"})
	if got := recv(t, entered, "the first message"); got != 1 {
		t.Fatalf("first handled offset = %d", got)
	}
	// The handler is stuck on 1: 2 and 3 fill the buffer, 4 overflows it.
	for _, off := range []uint64{2, 3, 4} {
		fc.message(t, protocol.Message{Room: "r", Offset: off, Epoch: "e1"})
	}
	if code := recv(t, fc.closes, "the client's close"); code != ws.StatusGoingAway {
		t.Fatalf("client closed with %d, want 1001", code)
	}
	recv(t, logs.seen, "the client to wait for its handlers")
	// The wait comes before any dial: no connection can have been made.
	if n := len(g.conns); n != 0 {
		t.Fatalf("%d connection(s) made while the handlers were still behind", n)
	}
	return c, entered, release
}

// TestOverflowResumesOnceHandlersCatchUp: a client whose handlers fell a
// buffer behind does not resume into a buffer that is still full (which
// overflows again at once and resumes in a loop); it waits until the
// handlers have worked it down to half, then resumes from the last
// message it accepted.
func TestOverflowResumesOnceHandlersCatchUp(t *testing.T) {
	g := newFakeGateway(t)
	_, entered, release := overflowed(t, g)
	close(release)
	fc2 := g.accept(t)
	fc2.sendConnected(t, protocol.Connected{ConnectionID: "conn-2", SessionID: "sess-2", ResumeToken: "tok-2"})
	resume := expectCmd(t, fc2, protocol.OpResume)
	fc2.reply(t, protocol.Reply{ID: resume.ID, SessionID: "sess-1", ResumeToken: "tok-3", Rooms: []string{"r"}})
	join := expectCmd(t, fc2, protocol.OpJoin)
	if join.Since == nil || *join.Since != (protocol.Position{Offset: 3, Epoch: "e1"}) {
		t.Fatalf("re-join since %+v, want offset 3 (the last message accepted)", join.Since)
	}
	fc2.reply(t, protocol.Reply{ID: join.ID, Room: "r", Position: &protocol.Position{Offset: 4, Epoch: "e1"}, Recovered: true})
	fc2.message(t, protocol.Message{Room: "r", Offset: 4, Epoch: "e1"})
	for _, want := range []uint64{2, 3, 4} {
		if got := recv(t, entered, fmt.Sprint(want)); got != want {
			t.Fatalf("handled offset %d, want %d", got, want)
		}
	}
}

// TestCloseWhileWaitingForHandlers: Close ends a client that waits for
// its handlers to catch up, without a reconnect.
func TestCloseWhileWaitingForHandlers(t *testing.T) {
	g := newFakeGateway(t)
	c, _, release := overflowed(t, g)
	_ = c.Close() // does not wait for the handler
	close(release)
	waitClosed(t, c.Done(), "Done after Close while waiting for the handlers")
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err() = %v, want ErrClosed", c.Err())
	}
	if n := len(g.conns); n != 0 {
		t.Fatalf("%d connection(s) made after Close", n)
	}
}

// TestOverflowResumesWhenAHandlerWaitsOnTheClient: a handler that
// publishes waits for the connection, so the handlers never catch up
// while the client waits for them to; after a second without progress the
// client resumes anyway, and the handler's publish goes out on the new
// connection.
func TestOverflowResumesWhenAHandlerWaitsOnTheClient(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{MessageBuffer: 2, ReconnectBaseDelay: time.Millisecond})
	entered := make(chan uint64, 8)
	release := make(chan struct{})
	published := make(chan error, 1)
	c.OnMessage("r", func(m protocol.Message) {
		entered <- m.Offset
		if m.Offset == 1 {
			<-release
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			_, err := c.Publish(ctx, "r", []byte(`"echo"`))
			published <- err
		}
	})
	joinAt(t, c, fc, "r", protocol.Position{Epoch: "e1"})
	fc.message(t, protocol.Message{Room: "r", Offset: 1, Epoch: "e1"})
	recv(t, entered, "the first message")
	for _, off := range []uint64{2, 3, 4} {
		fc.message(t, protocol.Message{Room: "r", Offset: off, Epoch: "e1"})
	}
	if code := recv(t, fc.closes, "the client's close"); code != ws.StatusGoingAway {
		t.Fatalf("client closed with %d, want 1001", code)
	}
	close(release) // the handler now publishes, and waits for a connection
	fc2 := g.accept(t)
	fc2.sendConnected(t, protocol.Connected{ConnectionID: "conn-2", SessionID: "sess-2", ResumeToken: "tok-2"})
	resume := expectCmd(t, fc2, protocol.OpResume)
	fc2.reply(t, protocol.Reply{ID: resume.ID, SessionID: "sess-1", ResumeToken: "tok-3", Rooms: []string{"r"}})
	for range 2 { // the re-join and the handler's publish, in either order
		cmd := fc2.cmd(t)
		switch cmd.Op {
		case protocol.OpJoin:
			fc2.reply(t, protocol.Reply{ID: cmd.ID, Room: "r", Position: &protocol.Position{Offset: 4, Epoch: "e1"}, Recovered: true})
		case protocol.OpPublish:
			fc2.reply(t, protocol.Reply{ID: cmd.ID, Room: "r", Position: &protocol.Position{Offset: 5, Epoch: "e1"}})
		default:
			t.Fatalf("client sent %q", cmd.Op)
		}
	}
	if err := recv(t, published, "the handler's publish"); err != nil {
		t.Fatalf("handler's publish: %v", err)
	}
	for _, want := range []uint64{2, 3} {
		if got := recv(t, entered, fmt.Sprint(want)); got != want {
			t.Fatalf("handled offset %d, want %d", got, want)
		}
	}
}
