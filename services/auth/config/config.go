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

	"github.com/roomcast/roomcast/pkg/clientip"
	pkgconfig "github.com/roomcast/roomcast/pkg/config"
	"github.com/roomcast/roomcast/services/auth/internal/abuse"
	"github.com/roomcast/roomcast/services/auth/internal/accounts"
	"github.com/roomcast/roomcast/services/auth/internal/mail"
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
	// OAuthLimitIP bounds the OAuth starts and callbacks per client IP
	// ("N/period"; "0": none): each start keeps a state in Redis.
	OAuthLimitIP string `env:"AUTH_OAUTH_LIMIT_IP" envDefault:"60/1m"`

	// End-user accounts (docs/users-api.md). Email codes expire after
	// UserCodeTTL and are void after UserCodeAttempts wrong tries; an
	// mfa_token waits UserMFATokenTTL for its second factor.
	UserCodeTTL      time.Duration `env:"AUTH_USER_CODE_TTL" envDefault:"10m"`
	UserCodeAttempts int           `env:"AUTH_USER_CODE_ATTEMPTS" envDefault:"5"`
	UserMFATokenTTL  time.Duration `env:"AUTH_USER_MFA_TOKEN_TTL" envDefault:"5m"`
	// UserLimit* are the abuse limits, "N/period" (e.g. "10/1m"; "0": none).
	UserLimitSignInAccount string `env:"AUTH_USER_LIMIT_SIGNIN_ACCOUNT" envDefault:"10/1m"`
	UserLimitSignInIP      string `env:"AUTH_USER_LIMIT_SIGNIN_IP" envDefault:"30/1m"`
	UserLimitCodeAccount   string `env:"AUTH_USER_LIMIT_CODE_ACCOUNT" envDefault:"10/1m"`
	UserLimitCodeIP        string `env:"AUTH_USER_LIMIT_CODE_IP" envDefault:"30/1m"`
	UserLimitMailAccount   string `env:"AUTH_USER_LIMIT_MAIL_ACCOUNT" envDefault:"3/1m"`
	UserLimitMailIP        string `env:"AUTH_USER_LIMIT_MAIL_IP" envDefault:"30/1m"`
	UserLimitSignupIP      string `env:"AUTH_USER_LIMIT_SIGNUP_IP" envDefault:"10/1h"`
	UserLimitRefreshIP     string `env:"AUTH_USER_LIMIT_REFRESH_IP" envDefault:"60/1m"`
	// CORSOrigins lists the origins (scheme://host[:port], comma-separated,
	// or *) whose pages may call the end-user endpoints from the browser.
	// Empty: no CORS headers; serve the pages and the auth service from one
	// origin (a reverse proxy) instead.
	CORSOrigins string `env:"AUTH_CORS_ORIGINS"`
	// TrustedProxies lists the CIDRs of proxies in front of the service
	// (comma-separated): for their requests the client IP is the rightmost
	// X-Forwarded-For entry that is not a trusted proxy.
	TrustedProxies string `env:"AUTH_TRUSTED_PROXIES"`
	// UserOnline serves the "users" events consumer (gateways with users
	// in GATEWAY_EVENT_CONSUMERS), for users' online status.
	UserOnline bool `env:"AUTH_USER_ONLINE" envDefault:"true"`

	// Mail is the sender of end-user mails: "log" (development: logs the
	// code and link) or "smtp" (SMTPURL, MailFrom). MailLink is the link
	// mails carry, with {app}, {purpose}, {email} and {code} replaced.
	Mail     string `env:"AUTH_MAIL" envDefault:"log"`
	SMTPURL  string `env:"AUTH_SMTP_URL"`
	MailFrom string `env:"AUTH_MAIL_FROM"`
	MailLink string `env:"AUTH_MAIL_LINK"`

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
	if _, err := abuse.ParseRate(c.OAuthLimitIP); err != nil {
		return fmt.Errorf("config: AUTH_OAUTH_LIMIT_IP: %w", err)
	}
	if c.UserCodeTTL < time.Minute || c.UserCodeAttempts < 1 || c.UserMFATokenTTL < 30*time.Second {
		return errors.New("config: need AUTH_USER_CODE_TTL >= 1m, AUTH_USER_CODE_ATTEMPTS >= 1, AUTH_USER_MFA_TOKEN_TTL >= 30s")
	}
	if _, err := c.UserLimits(); err != nil {
		return err
	}
	if _, err := c.ParseCORSOrigins(); err != nil {
		return fmt.Errorf("config: AUTH_CORS_ORIGINS: %w", err)
	}
	if _, err := clientip.Parse(c.TrustedProxies); err != nil {
		return fmt.Errorf("config: AUTH_TRUSTED_PROXIES: %w", err)
	}
	switch c.Mail {
	case "log":
	case "smtp":
		if _, err := mail.NewSMTP(c.SMTPURL, c.MailFrom); err != nil {
			return fmt.Errorf("config: AUTH_MAIL=smtp: %w", err) // never quotes the URL, which holds a password
		}
	default:
		return errors.New(`config: AUTH_MAIL must be "log" or "smtp"`)
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("config: AUTH_SHUTDOWN_TIMEOUT must be positive")
	}
	return nil
}

// UserLimits parses the AUTH_USER_LIMIT_* variables.
func (c *Config) UserLimits() (accounts.Limits, error) {
	var l accounts.Limits
	for _, f := range []struct {
		env string
		val string
		dst *abuse.Rate
	}{
		{"AUTH_USER_LIMIT_SIGNIN_ACCOUNT", c.UserLimitSignInAccount, &l.SignInAccount},
		{"AUTH_USER_LIMIT_SIGNIN_IP", c.UserLimitSignInIP, &l.SignInIP},
		{"AUTH_USER_LIMIT_CODE_ACCOUNT", c.UserLimitCodeAccount, &l.CodeAccount},
		{"AUTH_USER_LIMIT_CODE_IP", c.UserLimitCodeIP, &l.CodeIP},
		{"AUTH_USER_LIMIT_MAIL_ACCOUNT", c.UserLimitMailAccount, &l.MailAccount},
		{"AUTH_USER_LIMIT_MAIL_IP", c.UserLimitMailIP, &l.MailIP},
		{"AUTH_USER_LIMIT_SIGNUP_IP", c.UserLimitSignupIP, &l.SignupIP},
		{"AUTH_USER_LIMIT_REFRESH_IP", c.UserLimitRefreshIP, &l.RefreshIP},
	} {
		r, err := abuse.ParseRate(f.val)
		if err != nil {
			return accounts.Limits{}, fmt.Errorf("config: %s: %w", f.env, err)
		}
		*f.dst = r
	}
	return l, nil
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

// ParseCORSOrigins parses AUTH_CORS_ORIGINS: "*" or comma-separated origins
// (scheme://host[:port], nothing else).
func (c *Config) ParseCORSOrigins() ([]string, error) {
	var out []string
	for o := range strings.SplitSeq(c.CORSOrigins, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
				return nil, fmt.Errorf("%q is not an origin like https://app.example.com", o)
			}
		}
		out = append(out, o)
	}
	return out, nil
}
