package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// Raw is a bare WebSocket client that can send anything, including frames
// no SDK would send. Tests use it for the protocol's bad-input table.
type Raw struct {
	t    testing.TB
	Conn net.Conn
	rd   *bufio.Reader
	// NoPong stops the client from answering pings, like a peer whose
	// network vanished.
	NoPong bool
	// Protocol is the subprotocol the server selected ("" for none).
	Protocol string
}

// DialRaw opens a WebSocket to url offering protocols, with extra headers.
// It fails the test if the upgrade itself fails.
func DialRaw(t testing.TB, url string, header http.Header, protocols ...string) *Raw {
	t.Helper()
	d := ws.Dialer{Protocols: protocols, Timeout: 10 * time.Second, Header: ws.HandshakeHeaderHTTP(header)}
	nc, br, hs, err := d.Dial(context.Background(), url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { nc.Close() })
	if br == nil {
		br = bufio.NewReader(nc)
	}
	return &Raw{t: t, Conn: nc, rd: br, Protocol: hs.Protocol}
}

// WriteFrame writes one client frame (masked, as the RFC requires).
func (r *Raw) WriteFrame(op ws.OpCode, payload []byte) {
	r.t.Helper()
	if err := wsutil.WriteClientMessage(r.Conn, op, payload); err != nil {
		r.t.Fatalf("write frame: %v", err)
	}
}

// WriteJSON writes v as a text frame.
func (r *Raw) WriteJSON(v any) {
	r.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		r.t.Fatal(err)
	}
	r.WriteFrame(ws.OpText, b)
}

// Frame is one frame read from the server.
type Frame struct {
	Op      ws.OpCode
	Payload []byte
	// Server is the decoded payload of a data frame.
	Server protocol.ServerFrame
	// CloseCode is set for close frames.
	CloseCode protocol.CloseCode
	Reason    string
}

// Read reads the next server frame (answering pings) within timeout.
func (r *Raw) Read(timeout time.Duration) (Frame, error) {
	_ = r.Conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		hdr, err := ws.ReadHeader(r.rd)
		if err != nil {
			return Frame{}, err
		}
		payload := make([]byte, hdr.Length)
		if _, err := io.ReadFull(r.rd, payload); err != nil {
			return Frame{}, err
		}
		switch hdr.OpCode {
		case ws.OpPing:
			if !r.NoPong {
				_ = wsutil.WriteClientMessage(r.Conn, ws.OpPong, payload)
			}
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(payload)
			return Frame{Op: hdr.OpCode, Payload: payload, CloseCode: protocol.CloseCode(code), Reason: reason}, nil
		}
		f := Frame{Op: hdr.OpCode, Payload: payload}
		codec := protocol.JSON
		if hdr.OpCode == ws.OpBinary { // roomcast.v1.msgpack
			codec = protocol.Msgpack
		}
		sf, err := codec.DecodeServerFrame(payload)
		if err != nil {
			return f, err
		}
		f.Server = sf
		return f, nil
	}
}

// ReadServer reads the next data frame, failing the test on a close or error.
func (r *Raw) ReadServer() protocol.ServerFrame {
	r.t.Helper()
	f, err := r.Read(10 * time.Second)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	if f.Op == ws.OpClose {
		r.t.Fatalf("connection closed: %d %s", f.CloseCode, f.Reason)
	}
	return f.Server
}

// ExpectClose reads until the server's close frame and checks its code.
func (r *Raw) ExpectClose(want protocol.CloseCode) {
	r.t.Helper()
	for {
		f, err := r.Read(10 * time.Second)
		if err != nil {
			r.t.Fatalf("want close %d (%s), got read error %v", want, want, err)
		}
		if f.Op == ws.OpClose {
			if f.CloseCode != want {
				r.t.Fatalf("close code = %d (%s, %q), want %d (%s)", f.CloseCode, f.CloseCode, f.Reason, want, want)
			}
			return
		}
	}
}

// ErrClosed is returned by Read helpers after the close frame.
var ErrClosed = errors.New("harness: closed")

// Connect dials url with tok in the subprotocol carrier and reads the
// `connected` frame, failing the test if anything else arrives first.
func Connect(t testing.TB, url, tok string) (*Raw, *protocol.Connected) {
	t.Helper()
	r := DialRaw(t, url, nil, protocol.SubprotocolJSON, protocol.TokenSubprotocolPrefix+tok)
	f := r.ReadServer()
	if f.Connected == nil {
		t.Fatalf("first frame is not connected: %+v", f)
	}
	return r, f.Connected
}
