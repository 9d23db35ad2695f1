package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	pkgconfig "github.com/roomcast/roomcast/pkg/config"
	authconfig "github.com/roomcast/roomcast/services/auth/config"
	historyconfig "github.com/roomcast/roomcast/services/history/config"
	metricsconfig "github.com/roomcast/roomcast/services/metrics/config"
	webhooksconfig "github.com/roomcast/roomcast/services/webhooks/config"
)

// What `roomcast run` keeps between starts for local development: the auth
// service's credentials (so keys and tokens made before a restart keep
// working) and the development API key.

// devCredentials are generated on first start and kept (mode 0600) next to
// the dev key file.
type devCredentials struct {
	AdminToken   string `json:"admin_token"`
	MasterKey    string `json:"master_key"`
	ServiceToken string `json:"service_token"`
	// WebhooksMasterKey came later: files written before have none and get
	// one on the next start.
	WebhooksMasterKey string `json:"webhooks_master_key,omitempty"`
}

func loadOrCreateDevCredentials(path string) (devCredentials, error) {
	var c devCredentials
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &c); err != nil {
			return c, fmt.Errorf("dev credentials %s: %w", path, err)
		}
		if c.WebhooksMasterKey != "" {
			return c, nil
		}
		c.WebhooksMasterKey = randomHex(32)
	case errors.Is(err, fs.ErrNotExist):
		c = devCredentials{AdminToken: randomHex(24), MasterKey: randomHex(32), ServiceToken: randomHex(24), WebhooksMasterKey: randomHex(32)}
	default:
		return c, fmt.Errorf("dev credentials: %w", err)
	}
	b, _ = json.MarshalIndent(c, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return c, fmt.Errorf("dev credentials: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return c, fmt.Errorf("dev credentials: %w", err)
	}
	return c, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// authConfig is the auth service's configuration for a local run: the
// environment's, with the development credentials and database where the
// environment sets none.
func authConfig(ctx context.Context, e *env, dev devCredentials, database string) (*authconfig.Config, error) {
	var c authconfig.Config
	if err := pkgconfig.Load(&c); err != nil {
		return nil, err
	}
	if c.AdminToken == "" {
		c.AdminToken = dev.AdminToken
	}
	if c.MasterKey == "" {
		c.MasterKey = dev.MasterKey
	}
	if c.ServiceToken == "" {
		c.ServiceToken = dev.ServiceToken
	}
	if e.getenv("AUTH_ADDR") == "" {
		c.Addr = "127.0.0.1:8081" // where `roomcast apps|keys` look by default
	}
	if err := localDatabase(ctx, e, "AUTH_DATABASE_URL", database, "auth", &c.DatabaseURL); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// localDatabase points a service at its own database (named after the
// base URL's, created if missing) unless its own variable is set.
func localDatabase(ctx context.Context, e *env, envVar, base, svc string, dst *string) error {
	if e.getenv(envVar) == "" {
		u, err := serviceDatabase(base, svc)
		if err != nil {
			return err
		}
		*dst = u
	}
	return ensureDatabase(ctx, *dst)
}

// serviceDatabase names a service's database after the base URL's:
// ".../roomcast" → ".../roomcast_auth".
func serviceDatabase(base, svc string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Path == "" || u.Path == "/" {
		return "", fmt.Errorf("ROOMCAST_DATABASE_URL %q: need a postgres:// URL with a database name", redactURL(base))
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "_" + svc
	return u.String(), nil
}

// ensureDatabase creates the URL's database if it does not exist, through
// the server's "postgres" database.
func ensureDatabase(ctx context.Context, dbURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u, err := url.Parse(dbURL)
	if err != nil {
		return fmt.Errorf("database URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("PostgreSQL at %s: %w", redactURL(dbURL), err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// ensureDevKey returns the development API key: the one in keyFile if the
// auth service still has it active, else a new key of app "dev" (created
// if missing) with every operation on every room, written to keyFile.
func ensureDevKey(ctx context.Context, authURL, adminToken, keyFile string) (string, error) {
	ac := &adminClient{base: authURL, token: adminToken, http: &http.Client{Timeout: 10 * time.Second}}
	keysPath := "/admin/v1/apps/dev/keys"
	if b, err := os.ReadFile(keyFile); err == nil {
		if k, err := token.ParseAPIKey(strings.TrimSpace(string(b))); err == nil && k.App == "dev" {
			var keys authapi.Keys
			if err := ac.call(ctx, http.MethodGet, keysPath, nil, &keys); err == nil {
				for _, have := range keys.Keys {
					if have.ID == k.ID && have.RevokedAt == nil && (have.ExpiresAt == nil || have.ExpiresAt.After(time.Now())) {
						return k.String(), nil
					}
				}
			}
		}
	}
	var app authapi.App
	err := ac.call(ctx, http.MethodPost, "/admin/v1/apps", authapi.CreateApp{ID: "dev", Name: "Development"}, &app)
	var ae *adminError
	if err != nil && !(errors.As(err, &ae) && ae.Code == authapi.CodeConflict) {
		return "", fmt.Errorf("create dev app: %w", err)
	}
	var k authapi.Key
	all := token.Capabilities{"*": token.Ops}
	if err := ac.call(ctx, http.MethodPost, keysPath, authapi.CreateKey{Name: "roomcast run", Caps: all}, &k); err != nil {
		return "", fmt.Errorf("create dev key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		return "", fmt.Errorf("dev key file: %w", err)
	}
	if err := os.WriteFile(keyFile, []byte(k.APIKey+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("dev key file: %w", err)
	}
	return k.APIKey, nil
}

// historyConfig is the history service's configuration for a local run.
func historyConfig(ctx context.Context, e *env, serviceToken, database string) (*historyconfig.Config, error) {
	var c historyconfig.Config
	if err := pkgconfig.Load(&c); err != nil {
		return nil, err
	}
	if c.ServiceToken == "" {
		c.ServiceToken = serviceToken
	}
	if e.getenv("HISTORY_ADDR") == "" {
		c.Addr = "127.0.0.1:0"
	}
	if err := localDatabase(ctx, e, "HISTORY_DATABASE_URL", database, "history", &c.DatabaseURL); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// webhooksConfig is the webhooks service's configuration for a local run:
// private endpoint addresses are allowed (a local receiver is the point).
func webhooksConfig(ctx context.Context, e *env, dev devCredentials, database string) (*webhooksconfig.Config, error) {
	var c webhooksconfig.Config
	if err := pkgconfig.Load(&c); err != nil {
		return nil, err
	}
	if c.MasterKey == "" {
		c.MasterKey = dev.WebhooksMasterKey
	}
	if e.getenv("WEBHOOKS_ADDR") == "" {
		c.Addr = "127.0.0.1:8084"
	}
	if e.getenv("WEBHOOKS_ALLOW_PRIVATE") == "" {
		c.AllowPrivate = true
	}
	if err := localDatabase(ctx, e, "WEBHOOKS_DATABASE_URL", database, "webhooks", &c.DatabaseURL); err != nil {
		return nil, err
	}
	return &c, nil // validated by Run once the auth service's URL is known
}

// metricsConfig is the metrics service's configuration for a local run.
func metricsConfig(ctx context.Context, e *env, database string) (*metricsconfig.Config, error) {
	var c metricsconfig.Config
	if err := pkgconfig.Load(&c); err != nil {
		return nil, err
	}
	if e.getenv("METRICS_ADDR") == "" {
		c.Addr = "127.0.0.1:8085"
	}
	if err := localDatabase(ctx, e, "METRICS_DATABASE_URL", database, "metrics", &c.DatabaseURL); err != nil {
		return nil, err
	}
	return &c, nil // validated once the auth service's URL is known
}
