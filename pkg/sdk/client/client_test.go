package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/pkg/protocol"
)

func TestDialConnectedAndTokenInSubprotocol(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{Header: http.Header{"Origin": {"https://app.example"}}})

	wantProtocols := []string{protocol.SubprotocolJSON, protocol.TokenSubprotocolPrefix + testToken}
	if !slices.Equal(fc.protocols, wantProtocols) {
		t.Errorf("offered subprotocols = %q, want %q", fc.protocols, wantProtocols)
	}
	if fc.query.Has("token") {
		t.Errorf("token also sent in the query: %q", fc.query)
	}
	if got := fc.header.Get("Origin"); got != "https://app.example" {
		t.Errorf("Origin = %q, want the configured header", got)
	}
	if got := c.Info(); !reflect.DeepEqual(got, testConnected) {
		t.Errorf("Info() = %+v, want %+v", got, testConnected)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() on an open connection = %v, want nil", err)
	}
}

func TestDialTokenInQuery(t *testing.T) {
	g := newFakeGateway(t)
	// With TokenInQuery any token text is carried, escaped.
	const tok = "opaque token+with/odd=chars"
	_, fc := dial(t, g, Config{Token: tok, TokenInQuery: true})

	if !slices.Equal(fc.protocols, []string{protocol.SubprotocolJSON}) {
		t.Errorf("offered subprotocols = %q, want only %q", fc.protocols, protocol.SubprotocolJSON)
	}
	if got := fc.query.Get("token"); got != tok {
		t.Errorf("query token = %q, want %q", got, tok)
	}
}

func TestDialTokenProvider(t *testing.T) {
	g := newFakeGateway(t)
	calls := 0
	_, fc := dial(t, g, Config{TokenProvider: func(ctx context.Context) (string, error) {
		calls++
		return "provided.jwt.token", nil
	}})
	if calls != 1 {
		t.Errorf("token provider called %d times, want 1", calls)
	}
	if want := protocol.TokenSubprotocolPrefix + "provided.jwt.token"; !slices.Contains(fc.protocols, want) {
		t.Errorf("offered subprotocols = %q, want %q among them", fc.protocols, want)
	}

	boom := errors.New("identity provider down")
	_, err := Dial(context.Background(), Config{URL: g.URL(), TokenProvider: func(context.Context) (string, error) {
		return "", boom
	}})
	if !errors.Is(err, boom) {
		t.Errorf("Dial with a failing provider: err = %v, want it to wrap %v", err, boom)
	}
}

