// Command webhooks is Roomcast's webhooks service: it turns what happens in
// rooms (events gateways and presence workers enqueue) into signed HTTP
// requests to each app's endpoints, retried with backoff, dead-lettered and
// replayable, with a delivery log; and serves the management API. Run as
// many replicas as you need: they share the queue and the database.
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
	"github.com/roomcast/roomcast/services/webhooks/app"
	"github.com/roomcast/roomcast/services/webhooks/config"
)

// version is stamped in at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "webhooks:", err)
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
	log.Info("starting", "service", "webhooks", "version", version)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return app.Run(ctx, cfg, log, nil)
}
