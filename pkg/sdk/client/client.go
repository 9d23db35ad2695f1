// Package client is the Go client SDK for Roomcast: it connects to a gateway
// over WebSocket, joins rooms, publishes, and hands received room messages
// to handlers — and keeps doing so across network failures and node
// restarts.
//
// A Client reconnects by itself (exponential backoff with full jitter, or at
// once when a node drains), resumes its session on whichever node it
// reaches, and re-joins its rooms asking for every message after the last
// one it delivered, so handlers see each room's messages once, in order,
// with no gap — or are told, per room, that recovery was not possible
// (StateResumed with Recovered false). Close codes that say retrying cannot
// help (an invalid token, a revoked key) end the Client; Err says why.
//
//	c, err := client.Dial(ctx, client.Config{URL: "ws://127.0.0.1:8080/v1/connect", Token: jwt})
//	if err != nil { ... }
//	defer c.Close()
//	c.OnMessage("lobby", func(m protocol.Message) { fmt.Printf("%s\n", m.Data) })
//	if _, err := c.Join(ctx, "lobby"); err != nil { ... }
//	pos, err := c.Publish(ctx, "lobby", []byte(`{"text":"hi"}`), client.WithEvent("chat"))
//
// Payloads are JSON text, or opaque bytes with the Binary publish option
// (Message.Binary on receipt). Config.Codec = protocol.Msgpack carries them
// as raw bytes in binary frames; the default JSON codec as base64.
//
// All methods are safe for concurrent use.
package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// Client is a connection to Roomcast that survives reconnects.
type Client struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	cur       *wire         // nil while reconnecting
	connected chan struct{} // closed while cur != nil
	rooms     map[string]*roomState
	sessionID string
	resumeTok string
	closed    bool
	finalErr  error

	handlersMu       sync.RWMutex
	roomHandlers     map[string]func(protocol.Message)
	anyHandler       func(protocol.Message)
	presenceHandlers map[string]func(protocol.PresenceEvent)
	metricsHandlers  map[string]func(protocol.RoomMetrics)

	// entered is the presence data of each room this Client entered (guarded
	// by mu); a reconnect enters again.
	entered map[string][]byte
	// watched is the live metrics interval (ms) of each watched room
	// (guarded by mu); a reconnect watches again.
	watched map[string]int

	events chan event
	queued atomic.Int64 // messages in events; state changes do not count
	// caughtUp, while a reconnect waits for the handlers (see
	// awaitHandlers), is closed by deliver once queued is down to half
	// the buffer.
	caughtUp atomic.Pointer[chan struct{}]
	stop     chan struct{} // closed by Close
	done     chan struct{} // handlers drained after the end
	once     sync.Once
}

// stateHeadroom is the room in the event queue for state changes.
const stateHeadroom = 16

// roomState is what the client knows of one joined room.
type roomState struct {
	pos protocol.Position // last message accepted (or the join position)
	// epochChange is an epoch change a re-join found, reported with the
	// room's first message of the new epoch.
	epochChange *EpochChange
}

// event is a message, a presence event or a state change, delivered in
// order. A presence event has msg set too: its place in the room's presence
// channel.
type event struct {
	msg      *protocol.Message
	presence *protocol.PresenceEvent
	metrics  *protocol.RoomMetrics
	epoch    *EpochChange // reported just before msg
	state    *StateChange
}