func TestDialRejectsInvalidConfig(t *testing.T) {
	provider := func(context.Context) (string, error) { return "t", nil }
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{
			name: "no url",
			cfg:  Config{Token: "t"},
			want: "URL is required",
		},
		{
			name: "http scheme",
			cfg:  Config{URL: "http://127.0.0.1:1/v1/connect", Token: "t"},
			want: "want ws or wss",
		},
		{
			name: "no host",
			cfg:  Config{URL: "ws:///v1/connect", Token: "t"},
			want: "no host",
		},
		{
			name: "no token",
			cfg:  Config{URL: "ws://127.0.0.1:1/v1/connect"},
			want: "Token or Config.TokenProvider is required",
		},
		{
			name: "token and provider",
			cfg:  Config{URL: "ws://127.0.0.1:1/v1/connect", Token: "t", TokenProvider: provider},
			want: "not both",
		},
		{
			name: "negative buffer",
			cfg:  Config{URL: "ws://127.0.0.1:1/v1/connect", Token: "t", MessageBuffer: -1},
			want: "MessageBuffer is negative",
		},
		{
			name: "negative max message",
			cfg:  Config{URL: "ws://127.0.0.1:1/v1/connect", Token: "t", MaxMessageBytes: -1},
			want: "MaxMessageBytes is negative",
		},
		{
			name: "token unfit for a subprotocol",
			cfg:  Config{URL: "ws://127.0.0.1:1/v1/connect", Token: "has space"},
			want: "TokenInQuery",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Dial(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Dial: err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestDialCloseOnHandshake(t *testing.T) {
	tests := []struct {
		code   protocol.CloseCode
		reason string
		retry  protocol.Retry
	}{
		{
			code:   protocol.CloseInvalidToken,
			reason: "bad signature",
			retry:  protocol.RetryNever,
		},
		{
			code:   protocol.CloseTokenExpired,
			reason: "token expired",
			retry:  protocol.RetryRefreshToken,
		},
		{
			code:   protocol.CloseOriginRejected,
			reason: "origin not allowed",
			retry:  protocol.RetryNever,
		},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			g := newFakeGateway(t)
			errc := make(chan error, 1)
			go func() {
				_, err := Dial(context.Background(), Config{URL: g.URL(), Token: testToken})
				errc <- err
			}()
			fc := g.accept(t)
			fc.close(t, tt.code, tt.reason)
			err := recv(t, errc, "Dial")

			var ce *CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("Dial: err = %v (%T), want *CloseError", err, err)
			}
			if ce.Code != tt.code || ce.Reason != tt.reason {
				t.Errorf("CloseError = {%d %q}, want {%d %q}", ce.Code, ce.Reason, tt.code, tt.reason)
			}
			if ce.Retry() != tt.retry {
				t.Errorf("Retry() = %v, want %v", ce.Retry(), tt.retry)
			}
			if !strings.Contains(err.Error(), tt.code.String()) {
				t.Errorf("error text %q does not name the close code", err)
			}
			// The client acknowledged the close with the same code.
			if got := recv(t, fc.closes, "the close acknowledgement"); got != ws.StatusCode(tt.code) {
				t.Errorf("acknowledged with %d, want %d", got, tt.code)
			}
		})
	}
}

func TestDialHTTPRefusal(t *testing.T) {
	g := newFakeGateway(t, func(g *fakeGateway) { g.reject = http.StatusTooManyRequests })
	_, err := Dial(context.Background(), Config{URL: g.URL(), Token: testToken})
	var he *HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("Dial: err = %v, want *HandshakeError{429}", err)
	}
}

func TestDialRequiresSelectedSubprotocol(t *testing.T) {
	g := newFakeGateway(t, func(g *fakeGateway) { g.noSubprotocol = true })
	_, err := Dial(context.Background(), Config{URL: g.URL(), Token: testToken})
	if err == nil || !strings.Contains(err.Error(), "did not select subprotocol") {
		t.Fatalf("Dial: err = %v, want a subprotocol error", err)
	}
}

func TestDialFirstFrameMustBeConnected(t *testing.T) {
	g := newFakeGateway(t)
	errc := make(chan error, 1)
	go func() {
		_, err := Dial(context.Background(), Config{URL: g.URL(), Token: testToken})
		errc <- err
	}()
	fc := g.accept(t)
	fc.message(t, protocol.Message{Room: "r", Data: []byte(`1`)})
	if err := recv(t, errc, "Dial"); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Dial: err = %v, want ErrProtocol", err)
	}
}

func TestDialCancelledWhileWaitingForConnected(t *testing.T) {
	g := newFakeGateway(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Dial(ctx, Config{URL: g.URL(), Token: testToken})
		errc <- err
	}()
	g.accept(t) // upgraded; the server never sends connected
	cancel()
	if err := recv(t, errc, "Dial"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial: err = %v, want context.Canceled", err)
	}
}

