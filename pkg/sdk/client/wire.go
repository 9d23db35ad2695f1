package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/roomcast/roomcast/pkg/protocol"
)

const (
	// writeTimeout bounds one frame write, so a dead peer cannot block
	// writers forever; a write that times out ends the connection.
	writeTimeout = 10 * time.Second
	// closeTimeout is how long Close waits for the server's close echo.
	closeTimeout = 5 * time.Second
)

// readBufferSize is the read buffer per connection: a few dozen of the
// gateway's coalesced message frames.
const readBufferSize = 4096

// wire is one WebSocket connection to a gateway: handshake, the reader
// (pings, replies, messages) and writes. The reconnecting Client runs one
// wire at a time.
type wire struct {
	cfg   Config
	log   *slog.Logger
	conn  net.Conn
	rd    *wsutil.Reader
	codec protocol.Codec
	info  protocol.Connected
	// readTimeout is three heartbeat intervals; zero disables it.
	readTimeout time.Duration
	// deadlineAt is when the read deadline was last moved (readLoop only).
	deadlineAt time.Time

	writeMu   sync.Mutex
	bw        *bufio.Writer
	closeSent bool // a close frame was written; guarded by writeMu

	nextID    atomic.Uint64
	pendingMu sync.Mutex
	pending   map[uint64]*call
	ended     bool // the reader has exited; guarded by pendingMu

	accept func(*protocol.Message, *protocol.PresenceEvent) bool
	// metrics receives live room metrics pushes (best effort).
	metrics func(*protocol.RoomMetrics)

	closing    atomic.Bool
	closeOnce  sync.Once
	readerDone chan struct{}

	// connectedAt and tokenExp (zero when unknown) let the Client refresh a
	// provider's token before the server closes for expiry.
	connectedAt time.Time
	tokenExp    time.Time

	errMu sync.Mutex
	err   error
}

// dialWire connects once and returns after the server's `connected` frame.
// accept receives each message in order; returning false means the
// message buffer is full. ctx bounds the whole handshake. A server that closes
// during the handshake (invalid or expired token, rejected Origin) yields a
// *CloseError; an HTTP refusal of the upgrade yields a *HandshakeError.
func dialWire(ctx context.Context, cfg Config, accept func(*protocol.Message, *protocol.PresenceEvent) bool, metrics func(*protocol.RoomMetrics)) (*wire, error) {
	cfg, u, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	tok, err := cfg.token(ctx)
	if err != nil {
		return nil, err
	}
	redacted := u.Redacted() // never contains the token: it is added below
	codec := cfg.Codec
	if codec == nil {
		codec = protocol.JSON
	}
	protocols := []string{codec.Subprotocol()}
	if cfg.TokenInQuery {
		q := u.Query()
		q.Set("token", tok)
		u.RawQuery = q.Encode()
	} else {
		protocols = append(protocols, protocol.TokenSubprotocolPrefix+tok)
	}
	d := ws.Dialer{Protocols: protocols}
	if len(cfg.Header) > 0 {
		d.Header = ws.HandshakeHeaderHTTP(cfg.Header)
	}
	conn, br, hs, err := d.Dial(ctx, u.String())
	if err != nil {
		var se ws.StatusError
		if errors.As(err, &se) {
			return nil, &HandshakeError{StatusCode: int(se)}
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = redacted // the query may carry the token
		}
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return nil, fmt.Errorf("roomcast: dial %s: %w", redacted, err)
	}
	if hs.Protocol != codec.Subprotocol() {
		_ = conn.Close()
		return nil, fmt.Errorf("roomcast: dial %s: server did not select subprotocol %q", redacted, codec.Subprotocol())
	}

	// Frames are read through a buffer: the gateway writes several frames
	// at once when they queue up, and a frame's header and payload are
	// separate reads, so reading the socket directly would cost a syscall
	// or two per frame. br, when the dialer returns one, already holds the
	// server's first frames (they arrived with the handshake response).
	src := br
	if src == nil {
		src = bufio.NewReaderSize(conn, readBufferSize)
	}
	c := &wire{
		cfg:   cfg,
		log:   cfg.Logger,
		conn:  conn,
		codec: codec,
		rd: &wsutil.Reader{
			Source:         src,
			State:          ws.StateClientSide,
			CheckUTF8:      !codec.Binary(),
			MaxFrameSize:   cfg.MaxMessageBytes,
			MaxMessageSize: cfg.MaxMessageBytes,
		},
		bw:         bufio.NewWriter(conn),
		pending:    make(map[uint64]*call),
		accept:     accept,
		metrics:    metrics,
		readerDone: make(chan struct{}),
	}
	c.rd.OnIntermediate = c.handleIntermediate

	// Bound the wait for `connected` by ctx: cancellation poisons the
	// connection's deadline, which unblocks the read.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	info, err := c.readConnected()
	if !stop() {
		// ctx ended while waiting; err, if any, is the poisoned read.
		_ = conn.Close()
		return nil, fmt.Errorf("roomcast: dial %s: waiting for connected: %w", redacted, ctx.Err())
	}
	if err != nil {
		_ = conn.Close()
		var ce *CloseError
		if errors.As(err, &ce) {
			return nil, ce
		}
		return nil, fmt.Errorf("roomcast: dial %s: %w", redacted, err)
	}
	_ = conn.SetDeadline(time.Time{})
	c.info = info
	if info.HeartbeatMS > 0 {
		c.readTimeout = 3 * time.Duration(info.HeartbeatMS) * time.Millisecond
	}
	c.log.Debug("roomcast: connected", "url", redacted, "connection_id", info.ConnectionID,
		"client_id", info.ClientID, "node", info.Node, "heartbeat_ms", info.HeartbeatMS)
	go c.readLoop()
	return c, nil
}

