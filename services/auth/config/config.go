// Package config is the auth service's configuration, read from the
// environment, with the documented default in each envDefault tag
// (docs/operations.md lists them; a test keeps the two in step).
package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	pkgconfig "github.com/roomcast/roomcast/pkg/config"
)

// MinCredentialBytes is the shortest admin or service credential accepted:
// shorter ones could be guessed.
const MinCredentialBytes = 16

// Config is the auth service configuration.
type Config struct {
	// Addr is the listen address for the API, health and metrics. Port 0
	// picks a free port; the chosen address is logged as "listening".
	Addr string `env:"AUTH_ADDR" envDefault:":8081"`
	// DatabaseURL locates PostgreSQL (apps, keys, signing keys).
	DatabaseURL string `env:"AUTH_DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/roomcast?sslmode=disable"`
	// AdminToken guards the admin API (apps, keys, signing keys). Required.
	AdminToken string `env:"AUTH_ADMIN_TOKEN"`
	// MasterKey encrypts key secrets and signing keys at rest
	// (AES-256-GCM): 32 bytes, as 64 hex characters or base64. Required;
	// losing it makes every stored secret unreadable.
	MasterKey string `env:"AUTH_MASTER_KEY"`
	// ServiceToken is the credential gateways present to fetch API keys
	// (GET /internal/v1/keys). Empty disables the endpoint.
	ServiceToken string `env:"ROOMCAST_SERVICE_TOKEN"`

	// TokenDefaultTTL and TokenMaxTTL bound the tokens of POST /v1/tokens.
	TokenDefaultTTL time.Duration `env:"AUTH_TOKEN_DEFAULT_TTL" envDefault:"1h"`
	TokenMaxTTL     time.Duration `env:"AUTH_TOKEN_MAX_TTL" envDefault:"24h"`
	// SigningKeyRotation is how old the active signing key may get before
	// the service rotates it by itself; 0 rotates only on request.
	SigningKeyRotation time.Duration `env:"AUTH_SIGNING_KEY_ROTATION" envDefault:"720h"`
	// SigningKeyOverlap is how long a replaced signing key stays in the
	// JWKS: at least AUTH_TOKEN_MAX_TTL, so the tokens it signed keep
	// verifying until they expire.
	SigningKeyOverlap time.Duration `env:"AUTH_SIGNING_KEY_OVERLAP" envDefault:"25h"`

	// RedisURL and RedisPrefix locate the Redis on which key changes are
	// announced to gateways (channel <prefix>auth:keys). Without Redis,
	// gateways still learn of changes by polling.
	RedisURL    string `env:"ROOMCAST_REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	RedisPrefix string `env:"ROOMCAST_REDIS_PREFIX" envDefault:"rc:"`

	// PublicURL is the service's base URL as browsers and OAuth providers
	// reach it (e.g. https://auth.example.com): the OAuth callback
	// <PublicURL>/v1/apps/{app}/auth/oauth/{provider}/callback is under it.
	// Empty: taken from each request's Host (development only).
	PublicURL string `env:"AUTH_PUBLIC_URL"`
	// OAuthStateTTL is how long an OAuth sign-in may take between start
	// and callback.
	OAuthStateTTL time.Duration `env:"AUTH_OAUTH_STATE_TTL" envDefault:"10m"`

	// ShutdownTimeout bounds a graceful stop on SIGTERM.
	ShutdownTimeout time.Duration `env:"AUTH_SHUTDOWN_TIMEOUT" envDefault:"10s"`
	// LogLevel is debug, info, warn or error; LogFormat json or text.
	LogLevel  string `env:"ROOMCAST_LOG_LEVEL" envDefault:"info"`
	LogFormat string `env:"ROOMCAST_LOG_FORMAT" envDefault:"json"`
}

// Logging returns the log format and level (pkg/service.Config).
func (c *Config) Logging() (format, level string) { return c.LogFormat, c.LogLevel }

// Load reads the configuration from the environment and validates it.
func Load() (*Config, error) { return pkgconfig.LoadValid[Config]() }

// Validate checks the configuration. Errors never quote a secret.
func (c *Config) Validate() error {
	if len(c.AdminToken) < MinCredentialBytes {
		return fmt.Errorf("config: AUTH_ADMIN_TOKEN is required, at least %d characters", MinCredentialBytes)
	}
	if c.ServiceToken != "" && len(c.ServiceToken) < MinCredentialBytes {
		return fmt.Errorf("config: ROOMCAST_SERVICE_TOKEN must be at least %d characters", MinCredentialBytes)
	}
	if _, err := c.ParseMasterKey(); err != nil {
		return err
	}
	if c.TokenDefaultTTL < time.Second || c.TokenMaxTTL < c.TokenDefaultTTL {
		return errors.New("config: need 1s <= AUTH_TOKEN_DEFAULT_TTL <= AUTH_TOKEN_MAX_TTL")
	}
	if c.SigningKeyRotation < 0 {
		return errors.New("config: AUTH_SIGNING_KEY_ROTATION must not be negative")
	}
	if c.SigningKeyOverlap < c.TokenMaxTTL {
		return fmt.Errorf("config: AUTH_SIGNING_KEY_OVERLAP (%s) must be at least AUTH_TOKEN_MAX_TTL (%s), or tokens would outlive their key", c.SigningKeyOverlap, c.TokenMaxTTL)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return errors.New("config: AUTH_PUBLIC_URL must be an http(s) URL without query or fragment, e.g. https://auth.example.com")
		}
	}
	if c.OAuthStateTTL < time.Minute || c.OAuthStateTTL > time.Hour {
		return errors.New("config: AUTH_OAUTH_STATE_TTL must be between 1m and 1h")
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("config: AUTH_SHUTDOWN_TIMEOUT must be positive")
	}
	return nil
}

// ParseMasterKey decodes AUTH_MASTER_KEY: 64 hex characters or the base64
// (standard or URL alphabet, padded or not) of 32 bytes.
func (c *Config) ParseMasterKey() ([]byte, error) {
	s := strings.TrimSpace(c.MasterKey)
	if s == "" {
		return nil, errors.New("config: AUTH_MASTER_KEY is required (32 bytes, hex or base64; e.g. `openssl rand -hex 32`)")
	}
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("config: AUTH_MASTER_KEY must be 32 bytes as 64 hex characters or base64")
}