// Dial connects to the gateway and returns once the server has accepted the
// connection. The first connection is not retried, whatever the error: an
// error here is about the URL, the token or the network, and is returned as
// it is (a *CloseError for a refused token, a *HandshakeError for an HTTP
// refusal, a network error), so a misconfigured client fails fast instead
// of looping. After that, the Client reconnects by itself until Close, a
// terminal close code or Config.MaxReconnectAttempts.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg, _, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:              cfg,
		log:              cfg.Logger,
		connected:        make(chan struct{}),
		rooms:            make(map[string]*roomState),
		roomHandlers:     make(map[string]func(protocol.Message)),
		presenceHandlers: make(map[string]func(protocol.PresenceEvent)),
		metricsHandlers:  make(map[string]func(protocol.RoomMetrics)),
		watched:          make(map[string]int),
		entered:          make(map[string][]byte),
		// Room for state changes beyond the message buffer: they never
		// take a message's place.
		events: make(chan event, cfg.MessageBuffer+stateHeadroom),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go c.deliver()
	c.events <- event{state: &StateChange{State: StateConnecting}}
	w, err := c.dial(ctx)
	if err != nil {
		c.mu.Lock()
		c.markClosedLocked(err)
		c.mu.Unlock()
		close(c.events)
		<-c.done // no goroutine outlives a failed Dial
		return nil, err
	}
	c.mu.Lock()
	c.sessionID, c.resumeTok = w.info.SessionID, w.info.ResumeToken
	c.cur = w
	close(c.connected)
	c.mu.Unlock()
	c.events <- event{state: &StateChange{State: StateConnected}}
	go c.run(w)
	return c, nil
}

func (c *Client) dial(ctx context.Context) (*wire, error) {
	cfg := c.cfg
	tok, err := cfg.token(ctx)
	if err != nil {
		return nil, err
	}
	cfg.Token, cfg.TokenProvider = tok, nil
	w, err := dialWire(ctx, cfg, c.accept, c.acceptMetrics)
	if err != nil {
		return nil, err
	}
	w.connectedAt = time.Now()
	if c.cfg.TokenProvider != nil {
		w.tokenExp = tokenExpiry(tok)
	}
	return w, nil
}

// tokenExpiry reads a JWT's exp claim without verifying it (the server
// does that); zero if there is none.
func tokenExpiry(tok string) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp <= 0 {
		return time.Time{}
	}
	return time.Unix(int64(claims.Exp), 0)
}

// refreshAt is when to replace w because its token is about to expire:
// a tenth of the token's life before exp, at least 2 s and at most half of
// it. ok is false when the token cannot be refreshed (no provider, no exp).
func refreshAt(w *wire) (time.Time, bool) {
	if w.tokenExp.IsZero() {
		return time.Time{}, false
	}
	life := w.tokenExp.Sub(w.connectedAt)
	margin := min(max(life/10, 2*time.Second), life/2)
	return w.tokenExp.Add(-margin), true
}

// accept runs on the current connection's reader for every message: it
// drops what was already delivered (replays overlap live traffic after a
// resume) and messages of rooms the Client does not follow (any more), and
// queues the rest for the handlers, with the room's epoch change if it has
// one — or, with Config.InlineHandlers, hands it to them at once. False
// means the buffer is full; the message is then not counted as delivered,
// so the resume that follows asks for it again.
func (c *Client) accept(m *protocol.Message, p *protocol.PresenceEvent) bool {
	c.mu.Lock()
	st := c.rooms[m.Room]
	if st == nil {
		c.mu.Unlock()
		return true // left (or never joined): Leave stops delivery at once
	}
	var change *EpochChange
	if !m.Transient {
		switch {
		case st.pos.Epoch == m.Epoch && m.Offset <= st.pos.Offset:
			c.mu.Unlock()
			return true // duplicate
		case st.pos.Epoch != "" && st.pos.Epoch != m.Epoch:
			change = &EpochChange{Room: m.Room, Old: st.pos, New: protocol.Position{Offset: m.Offset, Epoch: m.Epoch}}
		case st.epochChange != nil:
			change = st.epochChange
		}
	}
	ev := event{msg: m, presence: p, epoch: change}
	if !c.cfg.InlineHandlers && !c.enqueue(ev) {
		c.mu.Unlock()
		return false
	}
	if !m.Transient {
		st.pos = protocol.Position{Offset: m.Offset, Epoch: m.Epoch}
		st.epochChange = nil
	}
	c.mu.Unlock()
	if c.cfg.InlineHandlers && !c.stopped() {
		// Outside mu: a handler may call the Client (not wait on it).
		c.dispatch(ev)
	}
	return true
}

