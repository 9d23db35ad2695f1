package config

import (
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/roomlog"
)

func valid() Config {
	var c Config
	c.Shards = 256
	c.MaxFrameBytes, c.MaxMessageBytes, c.MaxRoomNameBytes, c.MaxEventBytes, c.MaxRooms = 2048, 1024, 200, 128, 10
	c.RESTMaxBodyBytes = 1 << 20
	c.Burst, c.IPBurst, c.OutboxFrames, c.OutboxBytes, c.HeartbeatMisses = 10, 10, 10, 1024, 2
	c.Rate, c.IPRate, c.RedisBufferBytes, c.GCPercent = 10, 10, 4096, 100
	c.PublishBatch, c.MaxInflightPublishes = 256, 256
	c.HeartbeatInterval, c.DrainTimeout, c.PublishTimeout, c.GapWait, c.SessionTTL = time.Second, time.Second, time.Second, time.Millisecond, time.Minute
	c.EventConsumers, c.EventBuffer, c.PresenceGrace, c.PresenceNodeTTL, c.MaxPresenceDataBytes = "presence", 10, time.Minute, time.Second, 100
	return c
}

func TestStreamRules(t *testing.T) {
	c := valid()
	c.StreamRules = `[{"app":"demo","room":"chat.*","size":5000,"ttl":"10m"},{"room":"ticker","size":10}]`
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	rules, err := c.ParseStreamRules()
	if err != nil {
		t.Fatal(err)
	}
	want := []roomlog.Rule{
		{App: "demo", RoomPattern: "chat.*", StreamSize: 5000, StreamTTL: 10 * time.Minute},
		{RoomPattern: "ticker", StreamSize: 10},
	}
	if len(rules) != len(want) || rules[0] != want[0] || rules[1] != want[1] {
		t.Fatalf("rules %+v, want %+v", rules, want)
	}
	for _, bad := range []string{
		`{"room":"x"}`,
		`[{"room":"x","ttl":"soon"}]`,
		`[{"room":"x","ttl":"-1m"}]`,
		`[{"room":"x","size":-1}]`,
		`[{"room":"x","sizee":1}]`,
	} {
		c.StreamRules = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "ROOMCAST_STREAM_RULES") {
			t.Errorf("rules %s: err %v, want a ROOMCAST_STREAM_RULES error", bad, err)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	cases := map[string]func(*Config){
		"frame cap below message cap":     func(c *Config) { c.MaxFrameBytes = 100 },
		"session ttl below the heartbeat": func(c *Config) { c.SessionTTL = time.Second },
		"no rooms":                        func(c *Config) { c.MaxRooms = 0 },
		"zero rate":                       func(c *Config) { c.Rate = 0 },
		"bad key list":                    func(c *Config) { c.Keys = "not-a-key" },
		"no shards":                       func(c *Config) { c.Shards = 0 },
		"bad trusted proxy":               func(c *Config) { c.TrustedProxies = "10.0.0.0/8, not-an-ip" },
		"unknown event consumer":          func(c *Config) { c.EventConsumers = "presence,nope" },
		"no presence grace":               func(c *Config) { c.PresenceGrace = 0 },
		"no redis buffer":                 func(c *Config) { c.RedisBufferBytes = 0 },
		"no gc percent":                   func(c *Config) { c.GCPercent = 0 },
	}
	for name, mutate := range cases {
		c := valid()
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
}
