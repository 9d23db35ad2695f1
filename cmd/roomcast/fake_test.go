package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
)

const waitLimit = 10 * time.Second

const testAPIKey = "app1.k1:s3cr3t-s3cr3t-s3cr3t-s3cr3t-0123"

// testNow is the clock the commands see; the fake gateway verifies tokens
// at the same instant.
var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func testKey(t *testing.T) token.Key {
	t.Helper()
	k, err := token.ParseAPIKey(testAPIKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fakeGateway answers the client protocol like a gateway would, without any
// broker behind it: it verifies the token with the test key, replies to
// every command, and lets the test script what happens after a join.
type fakeGateway struct {
	srv      *httptest.Server
	verifier *token.Verifier

	// afterJoin, if set, runs after the reply to a join, on the
	// connection's goroutine; it may send messages or close.
	afterJoin func(fc *fakeConn, room string)

	cmds   chan protocol.Command
	claims chan *token.Claims
}

func newFakeGateway(t *testing.T) *fakeGateway {
	t.Helper()
	g := &fakeGateway{
		verifier: &token.Verifier{Keys: token.NewStaticKeyring(testKey(t)), Now: func() time.Time { return testNow }},
		cmds:     make(chan protocol.Command, 64),
		claims:   make(chan *token.Claims, 4),
	}
	g.srv = httptest.NewServer(g)
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGateway) URL() string {
	return "ws://" + strings.TrimPrefix(g.srv.URL, "http://") + "/v1/connect"
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(p), protocol.TokenSubprotocolPrefix); ok {
				tok = rest
			}
		}
	}
	up := ws.HTTPUpgrader{Protocol: func(p string) bool { return p == protocol.SubprotocolJSON }}
	conn, _, _, err := up.Upgrade(r, w)
	if err != nil {
		return
	}
	fc := &fakeConn{conn: conn}
	defer conn.Close()
	claims, err := g.verifier.Verify(tok)
	if err != nil {
		fc.close(protocol.CloseInvalidToken, "token rejected")
		fc.drain()
		return
	}
	g.claims <- claims
	fc.send(protocol.ServerFrame{Connected: &protocol.Connected{ConnectionID: "c1", ClientID: claims.ClientID(), Node: "fake"}})
	for {
		h, err := ws.ReadHeader(conn)
		if err != nil || h.Length > 1<<20 {
			return
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(conn, p); err != nil {
			return
		}
		ws.Cipher(p, h.Mask, 0)
		switch h.OpCode {
		case ws.OpClose:
			fc.close(protocol.CloseNormal, "")
			return
		case ws.OpText:
		default:
			continue
		}
		cmd, err := protocol.JSON.DecodeCommand(p)
		if err != nil {
			return
		}
		g.cmds <- cmd
		reply := &protocol.Reply{ID: cmd.ID, Room: cmd.Room}
		switch {
		case cmd.Op == protocol.OpPublish && cmd.Room == "forbidden":
			reply.Error = protocol.NewError(protocol.CodeForbidden, "no publish capability")
		case cmd.Op == protocol.OpJoin:
			reply.Position = &protocol.Position{Offset: 10, Epoch: "e1"}
		case cmd.Op == protocol.OpPublish && !cmd.Transient:
			reply.Position = &protocol.Position{Offset: 42, Epoch: "e1"}
		}
		fc.send(protocol.ServerFrame{Reply: reply})
		if cmd.Op == protocol.OpJoin && g.afterJoin != nil {
			g.afterJoin(fc, cmd.Room)
		}
	}
}

type fakeConn struct {
	mu   sync.Mutex
	conn net.Conn
}

func (fc *fakeConn) send(f protocol.ServerFrame) {
	p, err := protocol.JSON.AppendServerFrame(nil, &f)
	if err != nil {
		panic(err)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	_ = ws.WriteFrame(fc.conn, ws.NewTextFrame(p))
}

func (fc *fakeConn) close(code protocol.CloseCode, reason string) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	_ = ws.WriteFrame(fc.conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), reason)))
}

// drain reads until the client goes away, so it can read our close frame.
func (fc *fakeConn) drain() {
	_ = fc.conn.SetReadDeadline(time.Now().Add(waitLimit))
	_, _ = io.Copy(io.Discard, fc.conn)
}

// lineBuffer is a concurrency-safe stdout that reports each line written.
type lineBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func newLineBuffer() *lineBuffer { return &lineBuffer{lines: make(chan string, 64)} }

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	for {
		line, err := b.buf.ReadString('\n')
		if err != nil {
			// Incomplete line: keep it for the next write.
			rest := line
			b.buf.Reset()
			b.buf.WriteString(rest)
			return len(p), nil
		}
		b.lines <- strings.TrimSuffix(line, "\n")
	}
}

// syncBuffer is a concurrency-safe bytes.Buffer.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv builds an env with the given environment variables.
func testEnv(stdin string, vars map[string]string) (*env, *syncBuffer, *syncBuffer) {
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	return &env{
		stdin:  strings.NewReader(stdin),
		stdout: stdout,
		stderr: stderr,
		getenv: func(k string) string { return vars[k] },
		now:    func() time.Time { return testNow },
	}, stdout, stderr
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

// runAsync runs the command line in the background and returns its exit code
// channel.
func runAsync(ctx context.Context, args []string, e *env) <-chan int {
	ch := make(chan int, 1)
	go func() { ch <- run(ctx, args, e) }()
	return ch
}