// enqueue queues a received event for the delivery goroutine; false when
// the buffer is full.
func (c *Client) enqueue(ev event) bool {
	if c.queued.Load() >= int64(c.cfg.MessageBuffer) {
		return false
	}
	c.queued.Add(1) // before the send: deliver decrements after receiving
	select {
	case c.events <- ev:
		return true
	default: // state changes piled up behind a stuck handler
		c.queued.Add(-1)
		return false
	}
}

// stopped reports whether Close was called: received events are then
// dropped instead of handled.
func (c *Client) stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// current waits until a connection is up (or ctx ends, or the Client is
// closed) and returns it.
func (c *Client) current(ctx context.Context) (*wire, error) {
	for {
		c.mu.Lock()
		if c.closed {
			err := c.finalErr
			c.mu.Unlock()
			return nil, err
		}
		w, ch := c.cur, c.connected
		c.mu.Unlock()
		if w != nil {
			select {
			case <-w.readerDone:
				// Ended but not replaced yet (the reconnect loop may be busy
				// making a token-refresh replacement): look again shortly
				// rather than spin on a dead connection.
				t := time.NewTimer(10 * time.Millisecond)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return nil, ctx.Err()
				}
				continue
			default:
				return w, nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// do sends cmd on the current connection, waiting for one while
// disconnected (bounded by ctx). A command the connection's end cut off
// before it was written is sent on the next connection. One cut off after
// it was written (in flight) fails with ErrDisconnected, unless retry is
// set: then it is sent again on the next connection, until ctx ends.
// prepare, if set, runs before each send, once a connection is there. sent
// reports whether the server may have seen the command.
func (c *Client) do(ctx context.Context, cmd *protocol.Command, retry bool, prepare func(), hook func(*protocol.Reply)) (r *protocol.Reply, sent bool, err error) {
	for {
		w, err := c.current(ctx)
		if err != nil {
			return nil, sent, fmt.Errorf("roomcast: %s: %w", cmd.Op, err)
		}
		if prepare != nil {
			prepare()
		}
		r, err := w.request(ctx, cmd, hook)
		sent = sent || wasSent(err)
		if err == nil || !errors.Is(err, ErrDisconnected) {
			return r, sent, err
		}
		if wasSent(err) && !retry {
			return nil, sent, err
		}
		c.log.Debug("roomcast: sending again after reconnect", "op", cmd.Op)
	}
}

// Info is what the server announced when the current connection was made
// (connection id, node, heartbeat, limits), with the session id this Client
// holds now. Never log its ResumeToken.
func (c *Client) Info() protocol.Connected {
	c.mu.Lock()
	defer c.mu.Unlock()
	var info protocol.Connected
	if c.cur != nil {
		info = c.cur.info
	}
	info.SessionID, info.ResumeToken = c.sessionID, c.resumeTok
	return info
}

// Join joins a room and returns where the room's stream stood. From then
// on, the room's messages reach the handlers — across reconnects too,
// until Leave. Register handlers (OnMessage) before joining so none is
// missed. While disconnected, Join waits for the connection (bounded by
// ctx).
//
// Room membership is the Client's: once the join is sent the room belongs
// to it, even when the reply is lost. If the connection drops before the
// reply, Join fails with ErrDisconnected (wrapping why) yet the room stays
// joined: the reconnect joins it like the Client's other rooms and its
// messages reach the handlers. Call Join again for its position, or Leave.
// The same holds when ctx ends while the join is in flight. An error reply
// (*ReplyError), or a ctx that ends before the join was sent, leaves the
// room as it was.
func (c *Client) Join(ctx context.Context, room string) (protocol.Position, error) {
	var added *roomState
	prepare := func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.rooms[room]; !ok {
			added = &roomState{}
			c.rooms[room] = added
		}
	}
	r, sent, err := c.do(ctx, &protocol.Command{Op: protocol.OpJoin, Room: room}, false, prepare, c.joinHook(room, nil))
	if err != nil {
		var re *ReplyError
		if added != nil && (errors.As(err, &re) || !sent) {
			c.mu.Lock()
			if c.rooms[room] == added {
				delete(c.rooms, room)
			}
			c.mu.Unlock()
		}
		return protocol.Position{}, err
	}
	return position(r), nil
}

// joinHook records a join reply's position before the room's next message
// is accepted. With since (a recovering re-join) and a recovered reply the
// position stays at since: the replay follows. A plain join of a room that
// already has a position (Join twice) changes nothing: its messages keep
// flowing, and the server's current position may be ahead of the last one
// delivered.
func (c *Client) joinHook(room string, since *protocol.Position) func(*protocol.Reply) {
	return func(r *protocol.Reply) {
		if r.Error != nil || r.Position == nil {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		st := c.rooms[room]
		if st == nil {
			return
		}
		old := st.pos
		switch {
		case since != nil && r.Recovered, since == nil && old.Epoch != "":
			return
		case old.Epoch == r.Position.Epoch && old.Offset > r.Position.Offset:
			return // messages past the position were accepted already
		}
		st.pos = *r.Position
		if old.Epoch != "" && old.Epoch != r.Position.Epoch {
			st.epochChange = &EpochChange{Room: room, Old: old, New: *r.Position}
		}
	}
}

// Leave leaves a room: its messages stop reaching the handlers at once and
// later reconnects do not re-join it. While disconnected, Leave waits for
// the connection (bounded by ctx) to tell the server. A connection that
// drops before the reply does not fail it: the membership ended with that
// connection.
func (c *Client) Leave(ctx context.Context, room string) error {
	c.mu.Lock()
	_, joined := c.rooms[room]
	delete(c.rooms, room)
	delete(c.entered, room) // the server leaves the room's presence too
	c.mu.Unlock()
	_, _, err := c.do(ctx, &protocol.Command{Op: protocol.OpLeave, Room: room}, false, nil, nil)
	var re *ReplyError
	switch {
	case !joined:
	case errors.As(err, &re) && re.Code == protocol.CodeNotJoined:
		return nil // the connection that had joined it is gone
	case errors.Is(err, ErrDisconnected):
		return nil // ditto, and the room is not re-joined
	}
	return err
}

// Publish sends data, which must be one JSON value (or any bytes with the
// Binary option), to a room, and returns where it was stored (zero for a
// Transient publish).
//
// While disconnected, Publish waits for the connection (bounded by ctx).
// Every non-transient publish carries an idempotency key (a random one
// unless WithIdempotencyKey set it) and is sent again after a reconnect
// until ctx ends: a nil error means it was stored exactly once. An error
// may come after the message was stored (the reply was lost with the
// connection and ctx ended before a retry, or protocol.CodePublishFailed):
// retry with the same WithIdempotencyKey to be sure. Transient publishes
// are not retried: one cut off by a lost connection fails with
// ErrDisconnected.
func (c *Client) Publish(ctx context.Context, room string, data []byte, opts ...PublishOption) (protocol.Position, error) {
	var o publishOptions
	for _, opt := range opts {
		opt(&o)
	}
	if !o.transient && o.idempotencyKey == "" {
		o.idempotencyKey = randomKey()
	}
	r, _, err := c.do(ctx, &protocol.Command{
		Op:             protocol.OpPublish,
		Room:           room,
		Event:          o.event,
		Data:           data,
		Binary:         o.binary && len(data) > 0,
		Transient:      o.transient,
		IdempotencyKey: o.idempotencyKey,
	}, !o.transient, nil, nil)
	if err != nil {
		return protocol.Position{}, err
	}
	return position(r), nil
}

func position(r *protocol.Reply) protocol.Position {
	if r == nil || r.Position == nil {
		return protocol.Position{}
	}
	return *r.Position
}

func randomKey() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
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

// Close ends the Client: the connection is closed with close code 1000
// (which also ends the session on the server), reconnecting stops, and
// requests in flight and later fail with ErrClosed. Messages still buffered
// are not handed to the handlers. It is idempotent, safe to call from a
// handler, and returns nil: why the Client ended is in Err.
func (c *Client) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		w := c.cur
		c.markClosedLocked(ErrClosed)
		c.mu.Unlock()
		close(c.stop)
		if w != nil {
			w.close()
		}
		// Not waiting for the reconnect loop: it may be handing its last
		// event to the delivery goroutine, which may be running the handler
		// that called Close. Done tells when everything has ended.
	})
	return nil
}