func TestCommandsOnTheWire(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{})
	ctx := context.Background()

	type result struct {
		pos protocol.Position
		err error
	}
	res := make(chan result, 1)

	go func() {
		pos, err := c.Join(ctx, "lobby")
		res <- result{pos, err}
	}()
	cmd := fc.cmd(t)
	if cmd.Op != protocol.OpJoin || cmd.Room != "lobby" || cmd.ID == 0 {
		t.Fatalf("join command = %+v", cmd)
	}
	fc.reply(t, protocol.Reply{ID: cmd.ID, Room: "lobby", Position: &protocol.Position{Offset: 41, Epoch: "e1"}})
	if r := recv(t, res, "Join"); r.err != nil || r.pos != (protocol.Position{Offset: 41, Epoch: "e1"}) {
		t.Fatalf("Join = %+v, %v; want {41 e1}, nil", r.pos, r.err)
	}

	go func() {
		pos, err := c.Publish(ctx, "lobby", []byte(`{"text":"hi"}`), WithEvent("chat"), WithIdempotencyKey("k-1"))
		res <- result{pos, err}
	}()
	cmd = fc.cmd(t)
	want := protocol.Command{ID: cmd.ID, Op: protocol.OpPublish, Room: "lobby", Event: "chat", Data: []byte(`{"text":"hi"}`), IdempotencyKey: "k-1"}
	if !reflect.DeepEqual(cmd, want) {
		t.Fatalf("publish command = %+v, want %+v", cmd, want)
	}
	fc.reply(t, protocol.Reply{ID: cmd.ID, Room: "lobby", Position: &protocol.Position{Offset: 42, Epoch: "e1"}})
	if r := recv(t, res, "Publish"); r.err != nil || r.pos != (protocol.Position{Offset: 42, Epoch: "e1"}) {
		t.Fatalf("Publish = %+v, %v; want {42 e1}, nil", r.pos, r.err)
	}

	go func() {
		pos, err := c.Publish(ctx, "lobby", []byte(`{"x":1}`), Transient())
		res <- result{pos, err}
	}()
	cmd = fc.cmd(t)
	if !cmd.Transient || cmd.Op != protocol.OpPublish {
		t.Fatalf("transient publish command = %+v", cmd)
	}
	fc.reply(t, protocol.Reply{ID: cmd.ID, Room: "lobby"})
	if r := recv(t, res, "transient Publish"); r.err != nil || r.pos != (protocol.Position{}) {
		t.Fatalf("transient Publish = %+v, %v; want zero position, nil", r.pos, r.err)
	}

	go func() {
		err := c.Leave(ctx, "lobby")
		res <- result{err: err}
	}()
	cmd = fc.cmd(t)
	if cmd.Op != protocol.OpLeave || cmd.Room != "lobby" {
		t.Fatalf("leave command = %+v", cmd)
	}
	fc.reply(t, protocol.Reply{ID: cmd.ID, Room: "lobby"})
	if r := recv(t, res, "Leave"); r.err != nil {
		t.Fatalf("Leave: %v", r.err)
	}
}

func TestPublishRejectsInvalidJSONLocally(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{})
	if _, err := c.Publish(context.Background(), "r", []byte(`{not json`)); err == nil {
		t.Fatal("Publish of invalid JSON succeeded")
	}
	// Nothing was sent, and the connection still works.
	done := make(chan error, 1)
	go func() { done <- c.Leave(context.Background(), "r") }()
	cmd := fc.cmd(t)
	if cmd.Op != protocol.OpLeave {
		t.Fatalf("first command on the wire = %+v, want the leave", cmd)
	}
	fc.reply(t, protocol.Reply{ID: cmd.ID})
	if err := recv(t, done, "Leave"); err != nil {
		t.Fatalf("Leave: %v", err)
	}
}

