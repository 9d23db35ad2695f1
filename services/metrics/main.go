// Command metrics is Roomcast's usage service: workers that count the
// events gateways and the presence service enqueue (connections, joins,
// messages, bytes, presence members) into per-app and per-room minute
// buckets in PostgreSQL, and the usage API that reads them back. Run as
// many replicas as you need; they share the queue, and an event delivered
// twice is counted once.
//
// Configuration comes from the environment; docs/operations.md lists every
// variable and its default. SIGTERM or SIGINT stops it cleanly.
package main

import (
	"context"
	"log/slog"

	"github.com/roomcast/roomcast/pkg/service"
	"github.com/roomcast/roomcast/services/metrics/app"
	"github.com/roomcast/roomcast/services/metrics/config"
)

// version is stamped in at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	service.Main("metrics", version, config.Load, func(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
		return app.Run(ctx, cfg, log, nil)
	})
}