// markClosedLocked records the final reason (the first one wins) and wakes
// everything waiting for a connection. c.mu must be held.
func (c *Client) markClosedLocked(err error) {
	if c.closed {
		return
	}
	c.closed, c.finalErr = true, err
	if c.cur == nil {
		close(c.connected) // open while disconnected: wake the waiters
	}
}

// Done is closed when the Client has ended (Close, or a close code that
// forbids reconnecting) and the handlers have finished.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is nil while the Client is alive (connected or reconnecting). Once it
// has ended it is the reason: ErrClosed after Close, a *CloseError with the
// server's close code, or the error that stopped reconnecting.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		return nil
	}
	return c.finalErr
}

// deliver runs the handlers and state callbacks, one at a time, in order.
func (c *Client) deliver() {
	defer close(c.done)
	for ev := range c.events {
		if ev.state != nil {
			if c.cfg.OnStateChange != nil {
				c.cfg.OnStateChange(*ev.state)
			}
			continue
		}
		if n := c.queued.Add(-1); n <= c.lowWater() {
			if p := c.caughtUp.Load(); p != nil && c.caughtUp.CompareAndSwap(p, nil) {
				close(*p)
			}
		}
		if c.stopped() {
			continue // Close was called: drain without delivering
		}
		c.dispatch(ev)
	}
}