// TestConcurrentRequestsRouteRepliesByID has many goroutines publish at
// once while the server answers each batch in reverse order: every caller
// must get the reply to its own command.
func TestConcurrentRequestsRouteRepliesByID(t *testing.T) {
	const workers, rounds = 32, 8
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{})

	serverDone := make(chan error, 1)
	go func() {
		seen := make(map[uint64]bool)
		for range rounds {
			// Every worker has exactly one request in flight: collect them
			// all, then answer last-come first.
			batch := make([]protocol.Command, 0, workers)
			for range workers {
				cmd := <-fc.cmds
				if seen[cmd.ID] {
					serverDone <- fmt.Errorf("request id %d reused", cmd.ID)
					return
				}
				seen[cmd.ID] = true
				batch = append(batch, cmd)
			}
			for i := len(batch) - 1; i >= 0; i-- {
				cmd := batch[i]
				var n uint64
				if err := json.Unmarshal(cmd.Data, &n); err != nil {
					serverDone <- err
					return
				}
				r := protocol.ServerFrame{Reply: &protocol.Reply{ID: cmd.ID, Room: cmd.Room, Position: &protocol.Position{Offset: n, Epoch: cmd.Room}}}
				p, _ := protocol.JSON.AppendServerFrame(nil, &r)
				fc.wmu.Lock()
				err := ws.WriteFrame(fc.conn, ws.NewTextFrame(p))
				fc.wmu.Unlock()
				if err != nil {
					serverDone <- err
					return
				}
			}
		}
		serverDone <- nil
	}()

	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			room := fmt.Sprintf("room-%d", w)
			for r := range rounds {
				n := uint64(w*1000 + r)
				pos, err := c.Publish(context.Background(), room, fmt.Appendf(nil, "%d", n))
				if err != nil {
					errs <- err
					return
				}
				if pos != (protocol.Position{Offset: n, Epoch: room}) {
					errs <- fmt.Errorf("worker %d round %d got %+v, want {%d %s}", w, r, pos, n, room)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := recv(t, serverDone, "the fake server"); err != nil {
		t.Fatal(err)
	}
}

func TestReplyErrorMapping(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{})
	errc := make(chan error, 1)

	go func() {
		_, err := c.Publish(context.Background(), "secret", []byte(`1`))
		errc <- err
	}()
	cmd := fc.cmd(t)
	fc.reply(t, protocol.Reply{ID: cmd.ID, Error: protocol.NewError(protocol.CodeForbidden, "no publish capability for this room")})
	err := recv(t, errc, "Publish")
	var re *ReplyError
	if !errors.As(err, &re) || re.Code != protocol.CodeForbidden || re.Message != "no publish capability for this room" {
		t.Fatalf("Publish: err = %v, want *ReplyError{forbidden}", err)
	}

	// An `error` frame that names a request id answers that request.
	go func() {
		errc <- c.Leave(context.Background(), "r")
	}()
	cmd = fc.cmd(t)
	fc.send(t, protocol.ServerFrame{Error: &protocol.Error{Code: protocol.CodeBadRequest, Message: "bad", ID: cmd.ID}})
	err = recv(t, errc, "Leave")
	if !errors.As(err, &re) || re.Code != protocol.CodeBadRequest {
		t.Fatalf("Leave: err = %v, want *ReplyError{bad_request}", err)
	}
	if c.Err() != nil {
		t.Fatalf("a reply error ended the connection: %v", c.Err())
	}
}

func TestCancelledRequestKeepsConnection(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{})

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Join(ctx, "slow")
		errc <- err
	}()
	slow := fc.cmd(t)
	cancel()
	if err := recv(t, errc, "Join"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Join: err = %v, want context.Canceled", err)
	}
	// The late reply is dropped; the next request gets its own.
	fc.reply(t, protocol.Reply{ID: slow.ID, Room: "slow", Position: &protocol.Position{Offset: 1}})
	type result struct {
		pos protocol.Position
		err error
	}
	res := make(chan result, 1)
	go func() {
		pos, err := c.Join(context.Background(), "fast")
		res <- result{pos, err}
	}()
	cmd := fc.cmd(t)
	fc.reply(t, protocol.Reply{ID: cmd.ID, Room: "fast", Position: &protocol.Position{Offset: 7, Epoch: "e"}})
	if r := recv(t, res, "Join"); r.err != nil || r.pos.Offset != 7 {
		t.Fatalf("Join after a cancelled request = %+v, %v", r.pos, r.err)
	}
}

