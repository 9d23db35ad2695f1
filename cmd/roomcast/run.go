package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/observability"
	"github.com/roomcast/roomcast/services/gateway/app"
	"github.com/roomcast/roomcast/services/gateway/config"
	presenceapp "github.com/roomcast/roomcast/services/presence/app"
	presenceconfig "github.com/roomcast/roomcast/services/presence/config"
)

// runRun starts the platform in this process for local development.
func runRun(ctx context.Context, args []string, e *env) int {
	fs := newFlagSet("run", "roomcast run [flags]",
		"Run the Roomcast platform in one process for local development, against the\n"+
			"Redis and RabbitMQ named by ROOMCAST_REDIS_URL and ROOMCAST_AMQP_URL (default:\n"+
			"localhost). Every gateway variable of docs/operations.md applies. Without\n"+
			"ROOMCAST_KEYS a development API key is created on first start, kept in\n"+
			"--dev-key-file and printed. Ctrl-C stops it cleanly.")
	addr := fs.String("addr", "", "listen address (env GATEWAY_ADDR; default :8080)")
	keyFile := fs.String("dev-key-file", defaultDevKeyFile(), "where the development API key is kept (env ROOMCAST_DEV_KEY_FILE)")
	fs.env("addr", "GATEWAY_ADDR")
	fs.env("dev-key-file", "ROOMCAST_DEV_KEY_FILE")
	if code, ok := fs.parse(args, e); !ok {
		return code
	}
	if fs.NArg() != 0 {
		return fs.usageError(e, "run takes no arguments")
	}

	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(e.stderr, "roomcast run:", err)
		return exitError
	}
	if *addr != "" {
		cfg.Addr = *addr
	}
	var devKey *token.Key
	if cfg.Keys == "" {
		k, err := loadOrCreateDevKey(*keyFile)
		if err != nil {
			fmt.Fprintln(e.stderr, "roomcast run:", err)
			return exitError
		}
		devKey = &k
		cfg.Keys = k.String()
	}
	format := cfg.LogFormat
	if e.getenv("ROOMCAST_LOG_FORMAT") == "" {
		format = "text" // people read a local run's logs
	}
	log, err := observability.NewLogger(e.stderr, format, cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(e.stderr, "roomcast run:", err)
		return exitError
	}
	pcfg, err := presenceconfig.Load()
	if err != nil {
		fmt.Fprintln(e.stderr, "roomcast run:", err)
		return exitError
	}
	if e.getenv("PRESENCE_ADDR") == "" {
		pcfg.Addr = "127.0.0.1:0" // its health port is secondary here: never collide
	}
	pcfg.NodeID = cfg.NodeID + "-presence"
	_, err = supervise(ctx, []service{
		{name: "gateway", run: func(ctx context.Context, ready func(net.Addr)) error { return app.Run(ctx, cfg, log, ready) }},
		{name: "presence", run: func(ctx context.Context, ready func(net.Addr)) error {
			return presenceapp.Run(ctx, pcfg, log, ready)
		}},
	}, func(addrs map[string]net.Addr) { printBanner(e, addrs, devKey) })
	if err != nil {
		fmt.Fprintln(e.stderr, "roomcast run:", err)
		return exitError
	}
	return exitOK
}

// service is one platform service that `roomcast run` hosts.
type service struct {
	name string
	// run serves until ctx ends and calls ready with its HTTP address once
	// it serves.
	run func(ctx context.Context, ready func(net.Addr)) error
}

// supervise runs every service until ctx ends or one of them fails (which
// stops the others). Once all are serving it calls up with their
// addresses. It returns the first failure.
func supervise(ctx context.Context, services []service, up func(map[string]net.Addr)) (map[string]net.Addr, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type ready struct {
		name string
		addr net.Addr
	}
	readyCh := make(chan ready, len(services))
	errCh := make(chan error, len(services))
	for _, s := range services {
		go func() {
			err := s.run(ctx, func(a net.Addr) { readyCh <- ready{s.name, a} })
			if err != nil {
				err = fmt.Errorf("%s: %w", s.name, err)
			}
			errCh <- err
		}()
	}
	addrs := map[string]net.Addr{}
	var first error
	running := len(services)
	for running > 0 {
		select {
		case r := <-readyCh:
			addrs[r.name] = r.addr
			if len(addrs) == len(services) {
				up(addrs)
			}
		case err := <-errCh:
			running--
			if err != nil && first == nil {
				first = err
			}
			cancel() // one service ended: stop the rest
		}
	}
	return addrs, first
}

func printBanner(e *env, addrs map[string]net.Addr, key *token.Key) {
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
	fmt.Fprintf(&b, "  Presence:   http://%s/metrics\n", addrs["presence"])
	if key != nil {
		fmt.Fprintf(&b, "  Dev key:    %s\n", key.String())
		fmt.Fprintf(&b, "\n  Try it, in two terminals:\n")
		self := selfCommand()
		fmt.Fprintf(&b, "    %s sub --url ws://%s/v1/connect --key '%s' lobby\n", self, base, key.String())
		fmt.Fprintf(&b, "    %s pub --url ws://%s/v1/connect --key '%s' lobby '{\"hello\":\"world\"}'\n", self, base, key.String())
	}
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

// loadOrCreateDevKey reads the development key from path, creating it (mode
// 0600) on first use so a restarted `roomcast run` keeps accepting the
// tokens minted before.
func loadOrCreateDevKey(path string) (token.Key, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, perr := token.ParseAPIKey(strings.TrimSpace(string(b)))
		if perr != nil {
			return token.Key{}, fmt.Errorf("dev key file %s: %w", path, perr)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return token.Key{}, fmt.Errorf("dev key file: %w", err)
	}
	var secret [24]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return token.Key{}, err
	}
	k := token.Key{App: "dev", ID: "dev", Secret: []byte(hex.EncodeToString(secret[:]))}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return token.Key{}, fmt.Errorf("dev key file: %w", err)
	}
	if err := os.WriteFile(path, []byte(k.String()+"\n"), 0o600); err != nil {
		return token.Key{}, fmt.Errorf("dev key file: %w", err)
	}
	return k, nil
}