// dispatch hands a received event to its handlers: on the delivery
// goroutine, or on the reader with Config.InlineHandlers.
func (c *Client) dispatch(ev event) {
	if ev.epoch != nil && c.cfg.OnEpochChange != nil {
		c.cfg.OnEpochChange(*ev.epoch)
	}
	if m := ev.metrics; m != nil {
		c.handlersMu.RLock()
		h := c.metricsHandlers[m.Room]
		c.handlersMu.RUnlock()
		if h != nil {
			h(*m)
		}
		return
	}
	if p := ev.presence; p != nil {
		c.handlersMu.RLock()
		h := c.presenceHandlers[p.Room]
		c.handlersMu.RUnlock()
		if h != nil {
			h(*p)
		}
		return
	}
	m := *ev.msg
	c.handlersMu.RLock()
	h, all := c.roomHandlers[m.Room], c.anyHandler
	c.handlersMu.RUnlock()
	if h != nil {
		h(m)
	}
	if all != nil {
		all(m)
	}
}

// run watches the current connection and replaces it when it ends, until
// the Client is closed or a reconnect is not allowed.
func (c *Client) run(w *wire) {
	for {
		if next, ok := c.watch(w); ok {
			w = next // replaced before its token expired
			continue
		}
		cause := w.Err()
		c.mu.Lock()
		c.cur = nil
		if !c.closed {
			c.connected = make(chan struct{})
		}
		c.mu.Unlock()
		select {
		case <-c.stop:
			c.end(ErrClosed)
			return
		default:
		}
		next, err := c.reconnect(cause)
		if err != nil {
			c.end(err)
			return
		}
		w = next
	}
}