func TestPingsAreAnsweredWithPongs(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{})

	fc.writeFrame(t, ws.NewPingFrame([]byte("hb-1")))
	if got := recv(t, fc.pongs, "a pong"); string(got) != "hb-1" {
		t.Fatalf("pong payload = %q, want %q", got, "hb-1")
	}
	fc.writeFrame(t, ws.NewPingFrame(nil))
	if got := recv(t, fc.pongs, "a pong"); len(got) != 0 {
		t.Fatalf("pong payload = %q, want empty", got)
	}

	// A ping between the fragments of a message is answered too, and the
	// message arrives whole.
	got := make(chan protocol.Message, 1)
	c.OnMessage("r", func(m protocol.Message) { got <- m })
	joinAt(t, c, fc, "r", protocol.Position{})
	frame, _ := protocol.JSON.AppendServerFrame(nil, &protocol.ServerFrame{Message: &protocol.Message{Room: "r", Offset: 1, Data: []byte(`"fragmented"`)}})
	half := len(frame) / 2
	fc.writeFrame(t, ws.NewFrame(ws.OpText, false, frame[:half]))
	fc.writeFrame(t, ws.NewPingFrame([]byte("hb-2")))
	if p := recv(t, fc.pongs, "a pong mid-message"); string(p) != "hb-2" {
		t.Fatalf("pong payload = %q, want %q", p, "hb-2")
	}
	fc.writeFrame(t, ws.NewFrame(ws.OpContinuation, true, frame[half:]))
	if m := recv(t, got, "the fragmented message"); string(m.Data) != `"fragmented"` {
		t.Fatalf("message data = %s", m.Data)
	}
}

func TestHandlersRunInOrder(t *testing.T) {
	const n = 500
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{})

	var mu sync.Mutex
	var a, b, all []uint64
	done := make(chan struct{})
	c.OnMessage("a", func(m protocol.Message) {
		mu.Lock()
		a = append(a, m.Offset)
		mu.Unlock()
	})
	c.OnMessage("b", func(m protocol.Message) {
		mu.Lock()
		b = append(b, m.Offset)
		mu.Unlock()
	})
	c.OnAnyMessage(func(m protocol.Message) {
		mu.Lock()
		all = append(all, m.Offset)
		last := len(all) == 2*n
		mu.Unlock()
		if last {
			close(done)
		}
	})
	joinAt(t, c, fc, "a", protocol.Position{Epoch: "e"})
	joinAt(t, c, fc, "b", protocol.Position{Epoch: "e"})
	var wantA, wantB, wantAll []uint64
	for i := range uint64(2 * n) {
		room := "a"
		if i%3 == 0 {
			room = "b"
			wantB = append(wantB, i+1)
		} else {
			wantA = append(wantA, i+1)
		}
		wantAll = append(wantAll, i+1)
		fc.message(t, protocol.Message{Room: room, Offset: i + 1, Epoch: "e", Data: fmt.Appendf(nil, "%d", i)})
	}
	waitClosed(t, done, "all messages")
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(a, wantA) || !slices.Equal(b, wantB) || !slices.Equal(all, wantAll) {
		t.Fatalf("handlers saw a=%v b=%v all=%v", a, b, all)
	}
}

func TestMessageFieldsReachHandler(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{})
	got := make(chan protocol.Message, 1)
	c.OnAnyMessage(func(m protocol.Message) { got <- m })
	joinAt(t, c, fc, "r", protocol.Position{Offset: 8, Epoch: "e9"})
	want := protocol.Message{Room: "r", Offset: 9, Epoch: "e9", Event: "chat", Data: []byte(`{"a":[1,2]}`), From: "bob", Timestamp: 1700000000123}
	fc.message(t, want)
	if m := recv(t, got, "the message"); !reflect.DeepEqual(m, want) {
		t.Fatalf("handler got %+v, want %+v", m, want)
	}
}

func TestUnknownFrameTypesAreSkipped(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{})
	got := make(chan protocol.Message, 1)
	c.OnMessage("r", func(m protocol.Message) { got <- m })
	joinAt(t, c, fc, "r", protocol.Position{})
	fc.writeFrame(t, ws.NewTextFrame([]byte(`{"type":"presence_v9","room":"r"}`)))
	fc.message(t, protocol.Message{Room: "r", Offset: 1, Data: []byte(`1`)})
	recv(t, got, "the message after an unknown frame")
	if err := c.Err(); err != nil {
		t.Fatalf("unknown frame ended the connection: %v", err)
	}
}

