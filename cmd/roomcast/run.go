package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/roomcast/roomcast/pkg/observability"
	authapp "github.com/roomcast/roomcast/services/auth/app"
	"github.com/roomcast/roomcast/services/gateway/app"
	"github.com/roomcast/roomcast/services/gateway/config"
	historyapp "github.com/roomcast/roomcast/services/history/app"
	metricsapp "github.com/roomcast/roomcast/services/metrics/app"
	presenceapp "github.com/roomcast/roomcast/services/presence/app"
	presenceconfig "github.com/roomcast/roomcast/services/presence/config"
	webhooksapp "github.com/roomcast/roomcast/services/webhooks/app"
)

// runRun starts the platform in this process for local development.
func runRun(ctx context.Context, args []string, e *env) int {
	fs := newFlagSet("run", "roomcast run [flags]",
		"Run the Roomcast platform in one process for local development: the auth service,\n"+
			"the presence service and a gateway, against the Redis, RabbitMQ and PostgreSQL\n"+
			"named by ROOMCAST_REDIS_URL, ROOMCAST_AMQP_URL and ROOMCAST_DATABASE_URL\n"+
			"(default: localhost). Each service's variables of docs/operations.md apply.\n"+
			"Databases are created and migrated on start. On first start a development app\n"+
			"\"dev\" and an API key are created, kept in --dev-key-file and printed, with the\n"+
			"auth service's admin credential. Ctrl-C stops everything cleanly.")
	addr := fs.String("addr", "", "gateway listen address (env GATEWAY_ADDR; default :8080)")
	keyFile := fs.String("dev-key-file", defaultDevKeyFile(), "where the development API key is kept; the development credentials live next to it (env ROOMCAST_DEV_KEY_FILE)")
	database := fs.String("database", "postgres://postgres@127.0.0.1:5432/roomcast?sslmode=disable",
		"PostgreSQL `URL`; each service gets its own database named after this one, created if missing (env ROOMCAST_DATABASE_URL)")
	fs.env("addr", "GATEWAY_ADDR")
	fs.env("dev-key-file", "ROOMCAST_DEV_KEY_FILE")
	fs.env("database", "ROOMCAST_DATABASE_URL")
	if code, ok := fs.parse(args, e); !ok {
		return code
	}
	if fs.NArg() != 0 {
		return fs.usageError(e, "run takes no arguments")
	}
	fail := func(err error) int {
		fmt.Fprintln(e.stderr, "roomcast run:", err)
		return exitError
	}

	cfg, err := config.Load()
	if err != nil {
		return fail(err)
	}
	if *addr != "" {
		cfg.Addr = *addr
	}
	format := cfg.LogFormat
	if e.getenv("ROOMCAST_LOG_FORMAT") == "" {
		format = "text" // people read a local run's logs
	}
	log, err := observability.NewLogger(e.stderr, format, cfg.LogLevel)
	if err != nil {
		return fail(err)
	}
	dev, err := loadOrCreateDevCredentials(filepath.Join(filepath.Dir(*keyFile), "dev-credentials.json"))
	if err != nil {
		return fail(err)
	}
	acfg, err := authConfig(ctx, e, dev, *database)
	if err != nil {
		return fail(err)
	}
	// Every worker service is on: the gateway feeds them all, presence
	// feeds webhooks its member events.
	if e.getenv("GATEWAY_EVENT_CONSUMERS") == "" {
		cfg.EventConsumers = "presence,history,webhooks,metrics,users"
	}
	pcfg, err := presenceconfig.Load()
	if err != nil {
		return fail(err)
	}
	if e.getenv("PRESENCE_ADDR") == "" {
		pcfg.Addr = "127.0.0.1:0" // its health port is secondary here: never collide
	}
	if e.getenv("PRESENCE_EVENT_CONSUMERS") == "" {
		pcfg.EventConsumers = "webhooks,metrics"
	}
	pcfg.NodeID = cfg.NodeID + "-presence"
	hcfg, err := historyConfig(ctx, e, acfg.ServiceToken, *database)
	if err != nil {
		return fail(err)
	}
	hcfg.NodeID = cfg.NodeID + "-history"
	wcfg, err := webhooksConfig(ctx, e, dev, *database)
	if err != nil {
		return fail(err)
	}
	wcfg.NodeID = cfg.NodeID + "-webhooks"
	mcfg, err := metricsConfig(ctx, e, *database)
	if err != nil {
		return fail(err)
	}
	mcfg.NodeID = cfg.NodeID + "-metrics"

	var devKey string
	err = supervise(ctx, []service{
		{name: "auth", run: func(ctx context.Context, _ map[string]net.Addr, ready func(net.Addr)) error {
			return authapp.Run(ctx, acfg, log, ready)
		}, then: func(ctx context.Context, addr net.Addr) error {
			if cfg.Keys != "" {
				return nil
			}
			// The development key lives in the auth service, like any app's
			// keys: the gateway and webhooks learn it from the key feed.
			devKey, err = ensureDevKey(ctx, "http://"+addr.String(), acfg.AdminToken, *keyFile)
			return err
		}},
		{name: "presence", run: func(ctx context.Context, _ map[string]net.Addr, ready func(net.Addr)) error {
			return presenceapp.Run(ctx, pcfg, log, ready)
		}},
		{name: "history", run: func(ctx context.Context, _ map[string]net.Addr, ready func(net.Addr)) error {
			return historyapp.Run(ctx, hcfg, log, ready)
		}},
		{name: "webhooks", run: func(ctx context.Context, up map[string]net.Addr, ready func(net.Addr)) error {
			if wcfg.AuthURL == "" && wcfg.Keys == "" {
				wcfg.AuthURL, wcfg.ServiceToken = "http://"+up["auth"].String(), acfg.ServiceToken
			}
			if err := wcfg.Validate(); err != nil {
				return err
			}
			return webhooksapp.Run(ctx, wcfg, log, ready)
		}},
		{name: "metrics", run: func(ctx context.Context, up map[string]net.Addr, ready func(net.Addr)) error {
			if mcfg.AuthURL == "" && mcfg.Keys == "" {
				mcfg.AuthURL, mcfg.ServiceToken = "http://"+up["auth"].String(), acfg.ServiceToken
			}
			if err := mcfg.Validate(); err != nil {
				return err
			}
			return metricsapp.Run(ctx, mcfg, log, ready)
		}},
		{name: "gateway", run: func(ctx context.Context, up map[string]net.Addr, ready func(net.Addr)) error {
			authURL := "http://" + up["auth"].String()
			if cfg.AuthURL == "" {
				cfg.AuthURL, cfg.ServiceToken = authURL, acfg.ServiceToken
			}
			if cfg.HistoryURL == "" {
				cfg.HistoryURL = "http://" + up["history"].String()
			}
			return app.Run(ctx, cfg, log, ready)
		}},
	}, func(addrs map[string]net.Addr) { printBanner(e, addrs, devKey, acfg.AdminToken) })
	if err != nil {
		return fail(err)
	}
	return exitOK
}

