// Package conn runs one client WebSocket connection after a successful
// upgrade: it reads and validates commands, enforces capabilities and
// limits, talks to the hub, and owns the connection's outbound queue.
package conn

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"golang.org/x/time/rate"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/envelope"
	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/presence"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/session"
	"github.com/roomcast/roomcast/services/gateway/config"
	"github.com/roomcast/roomcast/services/gateway/internal/hub"
	"github.com/roomcast/roomcast/services/gateway/internal/metrics"
	"github.com/roomcast/roomcast/services/gateway/internal/wsframe"
)

// Deps are what every connection of a node shares.
type Deps struct {
	Config   *config.Config
	Hub      *hub.Hub
	Sessions *session.Store
	// Verifier checks the tokens of in-band refreshes.
	Verifier *token.Verifier
	Log      *slog.Logger
	Metrics  *metrics.Gateway
	// Events enqueues tasks for the worker services (presence changes).
	Events *events.Emitter
	// Presence reads presence sets (presence.get, presence.count).
	Presence *presence.Store
	History  HistoryReader // nil: the history op answers unavailable
	// Live pushes live room metrics (nil: metrics.subscribe answers
	// unavailable).
	Live LiveMetrics
	// Limits is what the connected frame announces.
	Limits protocol.Limits
}

// Conn is one client connection.
type Conn struct {
	ID     string
	d      *Deps
	nc     net.Conn
	src    io.Reader
	codec  protocol.Codec
	claims *token.Claims // owned by the read loop (refresh replaces it)
	// current is claims for other goroutines (revocation checks).
	current atomic.Pointer[token.Claims]
	log     *slog.Logger

	sessionMu   sync.Mutex
	sessionID   string // "" when Redis could not create one
	peerClosed  bool   // the client closed with 1000: its session ends with it
	limiter     *rate.Limiter
	limitedRun  int          // consecutive rate-limited operations
	rooms       roomSet      // hub rooms (presence channels included); owned by the read loop
	lastSeen    atomic.Int64 // unix nanoseconds of the last frame read
	expiryAt    int64        // unix nanoseconds; guarded by expiries.mu
	expiryIndex int          // in expiries.h, -1 when not there; guarded by expiries.mu

	mu        sync.Mutex // guards the outbox fields below
	queue     *[][]byte  // nil while nothing waits (outbox.go)
	queued    int
	writing   bool
	closing   bool
	closeCode protocol.CloseCode

	pubs window // publishes awaiting their answer, at most GATEWAY_MAX_INFLIGHT_PUBLISHES

	presenceMu sync.Mutex
	pres       presenceState

	liveMu   sync.Mutex
	liveSubs map[string]func() // room → cancel of its live metrics subscription

	pre  *bytes.Reader // bytes read past the handshake, until consumed
	caps *capsBox      // keeps claims.Caps shared (caps.go)
	poll *pollConn     // nil: the connection has a reading goroutine
	done func()        // runs when the connection has ended
}

// New wraps an upgraded connection. buffered holds bytes the HTTP server
// read past the handshake, if any; sessionID is the connection's session
// ("" if none could be created).
func New(d *Deps, id string, nc net.Conn, buffered []byte, codec protocol.Codec, claims *token.Claims, sessionID string) *Conn {
	claims, caps := keepClaims(claims)
	src := io.Reader(nc)
	var pre *bytes.Reader
	if len(buffered) > 0 {
		pre = bytes.NewReader(buffered)
		src = io.MultiReader(pre, nc)
	}
	c := &Conn{
		ID:      id,
		d:       d,
		nc:      nc,
		src:     src,
		codec:   codec,
		claims:  claims,
		limiter: rate.NewLimiter(rate.Limit(d.Config.Rate), d.Config.Burst),
	}
	c.pre = pre
	c.caps = caps
	c.expiryIndex = -1
	c.sessionID = sessionID
	c.current.Store(claims)
	c.log = newConnLogger(c)
	c.lastSeen.Store(time.Now().UnixNano())
	return c
}

// Codec implements hub.Member.
func (c *Conn) Codec() protocol.Codec { return c.codec }

// SessionID is the session the connection belongs to now ("" if none).
func (c *Conn) SessionID() string {
	c.sessionMu.Lock()
	defer c.sessionMu.Unlock()
	return c.sessionID
}

// LastSeen is when the last frame arrived from the client.
func (c *Conn) LastSeen() time.Time { return time.Unix(0, c.lastSeen.Load()) }

