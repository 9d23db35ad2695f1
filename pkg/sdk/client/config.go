package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
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
	// TokenProvider returns a fresh token each time the client connects.
	// Use it instead of Token when tokens are short-lived; an error from it
	// fails Dial, wrapped.
	TokenProvider func(ctx context.Context) (string, error)
	// TokenInQuery sends the token as the "token" query parameter.
	// Zero (false): the token travels as an extra offered subprotocol
	// "roomcast.token.<jwt>", which keeps it out of URLs and access logs.
	TokenInQuery bool

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
	// are still handed to the handlers.
	MessageBuffer int

	// MaxMessageBytes caps one message received from the server. Zero means
	// 16 MiB. A larger message closes the connection with close code 1009
	// and Err reports ErrMessageTooLarge.
	MaxMessageBytes int64

	// OnStateChange is told when the connection state changes: first
	// StateConnected, at the end StateClosed with the reason. It runs on
	// the delivery goroutine, in order with the message handlers, so a
	// StateClosed comes after the last message. Zero: no notifications.
	OnStateChange func(StateChange)
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

// Connection states. A later version with automatic reconnects adds states
// between these two; switch statements should have a default case.
const (
	// StateConnected: the server sent `connected`; requests can be made.
	StateConnected State = iota + 1
	// StateClosed: the connection ended for good; StateChange.Err says why.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// StateChange is one connection state transition.
type StateChange struct {
	State State
	// Err is why the connection closed (StateClosed only): ErrClosed after
	// Close, a *CloseError, or a transport error.
	Err error
}
