// Package rest is the Go REST SDK for backends: publish into rooms through
// a gateway's REST API, mint client tokens locally with an API key, or ask
// the auth service for one.
//
//	c, err := rest.New(rest.Config{GatewayURL: "http://localhost:8080", APIKey: key})
//	tok, err := c.CreateToken("alice", token.Capabilities{"chat.*": {token.OpJoin}}, time.Hour)
//	res, err := c.Publish(ctx, rest.Message{Room: "chat.lobby", Data: json.RawMessage(`{"text":"hi"}`), IdempotencyKey: "order-42"})
//
// Every call takes a context. Failures the server answered are *Error
// (status, stable code, message; docs/protocol.md and docs/auth-api.md
// list the codes). Calls that are safe to repeat — a publish whose every
// message carries an idempotency key, a token request — are retried with
// exponential backoff and jitter on 429, 5xx and network errors; others are
// never retried, so a message is never sent twice by the SDK.
package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
)

// Config configures a Client.
type Config struct {
	// GatewayURL is a gateway's base URL (e.g. http://localhost:8080), for
	// Publish and PublishBatch.
	GatewayURL string
	// AuthURL is the auth service's base URL, for RequestToken.
	AuthURL string
	// MetricsURL is the metrics service's base URL, for Stats and
	// RoomStats.
	MetricsURL string
	// APIKey is "<app>.<keyId>:<secret>": it authenticates every call and
	// signs CreateToken's tokens.
	APIKey string
	// HTTPClient defaults to a client with a 30 s timeout.
	HTTPClient *http.Client
	// MaxRetries is how often an idempotent call is retried (default 3;
	// negative: never).
	MaxRetries int
	// MinBackoff and MaxBackoff bound the wait between retries (defaults
	// 100 ms and 5 s); a Retry-After header is honoured up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
}

// Client calls the Roomcast REST APIs. It is safe for concurrent use.
type Client struct {
	cfg Config
	key token.Key
}

// New creates a Client. The API key is parsed once; errors never quote it.
func New(cfg Config) (*Client, error) {
	k, err := token.ParseAPIKey(cfg.APIKey)
	if err != nil {
		return nil, fmt.Errorf("rest: %w", err)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 3
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	cfg.GatewayURL = strings.TrimRight(cfg.GatewayURL, "/")
	cfg.AuthURL = strings.TrimRight(cfg.AuthURL, "/")
	return &Client{cfg: cfg, key: k}, nil
}

// Error is a failure the server answered: the HTTP status, the stable
// code to switch on, and a message for humans.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("roomcast: %d %s: %s", e.Status, e.Code, e.Message)
}

// Temporary reports whether repeating the call later may succeed.
func (e *Error) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// Message is one message to publish. Data is any JSON value.
type Message struct {
	Room           string          `json:"room"`
	Data           json.RawMessage `json:"data"`
	Event          string          `json:"event,omitempty"`
	Transient      bool            `json:"transient,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
}

// Result is where a message was stored (no offset for transient ones). In
// a batch, Err is set instead for a message refused on its own.
type Result struct {
	Room   string `json:"room,omitempty"`
	Offset uint64 `json:"offset,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
	Err    *Error `json:"-"`
}

// Publish publishes one message. It is retried only if the message has an
// idempotency key.
func (c *Client) Publish(ctx context.Context, m Message) (Result, error) {
	var res Result
	err := c.do(ctx, c.cfg.GatewayURL, "/v1/messages", m, &res, m.IdempotencyKey != "")
	return res, err
}

// PublishBatch publishes up to 100 messages to any rooms of the app, one
// result per message in order. It is retried only if every message has an
// idempotency key (a repeat then delivers nothing twice).
func (c *Client) PublishBatch(ctx context.Context, msgs []Message) ([]Result, error) {
	idempotent := len(msgs) > 0
	for _, m := range msgs {
		idempotent = idempotent && m.IdempotencyKey != ""
	}
	var wire struct {
		Results []struct {
			Result
			Error *authapi.ErrorBody `json:"error,omitempty"`
		} `json:"results"`
	}
	if err := c.do(ctx, c.cfg.GatewayURL, "/v1/messages/batch", map[string]any{"messages": msgs}, &wire, idempotent); err != nil {
		return nil, err
	}
	out := make([]Result, len(wire.Results))
	for i, r := range wire.Results {
		out[i] = r.Result
		if r.Error != nil {
			out[i].Err = &Error{Status: http.StatusOK, Code: string(r.Error.Code), Message: r.Error.Message}
		}
	}
	return out, nil
}