// service is one platform service that `roomcast run` hosts.
type service struct {
	name string
	// run serves until ctx ends and calls ready with its HTTP address once
	// it serves; up holds the addresses of the services started before it.
	run func(ctx context.Context, up map[string]net.Addr, ready func(net.Addr)) error
	// then, if set, runs once the service serves, before the next starts.
	then func(ctx context.Context, addr net.Addr) error
}

// supervise starts the services in order, each once the one before serves,
// and runs them until ctx ends or one fails (which stops the others). Once
// all serve it calls up with their addresses. It returns the first failure.
func supervise(ctx context.Context, services []service, up func(map[string]net.Addr)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	addrs := map[string]net.Addr{}
	errCh := make(chan error, len(services))
	running := 0
	var first error
	record := func(err error) {
		running--
		if err != nil && first == nil {
			first = err
		}
		cancel() // one service ended: stop the rest
	}
	for _, s := range services {
		readyCh := make(chan net.Addr, 1)
		prev := maps.Clone(addrs)
		running++
		go func() {
			err := s.run(ctx, prev, func(a net.Addr) { readyCh <- a })
			if err != nil {
				err = fmt.Errorf("%s: %w", s.name, err)
			}
			errCh <- err
		}()
		select {
		case a := <-readyCh:
			addrs[s.name] = a
			if s.then == nil {
				continue
			}
			err := s.then(ctx, a)
			if err == nil {
				continue
			}
			first = fmt.Errorf("%s: %w", s.name, err)
			cancel()
		case err := <-errCh:
			record(err)
		}
		break
	}
	if first == nil && ctx.Err() == nil {
		up(addrs)
	}
	for running > 0 {
		record(<-errCh)
	}
	return first
}

