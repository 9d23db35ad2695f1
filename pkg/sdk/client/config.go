package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// Config configures a Client. Only URL and one of Token or TokenProvider are
// required; every other field's zero value is a sensible default.
type Config struct {
	// URL is the gateway's WebSocket endpoint, e.g.
	// "ws://127.0.0.1:8080/v1/connect" or "wss://rt.example.com/v1/connect".
	// Required; the scheme must be ws or wss.
	URL string

	// Token is a JWT minted by the application's backend (or the auth
	// service). Set Token or TokenProvider, not both.
	Token string
	// TokenProvider returns a fresh token each time the client connects
	// (Dial and every reconnect, including the one after close 4002
	// token_expired: it must not return the expired token again). Use it
	// instead of Token when tokens are short-lived; an error from it fails
	// Dial, wrapped, and fails that reconnect attempt (backoff, retry).
	// With a static Token, close 4002 ends the Client: the token cannot
	// get any younger.
	TokenProvider func(ctx context.Context) (string, error)
	// TokenInQuery sends the token as the "token" query parameter.
	// Zero (false): the token travels as an extra offered subprotocol
	// "roomcast.token.<jwt>", which keeps it out of URLs and access logs.
	TokenInQuery bool

	// Codec is the wire encoding: protocol.JSON (text frames) or
	// protocol.Msgpack (binary frames; payloads travel as raw bytes, with
	// no base64). Zero: JSON. Either codec sends and receives binary
	// payloads (Publish with Binary, Message.Binary) and JSON ones, and
	// talks with clients of the other codec in the same rooms.
	Codec protocol.Codec

	// Header holds extra handshake headers (Origin, User-Agent, …).
	// Zero: none.
	Header http.Header

	// Logger receives connection lifecycle events. Tokens and resume tokens
	// are never logged. Zero: logs are discarded.
	Logger *slog.Logger

	// MessageBuffer is how many received messages may wait for the handlers
	// (OnMessage, OnAnyMessage). Zero means 1024. When handlers fall further
	// behind, the client does not block its reader (that would stall
	// replies and heartbeats, and deadlock a handler that awaits a reply)
	// and does not drop messages: it closes the connection with close code
	// 1001 and Err reports ErrMessageBufferFull. Messages already buffered
	// are still handed to the handlers. Unless reconnecting is disabled,
	// the client resumes once the handlers have worked the buffer down to
	// half (or have made no progress for a second: a handler may be
	// waiting on the client), and the server replays what was missed from
	// the rooms' history.
	MessageBuffer int

	// InlineHandlers runs the handlers of received traffic (OnMessage,
	// OnAnyMessage, OnPresence, OnMetrics and OnEpochChange) on the
	// connection's reader, as each frame is read, instead of queueing it
	// for the delivery goroutine: no hand-off between goroutines, so a
	// message reaches its handler sooner and costs less, and
	// MessageBuffer does not apply. The price: while a handler runs the
	// connection reads nothing — no replies, no heartbeats (a handler
	// slower than the heartbeat timeout loses the connection) — and a
	// handler that waits on the Client (Publish, Join, …) deadlocks until
	// its context ends. OnStateChange still runs on the delivery
	// goroutine, so it is not ordered with the messages: after a
	// reconnect, replayed messages may reach the handlers before
	// StateResumed is reported. For handlers that only record or hand
	// on, such as metrics and load generators. Zero (false): handlers run
	// on the delivery goroutine.
	InlineHandlers bool

	// MaxMessageBytes caps one message received from the server. Zero means
	// 16 MiB. A larger message closes the connection with close code 1009
	// and Err reports ErrMessageTooLarge.
	MaxMessageBytes int64

	// OnStateChange is told when the connection state changes:
	// StateConnecting then StateConnected from Dial; after a lost
	// connection StateReconnecting (once per attempt, before its delay),
	// StateConnecting (when the attempt starts) and, once one succeeds,
	// StateResumed; at the end StateClosed with the reason. When Dial
	// fails, StateConnecting is all it reports: Dial's error says why. It
	// runs on the delivery goroutine, in order with the message handlers,
	// so a StateClosed comes after the last message. Zero: no
	// notifications.
	OnStateChange func(StateChange)
	// OnEpochChange is told when a joined room's epoch changes (its state
	// was lost on the server and offsets started again): the app must
	// resync that room by other means. It runs on the delivery goroutine
	// just before the first message of the new epoch is handed to the
	// handlers. Zero: not told (StateResumed still reports an epoch change
	// found while re-joining, in RoomRecovery.EpochChanged).
	OnEpochChange func(EpochChange)

	// DisableReconnect makes the Client end when its connection ends.
	// Zero (false): it reconnects, resumes and recovers by itself.
	DisableReconnect bool
	// ReconnectBaseDelay and ReconnectMaxDelay shape the backoff: attempt n
	// waits a random time in [0, min(max, base·2^(n-1))] (full jitter).
	// Zero means 200ms and 10s.
	ReconnectBaseDelay time.Duration
	ReconnectMaxDelay  time.Duration
	// MaxReconnectAttempts ends the Client after that many failed attempts
	// in a row (Err then wraps the last attempt's error). Zero: never give
	// up (only terminal close codes and HTTP 401/403 refusals end it).
	MaxReconnectAttempts int
	// DialTimeout bounds one reconnect attempt (handshake, resume and
	// re-joins). Zero means 10s. The first Dial is bounded by its ctx.
	DialTimeout time.Duration
}

