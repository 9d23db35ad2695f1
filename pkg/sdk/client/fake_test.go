package client

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// waitLimit bounds every wait in these tests; reaching it is a failure.
const waitLimit = 10 * time.Second

// fakeGateway fakes the gateway side of the client protocol, frame by frame,
// so that each test decides exactly what the server sends and when.
type fakeGateway struct {
	t     testing.TB
	srv   *httptest.Server
	conns chan *fakeConn

	// reject, when non-zero, refuses every upgrade with this HTTP status.
	reject int
	// noSubprotocol upgrades without selecting a subprotocol.
	noSubprotocol bool
	// refuse, while non-zero, refuses upgrades with this HTTP status; a
	// test may change it at any time. Each refusal is reported on refused.
	refuse  atomic.Int32
	refused chan int
}

func newFakeGateway(t testing.TB, configure ...func(*fakeGateway)) *fakeGateway {
	t.Helper()
	g := &fakeGateway{t: t, conns: make(chan *fakeConn, 16), refused: make(chan int, 64)}
	for _, f := range configure {
		f(g)
	}
	g.srv = httptest.NewServer(g)
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGateway) URL() string {
	return "ws://" + strings.TrimPrefix(g.srv.URL, "http://") + "/v1/connect"
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.reject != 0 {
		http.Error(w, "refused", g.reject)
		return
	}
	if code := int(g.refuse.Load()); code != 0 {
		http.Error(w, "refused", code)
		g.refused <- code
		return
	}
	var offered []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			offered = append(offered, strings.TrimSpace(p))
		}
	}
	up := ws.HTTPUpgrader{}
	if !g.noSubprotocol {
		up.Protocol = func(p string) bool { return p == protocol.SubprotocolJSON }
	}
	conn, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		return
	}
	fc := &fakeConn{
		conn:      conn,
		br:        rw.Reader,
		protocols: offered,
		query:     r.URL.Query(),
		header:    r.Header.Clone(),
		cmds:      make(chan protocol.Command, 4096),
		pongs:     make(chan []byte, 16),
		closes:    make(chan ws.StatusCode, 1),
		gone:      make(chan struct{}),
	}
	g.t.Cleanup(func() { _ = conn.Close() })
	go fc.readLoop()
	g.conns <- fc
}

// accept returns the next upgraded connection.
func (g *fakeGateway) accept(t testing.TB) *fakeConn {
	t.Helper()
	return recv(t, g.conns, "a connection")
}

// fakeConn is the server end of one connection.
type fakeConn struct {
	conn      net.Conn
	br        *bufio.Reader
	protocols []string
	query     url.Values
	header    http.Header

	wmu       sync.Mutex
	closeSent bool

	cmds   chan protocol.Command // decoded commands; Op "decode-error" on garbage
	pongs  chan []byte
	closes chan ws.StatusCode // the client's close frame code (1005 when none)
	gone   chan struct{}      // closed when the client's side is finished
}

func (fc *fakeConn) readLoop() {
	defer close(fc.gone)
	for {
		f, err := readFrame(fc.br)
		if err != nil {
			return
		}
		if f.Header.Masked {
			ws.Cipher(f.Payload, f.Header.Mask, 0)
		}
		switch f.Header.OpCode {
		case ws.OpText:
			cmd, err := protocol.JSON.DecodeCommand(f.Payload)
			if err != nil {
				cmd = protocol.Command{Op: "decode-error: " + protocol.Op(err.Error())}
			}
			fc.cmds <- cmd
		case ws.OpPong:
			fc.pongs <- f.Payload
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(f.Payload)
			if len(f.Payload) < 2 {
				code = ws.StatusNoStatusRcvd
			}
			fc.closes <- code
			fc.wmu.Lock()
			if !fc.closeSent {
				fc.closeSent = true
				_ = ws.WriteFrame(fc.conn, ws.NewCloseFrame(ws.NewCloseFrameBody(code, "")))
			}
			fc.wmu.Unlock()
			_ = fc.conn.Close()
			return
		default:
			fc.cmds <- protocol.Command{Op: "unexpected-frame"}
		}
	}
}

// readFrame reads one whole client frame of at most 1 MiB.
func readFrame(r io.Reader) (ws.Frame, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return ws.Frame{}, err
	}
	if h.Length > 1<<20 {
		return ws.Frame{}, fmt.Errorf("fake gateway: frame of %d bytes", h.Length)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		return ws.Frame{}, err
	}
	return ws.Frame{Header: h, Payload: p}, nil
}

func (fc *fakeConn) writeFrame(t testing.TB, f ws.Frame) {
	t.Helper()
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	if err := ws.WriteFrame(fc.conn, f); err != nil {
		t.Errorf("fake gateway: write: %v", err)
	}
}

func (fc *fakeConn) send(t testing.TB, f protocol.ServerFrame) {
	t.Helper()
	p, err := protocol.JSON.AppendServerFrame(nil, &f)
	if err != nil {
		t.Fatalf("fake gateway: encode: %v", err)
	}
	fc.writeFrame(t, ws.NewTextFrame(p))
}

func (fc *fakeConn) sendConnected(t testing.TB, c protocol.Connected) {
	t.Helper()
	fc.send(t, protocol.ServerFrame{Connected: &c})
}

func (fc *fakeConn) reply(t testing.TB, r protocol.Reply) {
	t.Helper()
	fc.send(t, protocol.ServerFrame{Reply: &r})
}

func (fc *fakeConn) message(t testing.TB, m protocol.Message) {
	t.Helper()
	fc.send(t, protocol.ServerFrame{Message: &m})
}

