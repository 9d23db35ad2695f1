// Command auth is Roomcast's auth service: apps, API keys and tokens, kept
// in PostgreSQL. Run as many as you like behind a load balancer; they share
// the database.
//
// Configuration comes from the environment; docs/operations.md lists every
// variable and its default. SIGTERM or SIGINT stops it cleanly.
package main

import (
	"context"
	"log/slog"

	"github.com/roomcast/roomcast/pkg/service"
	"github.com/roomcast/roomcast/services/auth/app"
	"github.com/roomcast/roomcast/services/auth/config"
)

// version is stamped in at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	service.Main("auth", version, config.Load, func(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
		return app.Run(ctx, cfg, log, nil)
	})
}