// Ping queues a heartbeat ping.
func (c *Conn) Ping() { c.enqueue(wsframe.Ping, false) }

// Start sends the connected frame and serves the connection until it
// ends; then the connection leaves every room and done runs. Start does
// not wait for that: an idle connection is left to the poller (poll.go)
// and holds no goroutine, and where polling is not available a goroutine
// runs the read loop.
func (c *Conn) Start(connected *protocol.Connected, done func()) {
	c.done = done
	polled := c.setupPolling() // before anything uses c.nc
	c.armExpiry()
	f, err := wsframe.Encode(c.codec, &protocol.ServerFrame{Connected: connected})
	if err != nil {
		c.log.Error("encode connected frame", "err", err)
		if polled {
			c.poll.stop()
		}
		c.finish()
		return
	}
	c.enqueue(f, false)
	c.emitConnection(events.TypeConnectionOpened)
	if polled {
		c.poll.start()
		return
	}
	go func() {
		c.readLoop()
		c.finish()
	}()
}

// finish ends the connection once its read side is done.
func (c *Conn) finish() {
	c.cleanup()
	if c.done != nil {
		c.done()
	}
}

func (c *Conn) cleanup() {
	expiries.set(c, 0)
	c.dropPresence()
	c.stopLiveMetrics()
	for room := range c.rooms.all() {
		c.d.Hub.Leave(c.claims.App, room, c)
		c.emitMembership(events.TypeRoomLeft, room)
	}
	c.rooms = roomSet{}
	if id := c.SessionID(); id != "" && c.peerClosed {
		// A deliberate close ends the session: nothing to resume.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := c.d.Sessions.Delete(ctx, id); err != nil {
			c.log.Warn("session delete failed", "err", err)
		}
		cancel()
	}
	// Let in-flight publishes reply (their replies are dropped once the
	// socket is closed) so drain can account for them.
	c.pubs.drain()
	c.waitClosed()
	_ = c.nc.Close()
	c.emitConnection(events.TypeConnectionClosed)
}

var errStop = errors.New("conn: stop reading")

// readLoop serves a connection that is not polled (see poll.go) on its own
// goroutine, reading the socket directly.
func (c *Conn) readLoop() {
	st := &readState{buf: make([]byte, 0, 512)}
	st.reset(c, c.src)
	for c.next(st) {
	}
}

// next reads one message (or control frame) through st and handles it. It
// returns false when the read side is done; the caller then ends the
// connection. Between calls no message is half read, so st can be given
// to another connection.
func (c *Conn) next(st *readState) bool {
	rd := &st.rd
	hdr, err := rd.NextFrame()
	if err != nil {
		c.readFailed(err)
		return false
	}
	c.lastSeen.Store(time.Now().UnixNano())
	if hdr.OpCode.IsControl() {
		return c.control(hdr, rd) == nil
	}
	if (hdr.OpCode == ws.OpBinary) != c.codec.Binary() {
		c.Close(protocol.CloseUnsupportedData, "frame type does not match the negotiated subprotocol")
		c.linger()
		return false
	}
	st.buf, err = readMessage(rd, st.buf[:0])
	if err != nil {
		c.readFailed(err)
		return false
	}
	if err := c.handle(st.buf); err != nil {
		c.linger()
		return false
	}
	if cap(st.buf) > 64<<10 {
		st.buf = make([]byte, 0, 512) // do not pin a large buffer
	}
	return true
}