// CreateToken mints an HS256 client token with the API key, locally (no
// network call): the gateway verifies it with the same key. caps should be
// within the key's capabilities, or gateways refuse the token.
func (c *Client) CreateToken(clientID string, caps token.Capabilities, ttl time.Duration) (string, error) {
	return token.Mint(c.key, clientID, caps, ttl, time.Now())
}

// TokenRequest asks the auth service for a token; TTL zero means the
// service's default.
type TokenRequest struct {
	ClientID string
	Caps     token.Capabilities
	TTL      time.Duration
}

// Token is an EdDSA token issued by the auth service.
type Token struct {
	Token     string
	ExpiresAt time.Time
	KeyID     string
}

// RequestToken asks the auth service (POST /v1/tokens) for an EdDSA token.
// Capabilities wider than the key's are refused with code
// "capability_exceeded".
func (c *Client) RequestToken(ctx context.Context, req TokenRequest) (Token, error) {
	body := authapi.TokenRequest{ClientID: req.ClientID, Caps: req.Caps}
	if req.TTL > 0 {
		body.TTL = req.TTL.String()
	}
	var resp authapi.TokenResponse
	// Issuing a second token has no effect beyond the first: retry.
	if err := c.do(ctx, c.cfg.AuthURL, authapi.PathTokens, body, &resp, true); err != nil {
		return Token{}, err
	}
	return Token{Token: resp.Token, ExpiresAt: resp.ExpiresAt, KeyID: resp.KeyID}, nil
}

// do POSTs body to base+path and decodes the answer into out, retrying if
// idempotent.
func (c *Client) do(ctx context.Context, base, path string, body, out any, idempotent bool) error {
	return c.call(ctx, http.MethodPost, base, path, body, out, idempotent)
}

// call sends a request (with body as JSON, unless nil) to base+path and
// decodes the answer into out, retrying if idempotent.
func (c *Client) call(ctx context.Context, method, base, path string, body, out any, idempotent bool) error {
	if base == "" {
		return fmt.Errorf("rest: no base URL configured for %s", path)
	}
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("rest: encode request: %w", err)
		}
	}
	for attempt := 0; ; attempt++ {
		retryAfter, err := c.once(ctx, method, base+path, payload, out)
		if err == nil {
			return nil
		}
		var apiErr *Error
		retryable := idempotent && attempt < c.cfg.MaxRetries && ctx.Err() == nil &&
			(!errors.As(err, &apiErr) || apiErr.Temporary())
		if !retryable {
			return err
		}
		wait := c.backoff(attempt, retryAfter)
		select {
		case <-ctx.Done():
			return fmt.Errorf("rest: %w (last error: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// backoff is full jitter over an exponential ceiling, or the server's
// Retry-After, within MaxBackoff.
func (c *Client) backoff(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, c.cfg.MaxBackoff)
	}
	ceil := min(c.cfg.MinBackoff<<attempt, c.cfg.MaxBackoff)
	return c.cfg.MinBackoff/2 + rand.N(ceil)
}

// once makes one request. Network errors are returned as they are (and
// count as temporary); answered failures as *Error.
func (c *Client) once(ctx context.Context, method, url string, payload []byte, out any) (time.Duration, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, fmt.Errorf("rest: %w", err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.key.String())
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("rest: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return 0, fmt.Errorf("rest: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e authapi.Error
		apiErr := &Error{Status: resp.StatusCode, Code: "unknown", Message: http.StatusText(resp.StatusCode)}
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			apiErr.Code, apiErr.Message = string(e.Error.Code), e.Error.Message
		}
		var retryAfter time.Duration
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			retryAfter = time.Duration(s) * time.Second
		}
		return retryAfter, apiErr
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return 0, fmt.Errorf("rest: decode answer: %w", err)
	}
	return 0, nil
}
