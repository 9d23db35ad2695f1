// Command history is Roomcast's history service: workers that archive every
// non-transient room message to PostgreSQL in batches, a retention job that
// deletes expired messages, and the internal read API gateways page the
// archive through. Run as many replicas as you need; they share the queue,
// a batch archived twice inserts nothing twice, and one replica at a time
// runs retention.
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
	"github.com/roomcast/roomcast/services/history/app"
	"github.com/roomcast/roomcast/services/history/config"
)

// version is stamped in at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "history:", err)
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
	log.Info("starting", "service", "history", "version", version)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return app.Run(ctx, cfg, log, nil)
}
