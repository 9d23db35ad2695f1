//go:build pprof

package main

import (
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
)

// A gateway built with -tags pprof serves net/http/pprof on
// GATEWAY_PPROF_ADDR (default 127.0.0.1:0, announced in the log) to
// profile memory and CPU under load. Release builds do not contain it.
func init() {
	addr := os.Getenv("GATEWAY_PPROF_ADDR")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		slog.Error("pprof listen", "err", err)
		return
	}
	slog.Info("pprof listening", "addr", ln.Addr().String())
	go func() { _ = http.Serve(ln, nil) }()
}
