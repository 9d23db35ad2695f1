// Package service is the common main of every Roomcast service binary:
// load the configuration from the environment, build the structured
// logger, run until SIGTERM or SIGINT, and exit non-zero on failure. A
// service's main.go is one call to Main; its logic lives in its app
// package, which `roomcast run` calls too.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/roomcast/roomcast/pkg/observability"
)

// Config is what Main needs of a service's configuration.
type Config interface {
	// Logging returns ROOMCAST_LOG_FORMAT and ROOMCAST_LOG_LEVEL.
	Logging() (format, level string)
}

// Main loads the configuration with load, then runs run until a signal
// cancels its context. version is the build's stamp (-ldflags "-X
// main.version=…"). It does not return.
func Main[C Config](name, version string, load func() (C, error), run func(ctx context.Context, cfg C, log *slog.Logger) error) {
	if err := mainErr(name, version, load, run); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func mainErr[C Config](name, version string, load func() (C, error), run func(context.Context, C, *slog.Logger) error) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	format, level := cfg.Logging()
	log, err := observability.NewLogger(os.Stderr, format, level)
	if err != nil {
		return err
	}
	log.Info("starting", "service", name, "version", version)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return run(ctx, cfg, log)
}
