package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
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
	}
	for name, mutate := range bad {
		c := valid()
		mutate(&c)
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for _, secret := range []string{c.AdminToken, c.ServiceToken, c.MasterKey} {
			if len(secret) > 4 && strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error quotes a secret: %v", name, err)
			}
		}
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
	doc, err := os.ReadFile("../../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	section := regexp.MustCompile("(?s)<!-- auth-env:begin -->(.*)<!-- auth-env:end -->").FindSubmatch(doc)
	if section == nil {
		t.Fatal("docs/operations.md has no auth-env section")
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(section[1]), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if strings.HasPrefix(name, "ROOMCAST_") || strings.HasPrefix(name, "AUTH_") {
			rows[name] = strings.Trim(strings.TrimSpace(cells[2]), "`")
		}
	}
	typ := reflect.TypeOf(Config{})
	seen := map[string]bool{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name := f.Tag.Get("env")
		if name == "" {
			continue
		}
		seen[name] = true
		want := f.Tag.Get("envDefault")
		if want == "" {
			want = "(empty)"
		}
		got, ok := rows[name]
		switch {
		case !ok:
			t.Errorf("docs/operations.md auth table lacks %s", name)
		case got != want:
			t.Errorf("docs/operations.md says %s defaults to %q; the code says %q", name, got, want)
		}
	}
	for name := range rows {
		if !seen[name] {
			t.Errorf("docs/operations.md auth table lists %s, which the auth service does not read", name)
		}
	}
}
