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
	"log/slog"

	"github.com/roomcast/roomcast/pkg/service"
	"github.com/roomcast/roomcast/services/history/app"
	"github.com/roomcast/roomcast/services/history/config"
)

// version is stamped in at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	service.Main("history", version, config.Load, func(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
		return app.Run(ctx, cfg, log, nil)
	})
}