func TestMessageBufferOverflowClosesConnection(t *testing.T) {
	g := newFakeGateway(t)
	var states []StateChange
	var smu sync.Mutex
	c, fc := dial(t, g, Config{DisableReconnect: true, MessageBuffer: 1, OnStateChange: func(sc StateChange) {
		smu.Lock()
		states = append(states, sc)
		smu.Unlock()
	}})

	entered := make(chan uint64, 4)
	release := make(chan struct{})
	c.OnMessage("r", func(m protocol.Message) {
		entered <- m.Offset
		<-release
	})
	joinAt(t, c, fc, "r", protocol.Position{})
	fc.message(t, protocol.Message{Room: "r", Offset: 1, Data: []byte(`1`)})
	if got := recv(t, entered, "the first message"); got != 1 {
		t.Fatalf("first handled offset = %d", got)
	}
	// The handler is blocked: message 2 fills the buffer, 3 overflows it.
	fc.message(t, protocol.Message{Room: "r", Offset: 2, Data: []byte(`2`)})
	fc.message(t, protocol.Message{Room: "r", Offset: 3, Data: []byte(`3`)})
	if code := recv(t, fc.closes, "the client's close"); code != ws.StatusGoingAway {
		t.Errorf("client closed with %d, want 1001", code)
	}
	close(release)
	waitClosed(t, c.Done(), "Done")
	if !errors.Is(c.Err(), ErrMessageBufferFull) {
		t.Errorf("Err() = %v, want ErrMessageBufferFull", c.Err())
	}
	// The buffered message is still handed over; the overflowing one not.
	if got := recv(t, entered, "the buffered message"); got != 2 {
		t.Errorf("second handled offset = %d, want 2", got)
	}
	if len(entered) != 0 {
		t.Errorf("message past the overflow delivered")
	}
	smu.Lock()
	defer smu.Unlock()
	if len(states) != 3 || states[0].State != StateConnecting || states[1].State != StateConnected || states[2].State != StateClosed || !errors.Is(states[2].Err, ErrMessageBufferFull) {
		t.Errorf("state changes = %+v, want connecting, connected, then closed with ErrMessageBufferFull", states)
	}
}

// With InlineHandlers a handler runs on the reader: while it blocks, the
// frames behind it wait in the socket instead of filling a buffer, so the
// buffer that overflows in TestMessageBufferOverflowClosesConnection does
// not exist here; and what was delivered is still not delivered again.
func TestInlineHandlersBlockTheReaderInsteadOfBuffering(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{DisableReconnect: true, MessageBuffer: 1, InlineHandlers: true})

	entered := make(chan uint64, 8)
	release := make(chan struct{})
	c.OnMessage("r", func(m protocol.Message) {
		entered <- m.Offset
		if m.Offset == 1 {
			<-release
		}
	})
	joinAt(t, c, fc, "r", protocol.Position{})
	fc.message(t, protocol.Message{Room: "r", Offset: 1, Data: []byte(`1`)})
	if got := recv(t, entered, "the first message"); got != 1 {
		t.Fatalf("first handled offset = %d", got)
	}
	// The handler holds the reader: these wait in the socket.
	for _, off := range []uint64{2, 3, 4, 2, 5} { // 2 again: a replay's overlap
		fc.message(t, protocol.Message{Room: "r", Offset: off, Data: []byte(`1`)})
	}
	close(release)
	for _, want := range []uint64{2, 3, 4, 5} {
		if got := recv(t, entered, "the next message"); got != want {
			t.Fatalf("handled offset %d, want %d", got, want)
		}
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() = %v, want the connection up", err)
	}
	select {
	case code := <-fc.closes:
		t.Errorf("client closed with %d", code)
	default:
	}
}