// readMessage reads the rest of the current message (all fragments).
func readMessage(rd *wsutil.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// readFailed maps a read error to the documented close code.
func (c *Conn) readFailed(err error) {
	var perr ws.ProtocolError
	switch {
	case errors.Is(err, wsutil.ErrInvalidUTF8):
		c.Close(protocol.CloseInvalidPayload, "text frame is not valid UTF-8")
	case errors.Is(err, wsutil.ErrFrameTooLarge), errors.Is(err, wsutil.ErrMessageTooLarge):
		c.Close(protocol.CloseMessageTooBig, "message over the frame size limit")
	case errors.As(err, &perr):
		c.Close(protocol.CloseProtocolError, string(perr))
	default:
		// EOF, reset, deadline: the peer is gone or the close grace ended.
		return
	}
	c.linger()
}

// waitClosed lets the close frame go out before the socket is closed.
func (c *Conn) waitClosed() {
	deadline := time.Now().Add(closeGrace)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		idle := !c.writing
		c.mu.Unlock()
		if idle {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// linger runs after the server closed the connection for bad input: once
// the close frame is on the wire, it discards whatever the peer still sends
// until the peer closes or the grace passes. Closing a socket with unread
// input would reset it, and the peer could lose our close frame.
func (c *Conn) linger() {
	c.waitClosed()
	_ = c.nc.SetReadDeadline(time.Now().Add(closeGrace))
	_, _ = io.Copy(io.Discard, c.nc)
}

// control handles ping, pong and close frames.
func (c *Conn) control(h ws.Header, r io.Reader) error {
	var payload [125]byte
	n, err := io.ReadFull(r, payload[:h.Length])
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	switch h.OpCode {
	case ws.OpPing:
		c.enqueue(wsframe.Pong(payload[:n]), false)
	case ws.OpClose:
		code, _ := ws.ParseCloseFrameData(payload[:n])
		if code == 0 {
			code = ws.StatusNormalClosure
		}
		c.peerClosed = code == ws.StatusNormalClosure
		c.mu.Lock()
		answered := c.closing
		c.mu.Unlock()
		if !answered {
			// Echo the peer's close as the RFC asks, then stop.
			c.enqueue(wsframe.Close(protocol.CloseNormal, ""), true)
			c.waitClosed()
		}
		return errStop
	}
	return nil
}

// handle processes one command frame. A non-nil error ends the read loop.
func (c *Conn) handle(frame []byte) error {
	c.d.Metrics.FrameBytes.Add(float64(len(frame)))
	cmd, err := c.codec.DecodeCommand(frame)
	if err != nil {
		var perr *protocol.Error
		if !errors.As(err, &perr) {
			perr = protocol.NewError(protocol.CodeBadRequest, err.Error())
		}
		if perr.ID != 0 {
			c.replyError(perr.ID, perr)
		} else {
			c.d.Metrics.Errors.WithLabelValues(string(perr.Code)).Inc()
			c.sendFrame(&protocol.ServerFrame{Error: perr})
		}
		return c.limit() // malformed frames count against the rate limit too
	}
	c.d.Metrics.CommandsIn.WithLabelValues(string(cmd.Op)).Inc()
	if !c.limiter.Allow() {
		c.d.Metrics.RateLimited.Inc()
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeRateLimited, "too many operations; slow down"))
		c.limitedRun++
		if c.limitedRun >= c.d.Config.RateLimitCloseAfter {
			c.Close(protocol.CloseRateLimited, "rate limit exceeded repeatedly")
			return errStop
		}
		return nil
	}
	c.limitedRun = 0
	switch cmd.Op {
	case protocol.OpJoin:
		c.join(&cmd)
	case protocol.OpLeave:
		c.leave(&cmd)
	case protocol.OpPublish:
		c.publish(&cmd)
	case protocol.OpResume:
		c.resume(&cmd)
	case protocol.OpRefresh:
		c.refresh(&cmd)
	case protocol.OpPresenceEnter:
		c.presenceEnter(&cmd)
	case protocol.OpPresenceUpdate:
		c.presenceUpdate(&cmd)
	case protocol.OpPresenceLeave:
		c.presenceLeave(&cmd)
	case protocol.OpPresenceGet:
		c.presenceGet(&cmd)
	case protocol.OpPresenceCount:
		c.presenceCount(&cmd)
	case protocol.OpPresenceSubscribe:
		c.presenceSubscribe(&cmd)
	case protocol.OpPresenceUnsubscribe:
		c.presenceUnsubscribe(&cmd)
	case protocol.OpHistory:
		c.history(&cmd)
	case protocol.OpMetricsSubscribe, protocol.OpMetricsUnsubscribe:
		c.liveMetrics(&cmd)
	}
	return nil
}

// limit charges an invalid frame to the rate limiter.
func (c *Conn) limit() error {
	if c.limiter.Allow() {
		c.limitedRun = 0
		return nil
	}
	c.limitedRun++
	if c.limitedRun >= c.d.Config.RateLimitCloseAfter {
		c.Close(protocol.CloseRateLimited, "too many invalid frames")
		return errStop
	}
	return nil
}

func (c *Conn) checkRoom(cmd *protocol.Command, op token.Op) *protocol.Error {
	if perr := protocol.ValidateRoom(cmd.Room, c.d.Config.MaxRoomNameBytes); perr != nil {
		return perr
	}
	if !c.claims.Caps.Allows(cmd.Room, op) {
		return protocol.Errorf(protocol.CodeForbidden, "token does not allow %s on this room", op)
	}
	return nil
}

func (c *Conn) join(cmd *protocol.Command) {
	if perr := c.checkRoom(cmd, token.OpJoin); perr != nil {
		c.replyError(cmd.ID, perr)
		return
	}
	if c.joinHub(cmd, cmd.Room) {
		c.d.Metrics.Joins.Inc()
		c.recordRoom(cmd.Room, true)
		c.emitMembership(events.TypeRoomJoined, cmd.Room)
	}
}

// joinHub adds the connection to a hub room (a client room, or a presence
// channel) and reports whether it was not a member before.
func (c *Conn) joinHub(cmd *protocol.Command, name string) bool {
	if c.rooms.has(name) {
		// Already a member: the reply carries the current position.
		ctx, cancel := context.WithTimeout(context.Background(), c.d.Config.PublishTimeout)
		defer cancel()
		pos, err := c.d.Hub.Position(ctx, c.claims.App, name)
		if err != nil {
			c.replyError(cmd.ID, protocol.NewError(protocol.CodeUnavailable, "room state unavailable; retry"))
			return false
		}
		c.Reply(&protocol.Reply{ID: cmd.ID, Room: cmd.Room, Position: &pos})
		return false
	}
	if c.rooms.len() >= c.d.Config.MaxRooms {
		c.replyError(cmd.ID, protocol.Errorf(protocol.CodeTooManyRooms, "a connection may join at most %d rooms (presence subscriptions included)", c.d.Config.MaxRooms))
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.d.Config.PublishTimeout)
	defer cancel()
	if err := c.d.Hub.Join(ctx, c.claims.App, name, c, cmd.ID, cmd.Since); err != nil {
		c.log.Warn("join failed", "room", cmd.Room, "err", err)
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeUnavailable, "cannot join now; retry"))
		return false
	}
	// The hub's worker sends the reply, ahead of the room's messages.
	c.rooms.add(name)
	return true
}