func printBanner(e *env, addrs map[string]net.Addr, key, adminToken string) {
	a := addrs["gateway"]
	host := "localhost"
	port := a.String()
	if ta, ok := a.(*net.TCPAddr); ok {
		port = fmt.Sprint(ta.Port)
		if !ta.IP.IsUnspecified() {
			host = ta.IP.String()
		}
	}
	base := net.JoinHostPort(host, port)
	var b strings.Builder
	fmt.Fprintf(&b, "\nRoomcast is running.\n\n")
	fmt.Fprintf(&b, "  WebSocket:  ws://%s/v1/connect\n", base)
	fmt.Fprintf(&b, "  REST:       http://%s/v1/messages\n", base)
	fmt.Fprintf(&b, "  Health:     http://%s/healthz   http://%s/readyz   http://%s/metrics\n", base, base, base)
	fmt.Fprintf(&b, "  Auth:       http://%s   (admin credential: %s)\n", addrs["auth"], adminToken)
	fmt.Fprintf(&b, "  Webhooks:   http://%s/v1/webhooks/endpoints   (private addresses allowed: local development)\n", addrs["webhooks"])
	fmt.Fprintf(&b, "  Usage:      http://%s/v1/apps/dev/stats\n", addrs["metrics"])
	fmt.Fprintf(&b, "  Metrics:    presence http://%s/metrics   history http://%s/metrics   usage http://%s/metrics\n", addrs["presence"], addrs["history"], addrs["metrics"])
	self := selfCommand()
	if key != "" {
		fmt.Fprintf(&b, "  Dev key:    %s\n", key)
		fmt.Fprintf(&b, "\n  Try it, in two terminals:\n")
		fmt.Fprintf(&b, "    %s sub --url ws://%s/v1/connect --key '%s' lobby\n", self, base, key)
		fmt.Fprintf(&b, "    %s pub --url ws://%s/v1/connect --key '%s' lobby '{\"hello\":\"world\"}'\n", self, base, key)
	}
	fmt.Fprintf(&b, "\n  Manage apps and keys:\n")
	fmt.Fprintf(&b, "    %s keys list --app dev --auth-url http://%s --admin-token '%s'\n", self, addrs["auth"], adminToken)
	fmt.Fprintf(&b, "\n  Ctrl-C stops it.\n\n")
	_, _ = fmt.Fprint(e.stdout, b.String())
}

// selfCommand is how the user can run this binary again: the path it was
// started with, or "go run ./cmd/roomcast" when go run built it in a
// temporary directory.
func selfCommand() string {
	p := os.Args[0]
	if strings.Contains(p, "go-build") {
		return "go run ./cmd/roomcast"
	}
	if !strings.ContainsRune(p, filepath.Separator) {
		return p // found on PATH
	}
	return p
}

func defaultDevKeyFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "roomcast", "dev-key")
}