// readConnected reads until the server's `connected` frame.
func (c *wire) readConnected() (protocol.Connected, error) {
	payload, err := c.readMessage()
	if err != nil {
		return protocol.Connected{}, err
	}
	f, err := c.codec.DecodeServerFrame(payload)
	switch {
	case err != nil:
		return protocol.Connected{}, fmt.Errorf("%w: first frame: %w", ErrProtocol, err)
	case f.Connected != nil:
		return *f.Connected, nil
	case f.Error != nil:
		return protocol.Connected{}, &ReplyError{Code: f.Error.Code, Message: f.Error.Message}
	}
	return protocol.Connected{}, fmt.Errorf("%w: first frame is not connected", ErrProtocol)
}

// call is one request waiting for its reply.
type call struct {
	ch chan *protocol.Reply
	// hook, if set, runs on the reader goroutine when the reply arrives,
	// before any later frame is handled: the Client updates room positions
	// there, so they are right before the room's next message is accepted.
	hook func(*protocol.Reply)
}

// notSentError is a request that failed before it was written: the server
// never saw it. When it wraps ErrDisconnected (the connection had ended),
// any request may be sent again on the next connection.
type notSentError struct{ error }

func (e notSentError) Unwrap() error { return e.error }

// wasSent reports whether a failed request may have reached the server.
func wasSent(err error) bool {
	var ns notSentError
	return !errors.As(err, &ns)
}

// request sends one command and waits for its reply. Cancelling ctx abandons
// the wait only: the connection stays usable and a late reply is dropped.
// If the connection ends first, the error wraps ErrDisconnected and the
// connection's reason; it is a notSentError when the command was never
// written.
func (c *wire) request(ctx context.Context, cmd *protocol.Command, hook func(*protocol.Reply)) (*protocol.Reply, error) {
	if err := ctx.Err(); err != nil {
		return nil, notSentError{fmt.Errorf("roomcast: %s: %w", cmd.Op, err)}
	}
	cmd.ID = c.nextID.Add(1)
	frame, err := c.codec.AppendCommand(nil, cmd)
	if err != nil {
		return nil, notSentError{fmt.Errorf("roomcast: %s: %w", cmd.Op, err)}
	}
	cl := &call{ch: make(chan *protocol.Reply, 1), hook: hook}
	c.pendingMu.Lock()
	if c.ended {
		c.pendingMu.Unlock()
		return nil, notSentError{c.disconnected()}
	}
	c.pending[cmd.ID] = cl
	c.pendingMu.Unlock()
	defer func() {
		c.pendingMu.Lock()
		delete(c.pending, cmd.ID)
		c.pendingMu.Unlock()
	}()

	op := ws.OpText
	if c.codec.Binary() {
		op = ws.OpBinary
	}
	if err := c.writeFrame(op, frame); err != nil {
		return nil, c.disconnected()
	}
	var r *protocol.Reply
	select {
	case r = <-cl.ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("roomcast: %s: %w", cmd.Op, ctx.Err())
	case <-c.readerDone:
		select {
		case r = <-cl.ch: // the reply arrived just before the end
		default:
			return nil, c.disconnected()
		}
	}
	if r.Error != nil {
		return r, &ReplyError{Code: r.Error.Code, Message: r.Error.Message}
	}
	return r, nil
}

// disconnected is the error for a request the connection's end cut off.
func (c *wire) disconnected() error {
	return fmt.Errorf("%w: %w", ErrDisconnected, c.errOrClosed())
}

// Err is nil while the connection is open, then why it ended.
func (c *wire) Err() error {
	select {
	case <-c.readerDone:
	default:
		return nil
	}
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// close sends close 1000 (which ends the session on the server), waits
// briefly for the acknowledgement and drops the connection.
func (c *wire) close() { c.closeWith(ws.StatusNormalClosure) }

// closeWith is close with another code: 1001 hands the session over to a
// newer connection instead of ending it.
func (c *wire) closeWith(code ws.StatusCode) {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		c.setErr(ErrClosed)
		if err := c.writeClose(code, ""); err == nil {
			t := time.NewTimer(closeTimeout)
			select {
			case <-c.readerDone:
			case <-t.C:
				c.log.Debug("roomcast: no close acknowledgement from the server")
			}
			t.Stop()
		}
		_ = c.conn.Close()
		<-c.readerDone
	})
}

// setErr records why the connection ends; the first reason wins.
func (c *wire) setErr(err error) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.err == nil {
		c.err = err
	}
}
