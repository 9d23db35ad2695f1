// Command gateway is Roomcast's WebSocket and REST edge. It is stateless:
// run as many as you need behind any load balancer, no sticky sessions.
//
// Configuration comes from the environment; docs/operations.md lists every
// variable and its default. SIGTERM or SIGINT drains the node and exits 0.
package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/roomcast/roomcast/pkg/service"
	"github.com/roomcast/roomcast/pkg/sysmon"
	"github.com/roomcast/roomcast/services/gateway/app"
	"github.com/roomcast/roomcast/services/gateway/config"
)

// version is stamped in at build time (deploy/Dockerfile passes
// -ldflags "-X main.version=..."); "dev" means an unstamped build.
var version = "dev"

func main() {
	// First, before anything starts: on success it does not return.
	awakeErr := sysmon.KeepAwake()
	service.Main("gateway", version, config.Load, func(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
		if awakeErr != nil {
			log.Warn("runtime monitor left with its default deep sleep", "err", awakeErr)
		}
		setGCPercent(cfg, log)
		return app.Run(ctx, cfg, log, nil)
	})
}

// setGCPercent applies GATEWAY_GC_PERCENT unless GOGC is set. A gateway's
// heap is mostly long-lived connection state and it allocates little per
// delivery, so a tighter collection goal costs little CPU and lowers the
// memory each idle connection holds (docs/benchmarks.md, W1).
func setGCPercent(cfg *config.Config, log *slog.Logger) {
	if v := os.Getenv("GOGC"); v != "" {
		log.Info("GOGC is set: GATEWAY_GC_PERCENT ignored", "gogc", v)
		return
	}
	debug.SetGCPercent(cfg.GCPercent)
}
