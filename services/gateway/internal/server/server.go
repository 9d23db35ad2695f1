// Package server is the gateway's WebSocket edge: it admits connections
// (per-IP limit, Origin allow-list, subprotocol, token — all checked during
// the HTTP upgrade, before any connection state exists), keeps the registry
// of live connections for heartbeats, and drains them on shutdown.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/clientip"
	"github.com/roomcast/roomcast/pkg/httpjson"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/services/gateway/internal/conn"
	"github.com/roomcast/roomcast/services/gateway/internal/wsframe"
)

// Server accepts and tracks WebSocket connections.
type Server struct {
	deps     *conn.Deps
	verifier *token.Verifier
	node     string
	origins  []string
	proxies  clientip.Proxies
	ipLimit  *ipLimiter
	log      *slog.Logger

	draining atomic.Bool
	mu       sync.Mutex
	conns    map[*conn.Conn]struct{}
	wg       sync.WaitGroup // one per served connection
	stop     chan struct{}
}

// New creates a server. Start its heartbeat with Run.
func New(deps *conn.Deps, verifier *token.Verifier, node string) *Server {
	cfg := deps.Config
	var origins []string
	for _, o := range strings.Split(cfg.AllowedOrigins, ",") {
		if o = strings.TrimSpace(strings.ToLower(o)); o != "" {
			origins = append(origins, o)
		}
	}
	proxies, _ := cfg.ParseTrustedProxies() // validated with the config
	return &Server{
		proxies:  proxies,
		deps:     deps,
		verifier: verifier,
		node:     node,
		origins:  origins,
		ipLimit:  newIPLimiter(cfg.IPRate, cfg.IPBurst),
		log:      deps.Log,
		conns:    make(map[*conn.Conn]struct{}),
		stop:     make(chan struct{}),
	}
}

// Mount registers the WebSocket endpoint on mux.
func (s *Server) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/connect", s.handleConnect)
}

// Connections is the number of live connections.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Draining reports whether Drain has started.
func (s *Server) Draining() bool { return s.draining.Load() }

// Run sends heartbeats and kicks connections that stopped answering, until
// Drain. Pings go out from one goroutine for the whole node, not one timer
// per connection.
func (s *Server) Run() {
	cfg := s.deps.Config
	t := time.NewTicker(cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.ipLimit.sweep(now)
			deadline := now.Add(-time.Duration(cfg.HeartbeatMisses) * cfg.HeartbeatInterval)
			var live []string
			for _, c := range s.snapshot() {
				if c.LastSeen().Before(deadline) {
					c.Close(protocol.CloseHeartbeatTimeout, "no pong within the heartbeat timeout")
					continue
				}
				c.Ping()
				if id := c.SessionID(); id != "" {
					live = append(live, id)
				}
			}
			s.touch(live)
		}
	}
}

// touch keeps the sessions of live connections from expiring.
func (s *Server) touch(ids []string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.deps.Config.HeartbeatInterval/2)
	defer cancel()
	if err := s.deps.Sessions.Touch(ctx, ids...); err != nil {
		s.log.Warn("session touch failed", "sessions", len(ids), "err", err)
	}
}

