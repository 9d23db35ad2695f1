package loadgen

import (
	"strings"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	cfg, err := Config{URLs: []string{"ws://x/v1/connect"}, Key: "app1.k1:0123456789abcdef"}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Connections != 100 || cfg.TotalConnections != 100 || cfg.Publishers != 1 || cfg.Rate != 100 ||
		cfg.Duration != 10*time.Second || cfg.Rooms != RoomsOne || cfg.RoomCount != 1 || cfg.InFlight != 256 ||
		cfg.PayloadBytes != 64 || !strings.HasPrefix(cfg.RoomPrefix, "bench.") || cfg.Seed == 0 || cfg.Codec != CodecJSON {
		t.Errorf("defaults: %+v", cfg)
	}
	again, err := cfg.normalize()
	if err != nil || again.RoomPrefix != cfg.RoomPrefix || again.Seed != cfg.Seed {
		t.Errorf("normalize is not idempotent: %v %+v", err, again)
	}
	many, err := Config{URLs: []string{"ws://x"}, Token: "t", Rooms: RoomsMany}.normalize()
	if err != nil || many.RoomCount != 10 {
		t.Errorf("many rooms: %v, room count %d", err, many.RoomCount)
	}
	bad := []Config{
		{Token: "t"},
		{URLs: []string{"ws://x"}},
		{URLs: []string{"ws://x"}, Token: "t", Key: "app1.k1:0123456789abcdef"},
		{URLs: []string{"ws://x"}, Key: "not a key"},
		{URLs: []string{"ws://x"}, Token: "t", Rooms: "some"},
		{URLs: []string{"ws://x"}, Token: "t", Connections: -1},
		{URLs: []string{"ws://x"}, Token: "t", Connections: 5, FirstConnection: 3, TotalConnections: 6},
		{URLs: []string{"ws://x"}, Token: "t", Rate: -1},
		{URLs: []string{"ws://x"}, Token: "t", Codec: "cbor"},
	}
	for _, c := range bad {
		if _, err := c.normalize(); err == nil {
			t.Errorf("normalize(%+v) succeeded, want an error", c)
		}
	}
}

func TestSplit(t *testing.T) {
	cfg := Config{URLs: []string{"ws://x"}, Token: "t", Connections: 1001, Publishers: 2, GatewayPIDs: []int{1}}
	parts, err := Split(cfg, 4)
	if err != nil {
		t.Fatal(err)
	}
	next, nextPub := 0, 0
	for i, p := range parts {
		if p.FirstConnection != next || p.FirstPublisher != nextPub {
			t.Errorf("part %d starts at %d/%d, want %d/%d", i, p.FirstConnection, p.FirstPublisher, next, nextPub)
		}
		if p.TotalConnections != 1001 || p.TotalPublishers != 2 || p.RoomPrefix != parts[0].RoomPrefix || p.GatewayPIDs != nil || !p.SkipFloor {
			t.Errorf("part %d: %+v", i, p)
		}
		if p.Connections < 250 || p.Connections > 251 {
			t.Errorf("part %d has %d connections", i, p.Connections)
		}
		// A worker's config survives its own normalize (zero publishers
		// stay zero).
		n, err := p.normalize()
		if err != nil || n.Publishers != p.Publishers || n.Connections != p.Connections {
			t.Errorf("part %d renormalized: %v %+v", i, err, n)
		}
		next += p.Connections
		nextPub += p.Publishers
	}
	if next != 1001 || nextPub != 2 {
		t.Errorf("parts cover %d connections and %d publishers, want 1001 and 2", next, nextPub)
	}
	if _, err := Split(cfg, 0); err == nil {
		t.Error("split into 0 parts succeeded")
	}
}

func TestSplitPublishers(t *testing.T) {
	cfg := Config{URLs: []string{"ws://x"}, Token: "t", Connections: 1001, Publishers: 3, GatewayPIDs: []int{1}}
	parts, err := SplitPublishers(cfg, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 4 {
		t.Fatalf("%d parts, want 4", len(parts))
	}
	want := []struct{ firstConn, conns, firstPub, pubs int }{{0, 501, 0, 0}, {501, 500, 0, 0}, {0, 0, 0, 2}, {0, 0, 2, 1}}
	for i, p := range parts {
		w := want[i]
		if p.FirstConnection != w.firstConn || p.Connections != w.conns || p.FirstPublisher != w.firstPub || p.Publishers != w.pubs {
			t.Errorf("part %d: connections %d+%d, publishers %d+%d; want %+v", i, p.FirstConnection, p.Connections, p.FirstPublisher, p.Publishers, w)
		}
		if p.TotalConnections != 1001 || p.TotalPublishers != 3 {
			t.Errorf("part %d totals %d/%d", i, p.TotalConnections, p.TotalPublishers)
		}
		// A worker's config survives its own normalize: zero stays zero.
		n, err := p.normalize()
		if err != nil || n.Publishers != p.Publishers || n.Connections != p.Connections {
			t.Errorf("part %d renormalized: %v %+v", i, err, n)
		}
	}
	if _, err := SplitPublishers(cfg, 1, 4); err == nil {
		t.Error("4 publisher workers for 3 publishers accepted")
	}
}
