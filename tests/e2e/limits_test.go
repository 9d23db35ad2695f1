package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/tests/harness"
)

// TestSecurityDefaults covers the limits that protect a node from one bad
// client: each closes or refuses that client with its documented code
// while the node keeps serving everyone else.
func TestSecurityDefaults(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw := env.Gateway(t, "gw-limits",
		"GATEWAY_HEARTBEAT_INTERVAL=300ms",
		"GATEWAY_HEARTBEAT_MISSES=2",
		"GATEWAY_RATE=5",
		"GATEWAY_BURST=5",
		"GATEWAY_RATE_LIMIT_CLOSE_AFTER=10",
		"GATEWAY_MAX_ROOMS=3",
	)
	caps := token.Capabilities{"*": {token.OpJoin, token.OpPublish}}
	tok := env.Token(t, "carol", caps, time.Hour)
	dial := func(t *testing.T) *harness.Raw {
		r, _ := harness.Connect(t, gw.WSURL(), tok)
		return r
	}

	t.Run("missed pongs close with 4008", func(t *testing.T) {
		r := dial(t)
		r.NoPong = true
		start := time.Now()
		r.ExpectClose(protocol.CloseHeartbeatTimeout)
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("closed after %s, before a single heartbeat interval", d)
		}
	})
	t.Run("answered pings keep the connection", func(t *testing.T) {
		r := dial(t)
		// Several heartbeat intervals pass; the harness answers pings.
		f, err := r.Read(2 * time.Second)
		if err == nil {
			t.Fatalf("unexpected frame while idle: %+v", f)
		}
		r.WriteJSON(map[string]any{"id": 1, "op": "join", "room": "alive"})
		if f := r.ReadServer(); f.Reply == nil || f.Reply.Error != nil {
			t.Fatalf("join after idle: %+v", f)
		}
	})
	t.Run("rate limit refuses, then closes with 4006", func(t *testing.T) {
		r := dial(t)
		limited := 0
		for i := 1; i <= 40; i++ {
			r.WriteJSON(map[string]any{"id": i, "op": "join", "room": "rl"})
		}
		for {
			f, err := r.Read(5 * time.Second)
			if err != nil {
				t.Fatalf("read: %v (after %d rate_limited replies)", err, limited)
			}
			if f.Op == 0x8 {
				if f.CloseCode != protocol.CloseRateLimited {
					t.Fatalf("close %d, want 4006", f.CloseCode)
				}
				break
			}
			if f.Server.Reply != nil && f.Server.Reply.Error != nil && f.Server.Reply.Error.Code == protocol.CodeRateLimited {
				limited++
			}
		}
		if limited < 10 {
			t.Fatalf("%d rate_limited replies before the close, want 10", limited)
		}
	})
	t.Run("rooms per connection", func(t *testing.T) {
		r := dial(t)
		for i, room := range []string{"r1", "r2", "r3", "r4"} {
			r.WriteJSON(map[string]any{"id": i + 1, "op": "join", "room": room})
			f := r.ReadServer()
			if i < 3 && (f.Reply == nil || f.Reply.Error != nil) {
				t.Fatalf("join %s: %+v", room, f)
			}
			if i == 3 && (f.Reply == nil || f.Reply.Error == nil || f.Reply.Error.Code != protocol.CodeTooManyRooms) {
				t.Fatalf("join over the cap: %+v", f.Reply)
			}
		}
	})
	t.Run("token expiry closes a live connection with 4002", func(t *testing.T) {
		r, _ := harness.Connect(t, gw.WSURL(), env.Token(t, "dave", caps, time.Second))
		r.ExpectClose(protocol.CloseTokenExpired)
	})

	// Nothing secret reached the logs: not the key's secret, not a token.
	logs := gw.Logs()
	if strings.Contains(logs, string(env.Key.Secret)) {
		t.Error("the API key secret appears in the gateway log")
	}
	if strings.Contains(logs, tok) || strings.Contains(logs, strings.Split(tok, ".")[2]) {
		t.Error("a token appears in the gateway log")
	}
}

// TestSlowConsumer: a member that stops reading is closed with 4007 once its
// outbound buffer is full, and the other members of the room keep
// receiving everything.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw := env.Gateway(t, "gw-slow",
		"GATEWAY_OUTBOX_FRAMES=64",
		"GATEWAY_OUTBOX_BYTES=262144",
		"GATEWAY_RATE=100000",
		"GATEWAY_BURST=100000",
		"GATEWAY_WRITE_TIMEOUT=30s",
	)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	caps := token.Capabilities{"*": {token.OpJoin, token.OpPublish}}

	slow, _ := harness.Connect(t, gw.WSURL(), env.Token(t, "slow", caps, time.Hour))
	slow.WriteJSON(map[string]any{"id": 1, "op": "join", "room": "firehose"})
	if f := slow.ReadServer(); f.Reply == nil || f.Reply.Error != nil {
		t.Fatalf("join: %+v", f)
	}
	fast, err := client.Dial(ctx, client.Config{URL: gw.WSURL(), Token: env.Token(t, "fast", caps, time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	rec := &recorder{}
	fast.OnAnyMessage(rec.add)
	if _, err := fast.Join(ctx, "firehose"); err != nil {
		t.Fatal(err)
	}

	// ~16 MB through a room whose slow member reads nothing: far more than
	// its socket buffers and its 256 KiB outbox.
	data := []byte(`"` + strings.Repeat("z", 60000) + `"`)
	const n = 280
	for i := 0; i < n; i++ {
		if _, err := fast.Publish(ctx, "firehose", data); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	testenv.WaitFor(t, 30*time.Second, "the fast member receives everything", func() bool { return rec.len() == n })
	// The slow member now reads: what was queued, then the close.
	slow.ExpectClose(protocol.CloseSlowConsumer)
	if err := fast.Err(); err != nil && !errors.Is(err, client.ErrClosed) {
		t.Fatalf("fast member disconnected: %v", err)
	}
}