// watch waits until w ends (ok false) or, when w's token is about to
// expire, replaces it with a connection made with a fresh token from the
// provider (ok true): make before break, so no message waits for a
// reconnect. Both connections deliver for a moment; offsets drop the
// duplicates.
func (c *Client) watch(w *wire) (*wire, bool) {
	at, refresh := refreshAt(w)
	for {
		var timer <-chan time.Time
		var t *time.Timer
		if refresh {
			t = time.NewTimer(time.Until(at))
			timer = t.C
		}
		select {
		case <-w.readerDone:
			if t != nil {
				t.Stop()
			}
			return nil, false
		case <-timer:
		}
		if c.refreshInBand(w) {
			at, refresh = refreshAt(w)
			continue
		}
		next, ch, err := c.attempt()
		if err != nil {
			// Try again shortly; at expiry the server closes with 4002 and
			// the ordinary reconnect takes over.
			c.log.Info("roomcast: token refresh failed; retrying", "err", err)
			at = time.Now().Add(time.Second)
			continue
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			next.close()
			return nil, false
		}
		c.cur = next
		c.mu.Unlock()
		go w.closeWith(ws.StatusGoingAway)
		c.reconcile(next, ch.Rooms)
		c.log.Debug("roomcast: connection replaced before its token expired")
		return next, true
	}
}

// refreshInBand gives w a fresh token from the provider with the refresh
// operation, so the connection simply lives on. False means it could not
// (provider failed, server refused or does not know the operation): the
// caller replaces the connection instead.
func (c *Client) refreshInBand(w *wire) bool {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.DialTimeout)
	defer cancel()
	tok, err := c.cfg.token(ctx)
	if err != nil {
		return false
	}
	if _, err := w.request(ctx, &protocol.Command{Op: protocol.OpRefresh, Token: tok}, nil); err != nil {
		c.log.Info("roomcast: in-band token refresh failed; reconnecting with the new token", "err", err)
		return false
	}
	w.connectedAt, w.tokenExp = time.Now(), tokenExpiry(tok)
	return true
}

// reconcile fixes up rooms joined or left on the old connection while the
// new one was being restored (restored lists what the new one joined).
func (c *Client) reconcile(w *wire, restored []RoomRecovery) {
	have := map[string]bool{}
	for _, r := range restored {
		if r.Err == nil {
			have[r.name()] = true
		}
	}
	c.mu.Lock()
	var join []string
	for name := range c.rooms {
		if !have[name] {
			join = append(join, name)
		}
		delete(have, name)
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.DialTimeout)
	defer cancel()
	for _, name := range join {
		c.mu.Lock()
		var since *protocol.Position
		if st := c.rooms[name]; st != nil && st.pos.Epoch != "" {
			p := st.pos
			since = &p
		}
		c.mu.Unlock()
		if _, err := w.request(ctx, joinCommand(name, since), c.joinHook(name, since)); err != nil {
			c.log.Warn("roomcast: re-join after token refresh failed", "room", name, "err", err)
		}
	}
	for name := range have { // left meanwhile
		_, _ = w.request(ctx, leaveCommand(name), nil)
	}
	c.reenter(ctx, w)
}

// end records the final reason and lets the handlers drain. Only the
// reconnect loop calls it, once.
func (c *Client) end(err error) {
	c.mu.Lock()
	c.markClosedLocked(err)
	err = c.finalErr
	c.mu.Unlock()
	c.events <- event{state: &StateChange{State: StateClosed, Err: err}}
	close(c.events)
}

