// Package client is the Go client SDK for Roomcast: it connects to a gateway
// over WebSocket, joins rooms, publishes, and hands received room messages
// to handlers.
//
// A Client is one connection. Dial returns once the server has accepted it;
// when the connection ends, Done is closed and Err says why (a *CloseError
// carries the server's close code, whose Retry method says whether to
// reconnect). All methods are safe for concurrent use.
//
//	c, err := client.Dial(ctx, client.Config{URL: "ws://127.0.0.1:8080/v1/connect", Token: jwt})
//	if err != nil { ... }
//	defer c.Close()
//	c.OnMessage("lobby", func(m protocol.Message) { fmt.Printf("%s\n", m.Data) })
//	if _, err := c.Join(ctx, "lobby"); err != nil { ... }
//	pos, err := c.Publish(ctx, "lobby", []byte(`{"text":"hi"}`), client.WithEvent("chat"))
package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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

// Client is one connection to a Roomcast gateway.
type Client struct {
	cfg   Config
	log   *slog.Logger
	conn  net.Conn
	rd    *wsutil.Reader
	codec protocol.Codec
	info  protocol.Connected
	// readTimeout is three heartbeat intervals; zero disables it.
	readTimeout time.Duration

	writeMu   sync.Mutex
	bw        *bufio.Writer
	closeSent bool // a close frame was written; guarded by writeMu

	nextID    atomic.Uint64
	pendingMu sync.Mutex
	pending   map[uint64]chan *protocol.Reply
	ended     bool // the reader has exited; guarded by pendingMu

	handlersMu   sync.RWMutex
	roomHandlers map[string]func(protocol.Message)
	anyHandler   func(protocol.Message)

	events     chan *protocol.Message
	closing    atomic.Bool
	closeOnce  sync.Once
	readerDone chan struct{}
	done       chan struct{}

	errMu sync.Mutex
	err   error
}

// Dial connects to the gateway and returns once the server's `connected`
// frame has arrived. ctx bounds the whole handshake. A server that closes
// during the handshake (invalid or expired token, rejected Origin) yields a
// *CloseError; an HTTP refusal of the upgrade yields a *HandshakeError.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg, u, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	tok, err := cfg.token(ctx)
	if err != nil {
		return nil, err
	}
	redacted := u.Redacted() // never contains the token: it is added below
	protocols := []string{protocol.SubprotocolJSON}
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
	if hs.Protocol != protocol.SubprotocolJSON {
		_ = conn.Close()
		return nil, fmt.Errorf("roomcast: dial %s: server did not select subprotocol %q", redacted, protocol.SubprotocolJSON)
	}

	var src io.Reader = conn
	if br != nil {
		// The server's first frames arrived with the handshake response.
		src = br
	}
	c := &Client{
		cfg:   cfg,
		log:   cfg.Logger,
		conn:  conn,
		codec: protocol.JSON,
		rd: &wsutil.Reader{
			Source:         src,
			State:          ws.StateClientSide,
			CheckUTF8:      true,
			MaxFrameSize:   cfg.MaxMessageBytes,
			MaxMessageSize: cfg.MaxMessageBytes,
		},
		bw:           bufio.NewWriter(conn),
		pending:      make(map[uint64]chan *protocol.Reply),
		roomHandlers: make(map[string]func(protocol.Message)),
		events:       make(chan *protocol.Message, cfg.MessageBuffer),
		readerDone:   make(chan struct{}),
		done:         make(chan struct{}),
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
	go c.deliver()
	return c, nil
}