// With InlineHandlers, an epoch change reaches OnEpochChange just before
// the first message of the new epoch, as on the delivery goroutine.
func TestInlineHandlersReportEpochChanges(t *testing.T) {
	g := newFakeGateway(t)
	events := make(chan string, 8)
	c, fc := dial(t, g, Config{InlineHandlers: true, OnEpochChange: func(ec EpochChange) {
		events <- "epoch " + ec.Old.Epoch + "→" + ec.New.Epoch
	}})
	c.OnMessage("r", func(m protocol.Message) { events <- fmt.Sprintf("message %s/%d", m.Epoch, m.Offset) })
	joinAt(t, c, fc, "r", protocol.Position{Epoch: "e1"})
	fc.message(t, protocol.Message{Room: "r", Epoch: "e1", Offset: 1, Data: []byte(`1`)})
	fc.message(t, protocol.Message{Room: "r", Epoch: "e2", Offset: 1, Data: []byte(`1`)})
	for _, want := range []string{"message e1/1", "epoch e1→e2", "message e2/1"} {
		if got := recv(t, events, want); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestServerCloseFailsRequestsInFlight(t *testing.T) {
	g := newFakeGateway(t)
	closed := make(chan StateChange, 2)
	c, fc := dial(t, g, Config{OnStateChange: func(sc StateChange) { closed <- sc }})
	if sc := recv(t, closed, "connecting state"); sc.State != StateConnecting {
		t.Fatalf("first state = %v", sc.State)
	}
	if sc := recv(t, closed, "connected state"); sc.State != StateConnected {
		t.Fatalf("second state = %v", sc.State)
	}

	errc := make(chan error, 1)
	go func() {
		_, err := c.Join(context.Background(), "r")
		errc <- err
	}()
	fc.cmd(t) // in flight, never answered
	fc.close(t, protocol.CloseKicked, "removed by operator")

	var ce *CloseError
	if err := recv(t, errc, "Join"); !errors.As(err, &ce) || ce.Code != protocol.CloseKicked || ce.Reason != "removed by operator" {
		t.Fatalf("Join: err = %v, want *CloseError{4005}", err)
	}
	waitClosed(t, c.Done(), "Done")
	if !errors.As(c.Err(), &ce) || ce.Code != protocol.CloseKicked {
		t.Fatalf("Err() = %v, want *CloseError{4005}", c.Err())
	}
	if code := recv(t, fc.closes, "the close acknowledgement"); code != ws.StatusCode(protocol.CloseKicked) {
		t.Errorf("acknowledged with %d, want 4005", code)
	}
	if _, err := c.Join(context.Background(), "r"); !errors.As(err, &ce) {
		t.Errorf("Join after close: err = %v, want the *CloseError", err)
	}
	if sc := recv(t, closed, "closed state"); sc.State != StateClosed || !errors.As(sc.Err, &ce) {
		t.Errorf("last state = %+v, want closed with the *CloseError", sc)
	}
}

func TestTransportLossFailsRequests(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{DisableReconnect: true})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Publish(context.Background(), "r", []byte(`1`))
		errc <- err
	}()
	fc.cmd(t)
	_ = fc.conn.Close() // no close frame
	err := recv(t, errc, "Publish")
	var ce *CloseError
	if err == nil || errors.As(err, &ce) {
		t.Fatalf("Publish: err = %v, want a transport error", err)
	}
	waitClosed(t, c.Done(), "Done")
	if !errors.Is(err, c.Err()) {
		t.Errorf("Publish error %v does not wrap Err() = %v", err, c.Err())
	}
}

func TestCloseSendsNormalClosure(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{})
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if code := recv(t, fc.closes, "the client's close"); code != ws.StatusNormalClosure {
		t.Errorf("closed with %d, want 1000", code)
	}
	waitClosed(t, c.Done(), "Done")
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err() = %v, want ErrClosed", c.Err())
	}
	if _, err := c.Join(context.Background(), "r"); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Close: err = %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseFromHandler(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{})
	c.OnAnyMessage(func(protocol.Message) { _ = c.Close() })
	joinAt(t, c, fc, "r", protocol.Position{})
	fc.message(t, protocol.Message{Room: "r", Offset: 1, Data: []byte(`1`)})
	waitClosed(t, c.Done(), "Done")
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err() = %v, want ErrClosed", c.Err())
	}
}