// reconnect dials until a connection is up and restored, or returns the
// error that ends the Client.
func (c *Client) reconnect(cause error) (*wire, error) {
	retry := c.retryFor(cause)
	for attempt := 1; ; attempt++ {
		if retry == protocol.RetryNever || c.cfg.DisableReconnect {
			return nil, cause
		}
		if max := c.cfg.MaxReconnectAttempts; max > 0 && attempt > max {
			return nil, fmt.Errorf("roomcast: gave up after %d reconnect attempts: %w", max, cause)
		}
		delay := c.backoff(retry, attempt)
		c.events <- event{state: &StateChange{State: StateReconnecting, Err: cause, Attempt: attempt, Delay: delay}}
		if attempt == 1 && errors.Is(cause, ErrMessageBufferFull) && !c.awaitHandlers() {
			return nil, ErrClosed
		}
		t := time.NewTimer(delay)
		select {
		case <-c.stop:
			t.Stop()
			return nil, ErrClosed
		case <-t.C:
		}
		c.events <- event{state: &StateChange{State: StateConnecting}}
		w, ch, err := c.attempt()
		if err == nil {
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				w.close()
				return nil, ErrClosed
			}
			c.cur = w
			close(c.connected)
			c.mu.Unlock()
			c.events <- event{state: &ch}
			return w, nil
		}
		select {
		case <-c.stop:
			return nil, ErrClosed
		default:
		}
		c.log.Debug("roomcast: reconnect attempt failed", "attempt", attempt, "err", err)
		cause, retry = err, c.retryFor(err)
		if retry == protocol.RetryNow || retry == protocol.RetryRefreshToken {
			// A node that drains twice in a row, or a provider whose new
			// token is refused again: slow down.
			retry = protocol.RetryBackoff
		}
	}
}

// lowWater is how far the handlers must work the buffer down before a
// client that overflowed it resumes.
func (c *Client) lowWater() int64 { return int64(c.cfg.MessageBuffer / 2) }

// handlerStall is how long awaitHandlers waits for the handlers to make
// any progress at all before it resumes anyway.
const handlerStall = time.Second

// awaitHandlers waits, after the buffer overflowed, until the handlers
// have worked it down to half. Resuming at once would replay what was
// missed into a buffer that is still full, overflow it again and resume in
// a loop, each time costing the server a session restore; waiting lets
// every cycle make at least half a buffer of progress, while the other
// half keeps the handlers busy during the resume. Handlers that make no
// progress for handlerStall may be waiting on this very client (a handler
// that publishes waits for the connection): it resumes then rather than
// wait for them forever. False when Close was called.
func (c *Client) awaitHandlers() bool {
	ch := make(chan struct{})
	c.caughtUp.Store(&ch)
	last := c.queued.Load()
	if last > c.lowWater() {
		c.log.Info("roomcast: waiting for the handlers to catch up before resuming", "queued", last)
	} else if c.caughtUp.CompareAndSwap(&ch, nil) {
		return true
	}
	tick := time.NewTicker(handlerStall)
	defer tick.Stop()
	for {
		select {
		case <-ch:
			return true
		case <-c.stop:
			c.caughtUp.CompareAndSwap(&ch, nil)
			return false
		case <-tick.C:
			n := c.queued.Load()
			if n >= last {
				c.log.Info("roomcast: handlers made no progress; resuming anyway", "queued", n)
				c.caughtUp.CompareAndSwap(&ch, nil)
				return true
			}
			last = n
		}
	}
}

// attempt makes one connection and restores the session on it, bounded by
// DialTimeout and cut short by Close.
func (c *Client) attempt() (*wire, StateChange, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.DialTimeout)
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	w, err := c.dial(ctx)
	if err != nil {
		return nil, StateChange{}, err
	}
	ch, err := c.restore(ctx, w)
	if err != nil {
		w.close()
		return nil, StateChange{}, err
	}
	return w, ch, nil
}