// close sends a close frame and closes the TCP connection after the
// client's acknowledgement (or when it goes away).
func (fc *fakeConn) close(t testing.TB, code protocol.CloseCode, reason string) {
	t.Helper()
	fc.wmu.Lock()
	fc.closeSent = true
	fc.wmu.Unlock()
	fc.writeFrame(t, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), reason)))
}

// cmd returns the next command the client sent.
func (fc *fakeConn) cmd(t testing.TB) protocol.Command {
	t.Helper()
	return recv(t, fc.cmds, "a command")
}

func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func waitClosed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		t.Fatalf("timed out waiting for %s", what)
	}
}

const testToken = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"

var testConnected = protocol.Connected{
	ConnectionID: "conn-1",
	SessionID:    "sess-1",
	ResumeToken:  "resume-secret",
	ClientID:     "alice",
	Node:         "node-a",
	Limits: protocol.Limits{
		MaxMessageBytes:  65536,
		MaxRoomNameBytes: 200,
		MaxRooms:         100,
		PublishRate:      50,
		PublishBurst:     100,
	},
}

// dial connects a Client to g, plays the server's `connected`, and closes
// the client when the test ends.
func dial(t testing.TB, g *fakeGateway, cfg Config) (*Client, *fakeConn) {
	t.Helper()
	return dialWith(t, g, cfg, testConnected)
}

func dialWith(t testing.TB, g *fakeGateway, cfg Config, connected protocol.Connected) (*Client, *fakeConn) {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = g.URL()
	}
	if cfg.Token == "" && cfg.TokenProvider == nil {
		cfg.Token = testToken
	}
	type result struct {
		c   *Client
		err error
	}
	res := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	go func() {
		c, err := Dial(ctx, cfg)
		res <- result{c, err}
	}()
	fc := g.accept(t)
	fc.sendConnected(t, connected)
	r := recv(t, res, "Dial")
	if r.err != nil {
		t.Fatalf("Dial: %v", r.err)
	}
	t.Cleanup(func() { _ = r.c.Close() })
	return r.c, fc
}

// drop ends the connection abruptly, as a network failure or a killed node
// does: no close frame, just the TCP connection gone.
func (fc *fakeConn) drop() { _ = fc.conn.Close() }

// session plays the server side of a session across connections.
type fakeSession struct {
	ID, Token string
}

// handshake sends `connected` for a new connection of session s.
func (fc *fakeConn) handshake(t testing.TB, s fakeSession) {
	t.Helper()
	fc.sendConnected(t, protocol.Connected{ConnectionID: "conn-" + s.ID, SessionID: s.ID, ResumeToken: s.Token, ClientID: "alice", Node: "node-b"})
}

// resumeOK answers the client's resume of prev, which must present prev's
// token, like a gateway that still holds the session: the connection now
// belongs to prev, under a new token.
func (fc *fakeConn) resumeOK(t testing.TB, prev fakeSession, newToken string, rooms ...string) {
	t.Helper()
	cmd := expectCmd(t, fc, protocol.OpResume)
	if cmd.SessionID != prev.ID || cmd.ResumeToken != prev.Token {
		t.Fatalf("resume of %q with token %q, want %q with %q", cmd.SessionID, cmd.ResumeToken, prev.ID, prev.Token)
	}
	fc.reply(t, protocol.Reply{ID: cmd.ID, SessionID: prev.ID, ResumeToken: newToken, Rooms: rooms})
}

// resumeFail answers the client's resume with an error code
// (session_invalid, unavailable).
func (fc *fakeConn) resumeFail(t testing.TB, code protocol.Code) {
	t.Helper()
	cmd := expectCmd(t, fc, protocol.OpResume)
	fc.reply(t, protocol.Reply{ID: cmd.ID, Error: &protocol.Error{Code: code, Message: "no"}})
}

// fakeStream is what a fake gateway holds of one room: offsets first..last
// of epoch in its recovery stream.
type fakeStream struct {
	Epoch       string
	First, Last uint64
}

func (s fakeStream) msg(room string, off uint64) protocol.Message {
	return protocol.Message{Room: room, Offset: off, Epoch: s.Epoch, Data: fmt.Appendf(nil, "%d", off)}
}

// rejoin answers the client's next command, a join of one of the rooms in
// streams, like a gateway: with a since inside the stream it replies
// recovered and replays — sloppily, from one message BEFORE since, so the
// client has to drop a duplicate — through Last; otherwise (another epoch,
// messages trimmed, no since) it replies not recovered at Last. It returns
// the join command.
func (fc *fakeConn) rejoin(t testing.TB, streams map[string]fakeStream) protocol.Command {
	t.Helper()
	cmd := expectCmd(t, fc, protocol.OpJoin)
	s, ok := streams[cmd.Room]
	if !ok {
		t.Fatalf("join of unexpected room %q", cmd.Room)
	}
	pos := protocol.Position{Offset: s.Last, Epoch: s.Epoch}
	recovered := cmd.Since != nil && cmd.Since.Epoch == s.Epoch && cmd.Since.Offset+1 >= s.First && cmd.Since.Offset <= s.Last
	fc.reply(t, protocol.Reply{ID: cmd.ID, Room: cmd.Room, Position: &pos, Recovered: recovered})
	if recovered {
		lo := s.First
		if cmd.Since.Offset > s.First {
			lo = cmd.Since.Offset - 1 // two messages the client has already
		}
		for off := lo; off <= s.Last; off++ {
			fc.message(t, s.msg(cmd.Room, off))
		}
	}
	return cmd
}
