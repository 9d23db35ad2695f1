package config

import (
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/config/configdoc"
)

// TestOperationsDocListsEveryVariable keeps the history table of
// docs/operations.md equal to what the service reads.
func TestOperationsDocListsEveryVariable(t *testing.T) {
	for _, err := range configdoc.Check("../../../docs/operations.md", "history-env", Config{}) {
		t.Error(err)
	}
}

func valid() Config {
	return Config{DatabaseURL: "postgres://x", Retention: 24 * time.Hour, RetentionInterval: time.Minute,
		RetentionBatch: 10, Concurrency: 1, BatchSize: 10, BatchWait: time.Second, BatchMaxWait: time.Second,
		PollInterval: time.Second, ShutdownTimeout: time.Second}
}

func TestRetentionRules(t *testing.T) {
	c := valid()
	c.Shards = 1
	c.RetentionRules = `[{"app":"long","retention":"720h"},{"app":"short","retention":"2s"}]`
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.RetentionFor("long") != 720*time.Hour || c.RetentionFor("short") != 2*time.Second || c.RetentionFor("other") != 24*time.Hour {
		t.Fatalf("rules %v", c.rules)
	}
	for rules, want := range map[string]string{
		`[{"app":"a","retention":"721h"}]`:                            "from 1s to 720h",
		`[{"app":"","retention":"1h"}]`:                               "app is empty",
		`[{"app":"a","retention":"soon"}]`:                            "must be a duration",
		`[{"app":"a","retention":"1h"},{"app":"a","retention":"2h"}]`: "listed twice",
		`[{"app":"a","ttl":"1h"}]`:                                    "unknown field",
		`{"app":"a"}`:                                                 "HISTORY_RETENTION_RULES",
	} {
		c := valid()
		c.Shards = 1
		c.RetentionRules = rules
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want %q", rules, err, want)
		}
	}
	c = valid()
	c.Shards = 1
	c.Retention = 31 * 24 * time.Hour
	if err := c.Validate(); err == nil {
		t.Error("HISTORY_RETENTION of 31 days accepted")
	}
}