func (s *Server) snapshot() []*conn.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn.Conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// Drain stops admitting connections, closes every live one with 4000
// (resume on another node) and waits until they have ended or ctx is done.
func (s *Server) Drain(ctx context.Context) error {
	if s.draining.Swap(true) {
		return errors.New("server: already draining")
	}
	close(s.stop)
	for _, c := range s.snapshot() {
		c.Close(protocol.CloseServerShutdown, "node is shutting down; reconnect")
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) handleConnect(w http.ResponseWriter, r *http.Request) {
	m := s.deps.Metrics
	if s.draining.Load() {
		m.RejectedHandshake.WithLabelValues("draining").Inc()
		httpjson.WriteError(w, http.StatusServiceUnavailable, protocol.CodeUnavailable, "node is draining; connect to another node")
		return
	}
	if !s.ipLimit.allow(s.proxies.Of(r), time.Now()) {
		m.RejectedHandshake.WithLabelValues("ip_rate").Inc()
		w.Header().Set("Retry-After", "1")
		httpjson.WriteError(w, http.StatusTooManyRequests, protocol.CodeRateLimited, "too many connection attempts from this address")
		return
	}

	// Decide everything that can be decided from the request before the
	// upgrade; failures are then reported with a close code so that
	// browsers, which cannot read a failed handshake's HTTP status, learn
	// why.
	closeCode, closeReason := protocol.CloseCode(0), ""
	var claims *token.Claims
	offered := offeredProtocols(r)
	codec := negotiate(offered)
	switch {
	case !s.originAllowed(r.Header.Get("Origin")):
		closeCode, closeReason = protocol.CloseOriginRejected, "origin not allowed"
	case codec == nil:
		closeCode, closeReason = protocol.CloseUnsupportedProtocol, "offer subprotocol "+protocol.SubprotocolJSON+" or "+protocol.SubprotocolMsgpack
	default:
		raw := tokenFrom(r, offered)
		var err error
		claims, err = s.verifier.Verify(raw)
		if err != nil {
			closeCode, closeReason = protocol.CloseInvalidToken, "invalid token"
			switch {
			case errors.Is(err, token.ErrExpired):
				closeCode, closeReason = protocol.CloseTokenExpired, "token expired"
			case errors.Is(err, token.ErrRevoked), errors.Is(err, token.ErrCapsExceeded):
				closeCode, closeReason = protocol.CloseForbidden, "API key revoked, or token wider than its key"
			}
			s.log.Info("handshake rejected", "reason", closeCode.String(), "err", err, "token_fp", token.Fingerprint(raw), "remote", r.RemoteAddr)
		}
	}

	up := ws.HTTPUpgrader{
		Timeout: s.deps.Config.HandshakeTimeout,
		Protocol: func(p string) bool {
			return codec != nil && p == codec.Subprotocol()
		},
	}
	nc, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		m.RejectedHandshake.WithLabelValues("bad_handshake").Inc()
		if nc != nil {
			_ = nc.Close()
		}
		return
	}
	var buffered []byte
	if rw != nil && rw.Reader.Buffered() > 0 {
		buffered, _ = rw.Reader.Peek(rw.Reader.Buffered())
		buffered = append([]byte(nil), buffered...)
	}
	if closeCode != 0 {
		m.RejectedHandshake.WithLabelValues(closeCode.String()).Inc()
		rejectAfterUpgrade(nc, closeCode, closeReason)
		return
	}
	if codec == nil {
		codec = protocol.JSON
	}

	id := newID()
	// A session lets the client resume on any node. Without Redis the
	// connection still works; it just cannot be resumed later.
	sctx, scancel := context.WithTimeout(r.Context(), 2*time.Second)
	sess, resumeToken, err := s.deps.Sessions.Create(sctx, claims.App, claims.ClientID())
	scancel()
	if err != nil {
		s.log.Warn("session create failed; connection will not be resumable", "err", err)
	}
	c := conn.New(s.deps, id, nc, buffered, codec, claims, sess.ID)
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		rejectAfterUpgrade(nc, protocol.CloseServerShutdown, "node is shutting down; reconnect")
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	m.Handshakes.Inc()
	m.Connections.Inc()
	cfg := s.deps.Config
	connected := &protocol.Connected{
		ConnectionID: id,
		SessionID:    sess.ID,
		ResumeToken:  resumeToken,
		ClientID:     claims.ClientID(),
		Node:         s.node,
		HeartbeatMS:  int(cfg.HeartbeatInterval / time.Millisecond),
		Limits:       s.deps.Limits,
	}
	// Start returns at once and net/http's connection goroutine ends: an
	// idle connection holds no goroutine (its stack would be most of what
	// the connection costs).
	c.Start(connected, func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		m.Connections.Dec()
		s.wg.Done()
	})
}

// rejectAfterUpgrade sends a close frame on a connection that never became
// a session, waits briefly for the peer's close, and drops it.
func rejectAfterUpgrade(nc net.Conn, code protocol.CloseCode, reason string) {
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := nc.Write(wsframe.Close(code, reason)); err != nil {
		return
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	var buf [512]byte
	for {
		if _, err := nc.Read(buf[:]); err != nil {
			return
		}
	}
}

// offeredProtocols lists the Sec-WebSocket-Protocol values in request order.
func offeredProtocols(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// negotiate picks the codec: the first known subprotocol offered; JSON when
// nothing but a token (or nothing at all) was offered; nil when only
// unknown subprotocols were offered.
func negotiate(offered []string) protocol.Codec {
	others := 0
	for _, p := range offered {
		if strings.HasPrefix(p, protocol.TokenSubprotocolPrefix) {
			continue
		}
		if c := protocol.CodecFor(p); c != nil {
			return c
		}
		others++
	}
	if others == 0 {
		return protocol.JSON
	}
	return nil
}

// tokenFrom takes the token from the subprotocol carrier or the query.
func tokenFrom(r *http.Request, offered []string) string {
	for _, p := range offered {
		if t, ok := strings.CutPrefix(p, protocol.TokenSubprotocolPrefix); ok {
			return t
		}
	}
	return r.URL.Query().Get("token")
}

func (s *Server) originAllowed(origin string) bool {
	if origin == "" {
		return true
	}
	origin = strings.ToLower(origin)
	for _, p := range s.origins {
		if token.MatchPattern(p, origin) {
			return true
		}
	}
	return false
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
