// Command presence is Roomcast's presence service: workers that apply the
// presence changes gateways enqueue, keep each room's members in Redis and
// publish join/update/leave events into the rooms. Run as many replicas as
// you need; they share the queue and never produce an event twice.
//
// Configuration comes from the environment; docs/operations.md lists every
// variable and its default. SIGTERM or SIGINT stops it cleanly.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/roomcast/roomcast/pkg/observability"
	"github.com/roomcast/roomcast/services/presence/app"
	"github.com/roomcast/roomcast/services/presence/config"
)

// version is stamped in at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "presence:", err)
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
	log.Info("starting", "service", "presence", "version", version)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return app.Run(ctx, cfg, log, nil)
}
