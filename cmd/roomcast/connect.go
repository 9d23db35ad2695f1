package main

import (
	"context"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/sdk/client"
)

const (
	defaultURL      = "ws://127.0.0.1:8080/v1/connect"
	defaultClientID = "roomcast-cli"
)

// connFlags are the flags sub and pub share: where to connect and how to
// authenticate.
type connFlags struct {
	url     *string
	token   *string
	key     *string
	client  *string
	ttl     *time.Duration
	timeout *time.Duration
}

func addConnFlags(fs *flagSet, defaultTTL time.Duration) *connFlags {
	f := &connFlags{
		url:    fs.String("url", defaultURL, "gateway WebSocket `URL` (env ROOMCAST_URL)"),
		token:  fs.String("token", "", "client `token` (JWT) to connect with (env ROOMCAST_TOKEN); or use --key"),
		key:    fs.String("key", "", "API key `<app>.<keyId>:<secret>` to mint a short-lived token with, for development (env ROOMCAST_KEY)"),
		client: fs.String("client", defaultClientID, "client `id` of the token minted with --key (env ROOMCAST_CLIENT_ID)"),
		ttl:    fs.Duration("ttl", defaultTTL, "lifetime of the token minted with --key; the gateway closes the connection when it expires"),
		timeout: fs.Duration("timeout", 10*time.Second,
			"time limit for connecting and for each request"),
	}
	fs.env("url", "ROOMCAST_URL")
	fs.env("token", "ROOMCAST_TOKEN")
	fs.env("key", "ROOMCAST_KEY")
	fs.env("client", "ROOMCAST_CLIENT_ID")
	return f
}

// config returns the client configuration. With --key it mints a token
// allowing op on rooms. A --token or --key given on the command line beats
// one from the environment; two at the same level are a usage error.
func (f *connFlags) config(fs *flagSet, e *env, op token.Op, rooms []string) (client.Config, int, bool) {
	cfg := client.Config{URL: *f.url}
	useToken, useKey := *f.token != "", *f.key != ""
	if useToken && useKey {
		tokExplicit, keyExplicit := fs.explicit("token"), fs.explicit("key")
		switch {
		case tokExplicit && !keyExplicit:
			useKey = false
		case keyExplicit && !tokExplicit:
			useToken = false
		default:
			return cfg, fs.usageError(e, "give --token or --key, not both"), false
		}
	}
	switch {
	case useToken:
		cfg.Token = *f.token
	case useKey:
		k, code, ok := parseKey(fs, e, *f.key)
		if !ok {
			return cfg, code, false
		}
		caps := make(token.Capabilities, len(rooms))
		for _, r := range rooms {
			caps[r] = []token.Op{op}
		}
		tok, err := token.Mint(k, *f.client, caps, *f.ttl, e.now())
		if err != nil {
			return cfg, fs.usageError(e, "%v", err), false
		}
		cfg.Token = tok
	default:
		return cfg, fs.usageError(e, "--token or --key is required (or ROOMCAST_TOKEN / ROOMCAST_KEY)"), false
	}
	return cfg, 0, true
}

// dial connects within --timeout.
func (f *connFlags) dial(ctx context.Context, cfg client.Config) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	return client.Dial(ctx, cfg)
}