// restore resumes the session on a new connection and re-joins every room
// with since = the last message delivered there. It returns the Resumed
// state change to report.
func (c *Client) restore(ctx context.Context, w *wire) (StateChange, error) {
	ch := StateChange{State: StateResumed, Recovered: true}
	c.mu.Lock()
	id, tok := c.sessionID, c.resumeTok
	c.mu.Unlock()
	resumed := false
	if id != "" && tok != "" {
		r, err := w.request(ctx, &protocol.Command{Op: protocol.OpResume, SessionID: id, ResumeToken: tok}, nil)
		switch {
		case err == nil:
			resumed = true
			c.mu.Lock()
			c.sessionID, c.resumeTok = r.SessionID, r.ResumeToken
			c.mu.Unlock()
		case errors.Is(err, ErrDisconnected):
			return ch, err
		default:
			c.log.Info("roomcast: session not resumed; continuing with a new session", "err", err)
		}
	}
	if !resumed {
		ch.Recovered = false
		c.mu.Lock()
		c.sessionID, c.resumeTok = w.info.SessionID, w.info.ResumeToken
		c.mu.Unlock()
	}
	c.mu.Lock()
	rooms := make(map[string]protocol.Position, len(c.rooms))
	for name, st := range c.rooms {
		rooms[name] = st.pos
	}
	c.mu.Unlock()
	for name, pos := range rooms {
		var since *protocol.Position
		if pos.Epoch != "" {
			p := pos
			since = &p
		}
		cmd := joinCommand(name, since)
		r, err := w.request(ctx, cmd, c.joinHook(name, since))
		if err != nil {
			if errors.Is(err, ErrDisconnected) || ctx.Err() != nil {
				return ch, err
			}
			// The room refuses us now (e.g. capability gone): report it and
			// stop following it.
			c.log.Warn("roomcast: re-join failed", "room", name, "err", err)
			c.mu.Lock()
			delete(c.rooms, name)
			c.mu.Unlock()
			ch.Recovered = false
			ch.Rooms = append(ch.Rooms, recovery(name, RoomRecovery{Err: err}))
			continue
		}
		rr := recovery(name, RoomRecovery{Recovered: r.Recovered && since != nil, Position: position(r)})
		rr.EpochChanged = since != nil && r.Position != nil && r.Position.Epoch != since.Epoch
		if !rr.Recovered {
			ch.Recovered = false
		}
		ch.Rooms = append(ch.Rooms, rr)
	}
	c.reenter(ctx, w)
	return ch, nil
}

// retryFor is retryFor for this Client: close 4002 (token expired) is
// terminal without a TokenProvider, since the same token would be refused
// again.
func (c *Client) retryFor(err error) protocol.Retry {
	r := retryFor(err)
	if r == protocol.RetryRefreshToken && c.cfg.TokenProvider == nil {
		return protocol.RetryNever
	}
	return r
}

// retryFor is what an ended connection (or a failed attempt) allows: the
// close-code table for close frames; HTTP 401/403 refusals are terminal,
// other refusals (429, 5xx) and network errors call for backoff.
func retryFor(err error) protocol.Retry {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Retry()
	}
	var he *HandshakeError
	if errors.As(err, &he) && (he.StatusCode == 401 || he.StatusCode == 403) {
		return protocol.RetryNever
	}
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrNoToken) {
		return protocol.RetryNever
	}
	return protocol.RetryBackoff
}

// backoff is the wait before a reconnect attempt: full jitter over an
// exponentially growing window (attempt n: a random time in
// [0, min(max, base·2^(n-1))]), or under 100ms when the node asked clients
// to move on at once or the token just needs refreshing.
func (c *Client) backoff(retry protocol.Retry, attempt int) time.Duration {
	if retry == protocol.RetryNow || retry == protocol.RetryRefreshToken {
		return time.Duration(mrand.Int64N(int64(100 * time.Millisecond)))
	}
	window := c.cfg.ReconnectBaseDelay << min(attempt-1, 30)
	if window <= 0 || window > c.cfg.ReconnectMaxDelay {
		window = c.cfg.ReconnectMaxDelay
	}
	return time.Duration(mrand.Int64N(int64(window) + 1))
}