// readConnected reads until the server's `connected` frame.
func (c *Client) readConnected() (protocol.Connected, error) {
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

// Info is what the server announced in its `connected` frame: connection
// and session ids, the client id from the token, heartbeat and limits. Its
// ResumeToken is a secret: never log it.
func (c *Client) Info() protocol.Connected { return c.info }

// Join joins a room and returns where the room's stream stands now. Messages
// published to the room from then on reach the handlers; register them
// (OnMessage) before joining so none is missed.
func (c *Client) Join(ctx context.Context, room string) (protocol.Position, error) {
	r, err := c.request(ctx, &protocol.Command{Op: protocol.OpJoin, Room: room})
	if err != nil {
		return protocol.Position{}, err
	}
	return position(r), nil
}

// Leave leaves a room. A room that was not joined fails with
// protocol.CodeNotJoined.
func (c *Client) Leave(ctx context.Context, room string) error {
	_, err := c.request(ctx, &protocol.Command{Op: protocol.OpLeave, Room: room})
	return err
}

// Publish sends data, which must be one JSON value, to a room, and returns
// where it was stored (zero for a Transient publish). A publish that fails
// with protocol.CodePublishFailed may have been delivered: retry it with the
// same WithIdempotencyKey.
func (c *Client) Publish(ctx context.Context, room string, data []byte, opts ...PublishOption) (protocol.Position, error) {
	var o publishOptions
	for _, opt := range opts {
		opt(&o)
	}
	r, err := c.request(ctx, &protocol.Command{
		Op:             protocol.OpPublish,
		Room:           room,
		Event:          o.event,
		Data:           data,
		Transient:      o.transient,
		IdempotencyKey: o.idempotencyKey,
	})
	if err != nil {
		return protocol.Position{}, err
	}
	return position(r), nil
}

func position(r *protocol.Reply) protocol.Position {
	if r.Position == nil {
		return protocol.Position{}
	}
	return *r.Position
}

// request sends one command and waits for its reply. Cancelling ctx abandons
// the wait only: the connection stays usable and a late reply is dropped.
func (c *Client) request(ctx context.Context, cmd *protocol.Command) (*protocol.Reply, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("roomcast: %s: %w", cmd.Op, err)
	}
	cmd.ID = c.nextID.Add(1)
	frame, err := c.codec.AppendCommand(nil, cmd)
	if err != nil {
		return nil, fmt.Errorf("roomcast: %s: %w", cmd.Op, err)
	}
	ch := make(chan *protocol.Reply, 1)
	c.pendingMu.Lock()
	if c.ended {
		c.pendingMu.Unlock()
		return nil, c.Err()
	}
	c.pending[cmd.ID] = ch
	c.pendingMu.Unlock()
	defer func() {
		c.pendingMu.Lock()
		delete(c.pending, cmd.ID)
		c.pendingMu.Unlock()
	}()

	if err := c.writeFrame(ws.OpText, frame); err != nil {
		return nil, err
	}
	var r *protocol.Reply
	select {
	case r = <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("roomcast: %s: %w", cmd.Op, ctx.Err())
	case <-c.readerDone:
		select {
		case r = <-ch: // the reply arrived just before the end
		default:
			return nil, c.Err()
		}
	}
	if r.Error != nil {
		return nil, &ReplyError{Code: r.Error.Code, Message: r.Error.Message}
	}
	return r, nil
}

// OnMessage sets the handler for messages of one room, replacing any
// previous one; nil removes it. Handlers run one at a time on the client's
// delivery goroutine, in the order messages arrived; they may call the
// Client's methods (Publish, Close, …).
func (c *Client) OnMessage(room string, h func(protocol.Message)) {
	c.handlersMu.Lock()
	defer c.handlersMu.Unlock()
	if h == nil {
		delete(c.roomHandlers, room)
		return
	}
	c.roomHandlers[room] = h
}

// OnAnyMessage sets a handler that receives every message, after the room's
// own handler if there is one; nil removes it. It runs on the same delivery
// goroutine as OnMessage handlers.
func (c *Client) OnAnyMessage(h func(protocol.Message)) {
	c.handlersMu.Lock()
	defer c.handlersMu.Unlock()
	c.anyHandler = h
}

// Close closes the connection with close code 1000 (normal), waits briefly
// for the server's acknowledgement and returns. Requests in flight and later
// fail with ErrClosed, and messages still buffered are not handed to the
// handlers. It is idempotent, safe to call from a handler, and returns nil:
// why the connection ended is in Err.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		c.setErr(ErrClosed)
		if err := c.writeClose(ws.StatusNormalClosure, ""); err == nil {
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
	return nil
}

// Done is closed when the connection has ended and the handlers have
// finished with the messages they were going to get.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is nil while the connection is open. Once it has ended it is the
// reason: ErrClosed after Close, a *CloseError with the server's close code
// and reason, ErrMessageBufferFull, ErrHeartbeatTimeout, or a transport
// error.
func (c *Client) Err() error {
	select {
	case <-c.readerDone:
	default:
		return nil
	}
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// setErr records why the connection ends; the first reason wins.
func (c *Client) setErr(err error) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// deliver runs the handlers, one message at a time, in arrival order.
func (c *Client) deliver() {
	defer close(c.done)
	c.notify(StateChange{State: StateConnected})
	for m := range c.events {
		if c.closing.Load() {
			continue // Close was called: drain without delivering
		}
		c.handlersMu.RLock()
		h, all := c.roomHandlers[m.Room], c.anyHandler
		c.handlersMu.RUnlock()
		if h != nil {
			h(*m)
		}
		if all != nil {
			all(*m)
		}
	}
	c.notify(StateChange{State: StateClosed, Err: c.Err()})
}

func (c *Client) notify(sc StateChange) {
	if c.cfg.OnStateChange != nil {
		c.cfg.OnStateChange(sc)
	}
}
