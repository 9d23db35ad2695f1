package config

import (
	"strings"
	"testing"

	"github.com/roomcast/roomcast/pkg/config/configdoc"
)

func valid() Config {
	return Config{
		AdminToken:         "admin-token-0123456789",
		MasterKey:          strings.Repeat("ab", 32),
		TokenDefaultTTL:    3600e9,
		TokenMaxTTL:        86400e9,
		SigningKeyOverlap:  90000e9,
		SigningKeyRotation: 0,
		ShutdownTimeout:    1e9,
		OAuthStateTTL:      600e9,
		UserCodeTTL:        600e9,
		UserCodeAttempts:   5,
		UserMFATokenTTL:    300e9,
		UserLimitSignInIP:  "30/1m",
		Mail:               "log",
	}
}

func TestValidate(t *testing.T) {
	base := valid()
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(c *Config){
		"no admin token":        func(c *Config) { c.AdminToken = "" },
		"short admin token":     func(c *Config) { c.AdminToken = "short" },
		"short service token":   func(c *Config) { c.ServiceToken = "short" },
		"no master key":         func(c *Config) { c.MasterKey = "" },
		"short master key":      func(c *Config) { c.MasterKey = strings.Repeat("ab", 16) },
		"master key not hex":    func(c *Config) { c.MasterKey = strings.Repeat("zz", 32) },
		"default over max ttl":  func(c *Config) { c.TokenDefaultTTL = c.TokenMaxTTL + 1 },
		"overlap under max ttl": func(c *Config) { c.SigningKeyOverlap = c.TokenMaxTTL - 1 },
		"negative rotation":     func(c *Config) { c.SigningKeyRotation = -1 },
		"public URL not http":   func(c *Config) { c.PublicURL = "auth.example.com" },
		"public URL with query": func(c *Config) { c.PublicURL = "https://auth.example.com/?x=1" },
		"no oauth state ttl":    func(c *Config) { c.OAuthStateTTL = 0 },
		"bad oauth limit":       func(c *Config) { c.OAuthLimitIP = "ten" },
		"short code ttl":        func(c *Config) { c.UserCodeTTL = 1e9 },
		"no code attempts":      func(c *Config) { c.UserCodeAttempts = 0 },
		"bad limit":             func(c *Config) { c.UserLimitSignInIP = "lots" },
		"bad trusted proxy":     func(c *Config) { c.TrustedProxies = "proxy" },
		"CORS origin with path": func(c *Config) { c.CORSOrigins = "https://app.example.com/login" },
		"CORS origin no scheme": func(c *Config) { c.CORSOrigins = "app.example.com" },
		"unknown mail sender":   func(c *Config) { c.Mail = "pigeon" },
		"smtp without URL":      func(c *Config) { c.Mail = "smtp"; c.MailFrom = "a@b.c" },
		"smtp without from":     func(c *Config) { c.Mail = "smtp"; c.SMTPURL = "smtp://u:secretpw@mail:587" },
	}
	for name, mutate := range bad {
		c := valid()
		mutate(&c)
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for _, secret := range []string{c.AdminToken, c.ServiceToken, c.MasterKey, "secretpw"} {
			if len(secret) > 4 && strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error quotes a secret: %v", name, err)
			}
		}
	}
	ok := valid()
	ok.CORSOrigins = "https://app.example.com, http://localhost:5173"
	if got, err := ok.ParseCORSOrigins(); err != nil || len(got) != 2 || got[1] != "http://localhost:5173" {
		t.Errorf("CORS origins: %v, %v", got, err)
	}
	for _, mk := range []string{
		"q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=", // std base64
		"q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA",  // raw
	} {
		c := valid()
		c.MasterKey = mk
		if k, err := c.ParseMasterKey(); err != nil || len(k) != 32 {
			t.Errorf("master key %q: %v", mk, err)
		}
	}
}

// TestOperationsDocListsEveryVariable keeps docs/operations.md's auth table
// equal to the variables the service reads, defaults included.
func TestOperationsDocListsEveryVariable(t *testing.T) {
	for _, err := range configdoc.Check("../../../docs/operations.md", "auth-env", Config{}) {
		t.Error(err)
	}
}