// recordRoom keeps the session's room list, which a resume returns. A
// failure costs only that list's accuracy, never the join or leave.
func (c *Conn) recordRoom(room string, joined bool) {
	id := c.SessionID()
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var err error
	if joined {
		err = c.d.Sessions.AddRoom(ctx, id, room)
	} else {
		err = c.d.Sessions.RemoveRoom(ctx, id, room)
	}
	if err != nil {
		c.log.Warn("session room update failed", "room", room, "err", err)
	}
}

// resume makes this connection continue an earlier session of the same
// client: the identity and room list carry over and the resume token
// rotates. The client then re-joins its rooms with since to recover their
// messages.
func (c *Conn) resume(cmd *protocol.Command) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rooms, tok, err := c.d.Sessions.Resume(ctx, cmd.SessionID, cmd.ResumeToken, c.claims.App, c.claims.ClientID())
	switch {
	case errors.Is(err, session.ErrInvalid):
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeSessionInvalid, "no session to resume with these credentials in the recovery window"))
		return
	case err != nil:
		c.log.Warn("session resume failed", "err", err)
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeUnavailable, "sessions unavailable; continue with the new session"))
		return
	}
	// Members entered under the fresh session leave: the connection's
	// identity is the resumed session from now on.
	c.presenceMu.Lock()
	for room := range c.pres.rooms {
		c.emitChange(events.TypePresenceLeave, room, nil)
	}
	clear(c.pres.rooms)
	c.sessionMu.Lock()
	fresh := c.sessionID
	c.sessionID = cmd.SessionID
	c.sessionMu.Unlock()
	c.presenceMu.Unlock()
	if fresh != "" && fresh != cmd.SessionID {
		if err := c.d.Sessions.Delete(ctx, fresh); err != nil {
			c.log.Warn("session delete failed", "err", err)
		}
	}
	for room := range c.rooms.all() {
		if _, presence := protocol.ChannelRoom(room); !presence {
			c.recordRoom(room, true)
		}
	}
	c.takeOverPresence(ctx)
	c.Reply(&protocol.Reply{ID: cmd.ID, SessionID: cmd.SessionID, ResumeToken: tok, Rooms: rooms})
}