const (
	defaultMessageBuffer   = 1024
	defaultMaxMessageBytes = 16 << 20
)

// normalize validates cfg and fills in defaults.
func (cfg Config) normalize() (Config, *url.URL, error) {
	if cfg.URL == "" {
		return cfg, nil, errors.New("roomcast: Config.URL is required")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return cfg, nil, fmt.Errorf("roomcast: Config.URL: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return cfg, nil, fmt.Errorf("roomcast: Config.URL scheme is %q, want ws or wss", u.Scheme)
	}
	if u.Host == "" {
		return cfg, nil, errors.New("roomcast: Config.URL has no host")
	}
	switch {
	case cfg.Token != "" && cfg.TokenProvider != nil:
		return cfg, nil, errors.New("roomcast: set Config.Token or Config.TokenProvider, not both")
	case cfg.Token == "" && cfg.TokenProvider == nil:
		return cfg, nil, errors.New("roomcast: Config.Token or Config.TokenProvider is required")
	}
	if cfg.MessageBuffer < 0 {
		return cfg, nil, errors.New("roomcast: Config.MessageBuffer is negative")
	}
	if cfg.MessageBuffer == 0 {
		cfg.MessageBuffer = defaultMessageBuffer
	}
	if cfg.MaxMessageBytes < 0 {
		return cfg, nil, errors.New("roomcast: Config.MaxMessageBytes is negative")
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = defaultMaxMessageBytes
	}
	if cfg.ReconnectBaseDelay <= 0 {
		cfg.ReconnectBaseDelay = 200 * time.Millisecond
	}
	if cfg.ReconnectMaxDelay <= 0 {
		cfg.ReconnectMaxDelay = 10 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, u, nil
}

// token returns the token for one connection attempt.
func (cfg *Config) token(ctx context.Context) (string, error) {
	tok := cfg.Token
	if cfg.TokenProvider != nil {
		var err error
		tok, err = cfg.TokenProvider(ctx)
		if err != nil {
			return "", fmt.Errorf("roomcast: token provider: %w", err)
		}
	}
	if tok == "" {
		return "", errors.New("roomcast: token is empty")
	}
	if !cfg.TokenInQuery && !isHTTPToken(tok) {
		// A JWT is always a valid HTTP token; anything else may not fit in
		// Sec-WebSocket-Protocol.
		return "", errors.New("roomcast: token contains characters not allowed in Sec-WebSocket-Protocol; set Config.TokenInQuery")
	}
	return tok, nil
}

// isHTTPToken reports whether s is an RFC 7230 token, the syntax of one
// Sec-WebSocket-Protocol value.
func isHTTPToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '!', c == '#', c == '$', c == '%', c == '&', c == '\'', c == '*',
			c == '+', c == '-', c == '.', c == '^', c == '_', c == '`', c == '|', c == '~':
		default:
			return false
		}
	}
	return s != ""
}

// State is a connection state reported to Config.OnStateChange.
type State int

// Connection states. Later versions may add states; switch statements
// should have a default case.
const (
	// StateConnected: the first connection is up; requests can be made.
	StateConnected State = iota + 1
	// StateClosed: the Client ended for good; StateChange.Err says why.
	StateClosed
	// StateReconnecting: the connection was lost (Err says why); the next
	// attempt (Attempt, from 1) starts after Delay.
	StateReconnecting
	// StateResumed: connected again, session and rooms restored.
	// Recovered is true when no message was lost: the session was resumed
	// and every room's missed messages follow; Rooms has each room's result.
	StateResumed
	// StateConnecting: a connection attempt starts (Dial's, or a
	// reconnect attempt's after its delay).
	StateConnecting
)

func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateClosed:
		return "closed"
	case StateReconnecting:
		return "reconnecting"
	case StateResumed:
		return "resumed"
	case StateConnecting:
		return "connecting"
	}
	return "unknown"
}

// StateChange is one connection state transition.
type StateChange struct {
	State State
	// Err is why the connection ended (StateReconnecting, StateClosed):
	// ErrClosed after Close, a *CloseError, or a transport error.
	Err error
	// Attempt and Delay describe the next reconnect (StateReconnecting).
	Attempt int
	Delay   time.Duration
	// Recovered and Rooms report a reconnect (StateResumed).
	Recovered bool
	Rooms     []RoomRecovery
}

// RoomRecovery is one room's outcome after a reconnect.
type RoomRecovery struct {
	Room string
	// Presence is set when this is the room's presence subscription (its
	// events, not its messages).
	Presence bool
	// Recovered: every message after the last one delivered follows, in
	// order. False: some are gone (the app should resync this room).
	Recovered bool
	// Position is where the room stood when it was re-joined.
	Position protocol.Position
	// EpochChanged: the room's state was reset on the server; offsets
	// started again.
	EpochChanged bool
	// Err is set when the room could not be re-joined at all; the Client no
	// longer follows it.
	Err error
}

// EpochChange reports that a room's epoch changed: the messages between
// Old and New may be lost for good, so the app should resync the room.
type EpochChange struct {
	Room string
	// Old is the last position the Client knew in the previous epoch.
	Old protocol.Position
	// New is the first position known in the new epoch: the message's, or
	// the position a re-join reported.
	New protocol.Position
}