func TestHeartbeatTimeout(t *testing.T) {
	g := newFakeGateway(t)
	connected := testConnected
	connected.HeartbeatMS = 20 // the fake server then sends nothing at all
	c, _ := dialWith(t, g, Config{DisableReconnect: true}, connected)
	waitClosed(t, c.Done(), "Done")
	if !errors.Is(c.Err(), ErrHeartbeatTimeout) {
		t.Fatalf("Err() = %v, want ErrHeartbeatTimeout", c.Err())
	}
}

func TestOversizedMessageClosesWith1009(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{DisableReconnect: true, MaxMessageBytes: 1024})
	fc.message(t, protocol.Message{Room: "r", Offset: 1, Data: []byte(`"` + strings.Repeat("x", 2048) + `"`)})
	if code := recv(t, fc.closes, "the client's close"); code != ws.StatusMessageTooBig {
		t.Errorf("closed with %d, want 1009", code)
	}
	waitClosed(t, c.Done(), "Done")
	if !errors.Is(c.Err(), ErrMessageTooLarge) {
		t.Fatalf("Err() = %v, want ErrMessageTooLarge", c.Err())
	}
}

func TestBinaryFrameClosesWith1003(t *testing.T) {
	g := newFakeGateway(t)
	c, fc := dial(t, g, Config{DisableReconnect: true})
	fc.writeFrame(t, ws.NewBinaryFrame([]byte{1, 2, 3}))
	if code := recv(t, fc.closes, "the client's close"); code != ws.StatusUnsupportedData {
		t.Errorf("closed with %d, want 1003", code)
	}
	waitClosed(t, c.Done(), "Done")
	if !errors.Is(c.Err(), ErrProtocol) {
		t.Fatalf("Err() = %v, want ErrProtocol", c.Err())
	}
}

// TestFramesCoalescedWithHandshake has the server write its first frame in
// the same TCP write as the 101 response, as a fast gateway does: the frame
// arrives in the dialer's handshake buffer and must not be lost.
func TestFramesCoalescedWithHandshake(t *testing.T) {
	connected, err := protocol.JSON.AppendServerFrame(nil, &protocol.ServerFrame{Connected: &testConnected})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		frame ws.Frame
		check func(t *testing.T, c *Client, err error)
	}{
		{
			name:  "connected",
			frame: ws.NewTextFrame(connected),
			check: func(t *testing.T, c *Client, err error) {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				defer c.Close()
				if c.Info().ConnectionID != testConnected.ConnectionID {
					t.Errorf("Info() = %+v", c.Info())
				}
			},
		},
		{
			name:  "close",
			frame: ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(protocol.CloseTokenExpired), "expired")),
			check: func(t *testing.T, c *Client, err error) {
				var ce *CloseError
				if !errors.As(err, &ce) || ce.Code != protocol.CloseTokenExpired {
					t.Fatalf("Dial: err = %v, want *CloseError{4002}", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = ln.Close() })
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				br := bufio.NewReader(conn)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
				var out bytes.Buffer
				out.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
				out.WriteString("Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n")
				out.WriteString("Sec-WebSocket-Protocol: " + protocol.SubprotocolJSON + "\r\n\r\n")
				if err := ws.WriteFrame(&out, tt.frame); err != nil {
					return
				}
				if _, err := conn.Write(out.Bytes()); err != nil {
					return
				}
				// Acknowledge the client's close frame, skipping anything before.
				for {
					h, err := ws.ReadHeader(br)
					if err != nil {
						return
					}
					if _, err := io.CopyN(io.Discard, br, h.Length); err != nil {
						return
					}
					if h.OpCode == ws.OpClose {
						_ = ws.WriteFrame(conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
						return
					}
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			c, err := Dial(ctx, Config{URL: "ws://" + ln.Addr().String() + "/v1/connect", Token: testToken})
			tt.check(t, c, err)
		})
	}
}
