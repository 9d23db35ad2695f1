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
	t     *testing.T
	srv   *httptest.Server
	conns chan *fakeConn

	// reject, when non-zero, refuses every upgrade with this HTTP status.
	reject int
	// noSubprotocol upgrades without selecting a subprotocol.
	noSubprotocol bool
}

func newFakeGateway(t *testing.T, configure ...func(*fakeGateway)) *fakeGateway {
	t.Helper()
	g := &fakeGateway{t: t, conns: make(chan *fakeConn, 16)}
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
func (g *fakeGateway) accept(t *testing.T) *fakeConn {
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

func (fc *fakeConn) writeFrame(t *testing.T, f ws.Frame) {
	t.Helper()
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	if err := ws.WriteFrame(fc.conn, f); err != nil {
		t.Errorf("fake gateway: write: %v", err)
	}
}

func (fc *fakeConn) send(t *testing.T, f protocol.ServerFrame) {
	t.Helper()
	p, err := protocol.JSON.AppendServerFrame(nil, &f)
	if err != nil {
		t.Fatalf("fake gateway: encode: %v", err)
	}
	fc.writeFrame(t, ws.NewTextFrame(p))
}

func (fc *fakeConn) sendConnected(t *testing.T, c protocol.Connected) {
	t.Helper()
	fc.send(t, protocol.ServerFrame{Connected: &c})
}

func (fc *fakeConn) reply(t *testing.T, r protocol.Reply) {
	t.Helper()
	fc.send(t, protocol.ServerFrame{Reply: &r})
}

func (fc *fakeConn) message(t *testing.T, m protocol.Message) {
	t.Helper()
	fc.send(t, protocol.ServerFrame{Message: &m})
}

// close sends a close frame and closes the TCP connection after the
// client's acknowledgement (or when it goes away).
func (fc *fakeConn) close(t *testing.T, code protocol.CloseCode, reason string) {
	t.Helper()
	fc.wmu.Lock()
	fc.closeSent = true
	fc.wmu.Unlock()
	fc.writeFrame(t, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), reason)))
}

// cmd returns the next command the client sent.
func (fc *fakeConn) cmd(t *testing.T) protocol.Command {
	t.Helper()
	return recv(t, fc.cmds, "a command")
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
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

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
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
func dial(t *testing.T, g *fakeGateway, cfg Config) (*Client, *fakeConn) {
	t.Helper()
	return dialWith(t, g, cfg, testConnected)
}

func dialWith(t *testing.T, g *fakeGateway, cfg Config, connected protocol.Connected) (*Client, *fakeConn) {
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
