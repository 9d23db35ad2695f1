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
	"log/slog"

	"github.com/roomcast/roomcast/pkg/service"
	"github.com/roomcast/roomcast/services/webhooks/app"
	"github.com/roomcast/roomcast/services/webhooks/config"
)

// version is stamped in at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	service.Main("webhooks", version, config.Load, func(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
		return app.Run(ctx, cfg, log, nil)
	})
}