func (c *Conn) leave(cmd *protocol.Command) {
	if perr := protocol.ValidateRoom(cmd.Room, c.d.Config.MaxRoomNameBytes); perr != nil {
		c.replyError(cmd.ID, perr)
		return
	}
	if !c.rooms.has(cmd.Room) {
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeNotJoined, "not a member of this room"))
		return
	}
	c.rooms.remove(cmd.Room)
	c.d.Hub.Leave(c.claims.App, cmd.Room, c)
	c.leavePresence(cmd.Room) // a member that left the room is not present in it
	c.recordRoom(cmd.Room, false)
	c.emitMembership(events.TypeRoomLeft, cmd.Room)
	c.Reply(&protocol.Reply{ID: cmd.ID, Room: cmd.Room})
}

func (c *Conn) publish(cmd *protocol.Command) {
	if perr := c.checkRoom(cmd, token.OpPublish); perr != nil {
		c.replyError(cmd.ID, perr)
		return
	}
	cfg := c.d.Config
	switch {
	case len(cmd.Data) > cfg.MaxMessageBytes:
		c.replyError(cmd.ID, protocol.Errorf(protocol.CodeMessageTooLarge, "data is %d bytes; the limit is %d", len(cmd.Data), cfg.MaxMessageBytes))
		return
	case len(cmd.Event) > cfg.MaxEventBytes:
		c.replyError(cmd.ID, protocol.Errorf(protocol.CodeBadRequest, "event name is longer than %d bytes", cfg.MaxEventBytes))
		return
	case len(cmd.IdempotencyKey) > cfg.MaxEventBytes:
		c.replyError(cmd.ID, protocol.Errorf(protocol.CodeBadRequest, "idempotency key is longer than %d bytes", cfg.MaxEventBytes))
		return
	case cmd.Transient && cmd.IdempotencyKey != "":
		c.replyError(cmd.ID, protocol.NewError(protocol.CodeBadRequest, "transient messages cannot carry an idempotency key"))
		return
	}
	start := time.Now()
	env := envelope.Envelope{
		App:       c.claims.App,
		Room:      cmd.Room,
		Event:     cmd.Event,
		From:      c.claims.ClientID(),
		Timestamp: start.UnixMilli(),
		Transient: cmd.Transient,
		Binary:    cmd.Binary,
		Data:      cmd.Data,
	}
	if !c.pubs.acquire(cfg.MaxInflightPublishes, cfg.PublishTimeout) {
		// Nothing was answered for a whole publish timeout: Redis or
		// RabbitMQ is not keeping up.
		c.replyError(cmd.ID, protocol.Errorf(protocol.CodeUnavailable, "%d publishes are still awaiting confirmation; retry later", cfg.MaxInflightPublishes))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.PublishTimeout)
	id, room := cmd.ID, cmd.Room
	// Publish queues the append here, in the read loop, so the order of a
	// connection's publishes is the order of their offsets; the read loop
	// goes on while Redis and RabbitMQ answer.
	c.d.Hub.Publish(ctx, env, cmd.IdempotencyKey, func(p *hub.Published, err error) {
		defer c.pubs.release()
		defer cancel()
		switch {
		case p == nil:
			c.log.Warn("publish append failed", "room", room, "err", err)
			c.replyError(id, protocol.NewError(protocol.CodeUnavailable, "room log unavailable; retry with the same idempotency key"))
		case err != nil:
			c.log.Warn("publish not confirmed", "room", room, "err", err)
			c.replyError(id, protocol.NewError(protocol.CodePublishFailed, "broker did not confirm; the message may still be delivered — retry with the same idempotency key"))
		default:
			c.d.Metrics.PublishLatency.Observe(time.Since(start).Seconds())
			c.Reply(&protocol.Reply{ID: id, Room: room, Position: p.Position})
		}
	})
}

// Reply implements hub.Member.
func (c *Conn) Reply(r *protocol.Reply) {
	if r.Error != nil {
		c.d.Metrics.Errors.WithLabelValues(string(r.Error.Code)).Inc()
	}
	c.sendFrame(&protocol.ServerFrame{Reply: r})
}

func (c *Conn) replyError(id uint64, perr *protocol.Error) {
	c.Reply(&protocol.Reply{ID: id, Error: perr})
}

func (c *Conn) sendFrame(f *protocol.ServerFrame) {
	b, err := wsframe.Encode(c.codec, f)
	if err != nil {
		c.log.Error("encode frame", "err", err)
		return
	}
	c.enqueue(b, false)
}
