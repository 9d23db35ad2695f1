// Command gateway is Roomcast's WebSocket and REST edge. It is stateless:
// run as many as you need behind any load balancer, no sticky sessions.
//
// Configuration comes from the environment; docs/operations.md lists every
// variable and its default. SIGTERM or SIGINT drains the node and exits 0.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/roomcast/roomcast/pkg/observability"
	"github.com/roomcast/roomcast/services/gateway/app"
	"github.com/roomcast/roomcast/services/gateway/config"
)

// version is stamped in at build time (deploy/Dockerfile passes
// -ldflags "-X main.version=..."); "dev" means an unstamped build.
var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	log, err := observability.NewLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	log.Info("starting", "service", "gateway", "version", version)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return app.Run(ctx, cfg, log, nil)
}
