package service

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/roomcast/roomcast/pkg/httpjson"
)

// HTTP is a service's HTTP server (API, /healthz, /readyz, /metrics) on a
// listener of its own.
type HTTP struct {
	ln   net.Listener
	srv  *http.Server
	errc chan error
}

// ListenHTTP binds addr (port 0 picks a free port) and serves h on it;
// headerTimeout bounds reading a request's headers. A handler's panic is
// logged on log and answered 500 "internal" (httpjson.Recover).
func ListenHTTP(log *slog.Logger, addr string, h http.Handler, headerTimeout time.Duration) (*HTTP, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	h = httpjson.Recover(log, h)
	s := &HTTP{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: headerTimeout}, errc: make(chan error, 1)}
	go func() { s.errc <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the bound address.
func (s *HTTP) Addr() net.Addr { return s.ln.Addr() }

// Announce logs the "listening" line with the bound address and attrs (the
// test harness and `roomcast run` read the address from it), then calls
// onListen, if set.
func (s *HTTP) Announce(log *slog.Logger, onListen func(net.Addr), attrs ...any) {
	log.Info("listening", append([]any{"addr", s.ln.Addr().String()}, attrs...)...)
	if onListen != nil {
		onListen(s.ln.Addr())
	}
}

// Wait returns nil once ctx ends, or the server's error if it stops first.
func (s *HTTP) Wait(ctx context.Context) error {
	select {
	case err := <-s.errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
		return nil
	}
}

// Shutdown stops accepting and waits for requests in flight until ctx
// ends.
func (s *HTTP) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
