// Command gateway is Roomcast's WebSocket and REST edge. It is stateless:
// run as many as you need behind any load balancer, no sticky sessions.
//
// Configuration comes from the environment; docs/operations.md lists every
// variable and its default. SIGTERM or SIGINT drains the node and exits 0.
package main

import (
	"context"
	"log/slog"

	"github.com/roomcast/roomcast/pkg/service"
	"github.com/roomcast/roomcast/services/gateway/app"
	"github.com/roomcast/roomcast/services/gateway/config"
)

// version is stamped in at build time (deploy/Dockerfile passes
// -ldflags "-X main.version=..."); "dev" means an unstamped build.
var version = "dev"

func main() {
	service.Main("gateway", version, config.Load, func(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
		return app.Run(ctx, cfg, log, nil)
	})
}
