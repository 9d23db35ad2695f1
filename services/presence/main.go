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
	"log/slog"

	"github.com/roomcast/roomcast/pkg/service"
	"github.com/roomcast/roomcast/services/presence/app"
	"github.com/roomcast/roomcast/services/presence/config"
)

// version is stamped in at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	service.Main("presence", version, config.Load, func(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
		return app.Run(ctx, cfg, log, nil)
	})
}
