package config

import (
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/config/configdoc"
)

// TestOperationsDocListsEveryVariable keeps the metrics table of
// docs/operations.md equal to what the service reads.
func TestOperationsDocListsEveryVariable(t *testing.T) {
	for _, err := range configdoc.Check("../../../docs/operations.md", "metrics-env", Config{}) {
		t.Error(err)
	}
}

func TestValidate(t *testing.T) {
	valid := func() Config {
		c := Config{DatabaseURL: "postgres://x", KeysRefresh: time.Second, Concurrency: 1, PollInterval: time.Second,
			DedupeWindow: time.Hour, MaxBuckets: 10, ShutdownTimeout: time.Second, SweepInterval: time.Second}
		c.Shards = 1
		return c
	}
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"METRICS_DATABASE_URL":   func(c *Config) { c.DatabaseURL = "" },
		"METRICS_CONCURRENCY":    func(c *Config) { c.Concurrency = 0 },
		"METRICS_DEDUPE_WINDOW":  func(c *Config) { c.DedupeWindow = 0 },
		"METRICS_SWEEP_INTERVAL": func(c *Config) { c.SweepInterval = 0 },
		"ROOMCAST_SERVICE_TOKEN": func(c *Config) { c.AuthURL = "http://auth" },
		"ROOMCAST_KEYS":          func(c *Config) { c.Keys = "not a key" },
	} {
		c := valid()
		mut(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}
