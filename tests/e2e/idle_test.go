package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/tests/harness"
)

// TestIdleConnectionsHoldNoGoroutine: idle connections cost the gateway
// no goroutine each (the socket waits in the node's poller), and waking
// them up loses nothing — every one still gets the room's messages, reads
// commands, and ends cleanly when the client goes away.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw := env.Gateway(t, "gw-idle")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	caps := token.Capabilities{"*": {token.OpJoin, token.OpPublish}}

	base := gw.Metric(t, "go_goroutines")
	const n = 200
	clients := make([]*client.Client, n)
	recs := make([]*recorder, n)
	for i := range clients {
		c, err := client.Dial(ctx, client.Config{URL: gw.WSURL(), Token: env.Token(t, fmt.Sprintf("idle-%d", i), caps, time.Hour), DisableReconnect: true})
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		recs[i] = &recorder{}
		c.OnAnyMessage(recs[i].add)
		if _, err := c.Join(ctx, "idle-room"); err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		clients[i] = c
	}
	testenv.WaitFor(t, 10*time.Second, "the gateway counts every connection", func() bool {
		return gw.Metric(t, "roomcast_gateway_connections") == n
	})
	// A goroutine per connection would put at least n above the base.
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("goroutines near the base of %.0f with %d idle connections", base, n), func() bool {
		return gw.Metric(t, "go_goroutines") < base+n/4
	})

	// Idle connections still read commands and get messages: each client
	// publishes once and every client gets all n messages.
	for i, c := range clients {
		if _, err := c.Publish(ctx, "idle-room", fmt.Appendf(nil, `{"from":%d}`, i)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	for i, r := range recs {
		testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("client %d has all %d messages", i, n), func() bool { return r.len() == n })
	}

	// Clients going away end their connections on the server.
	for _, c := range clients {
		c.Close()
	}
	testenv.WaitFor(t, 10*time.Second, "no connection left", func() bool {
		return gw.Metric(t, "roomcast_gateway_connections") == 0
	})
}

// TestPolledConnectionClosedWithoutAnswer: a client that never answers
// the server's close frame (here after its token expired) is dropped after
// the close grace, although nothing arrives on its socket to wake it.
func TestPolledConnectionClosedWithoutAnswer(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw := env.Gateway(t, "gw-noanswer")
	caps := token.Capabilities{"*": {token.OpJoin}}
	raw, _ := harness.Connect(t, gw.WSURL(), env.Token(t, "silent", caps, 2*time.Second))
	raw.NoPong = true
	raw.ExpectClose(protocol.CloseTokenExpired)
	// The client does not answer; the server closes the socket itself.
	if _, err := raw.Read(10 * time.Second); err == nil || isTimeout(err) {
		t.Fatalf("the server kept the socket open after its close frame went unanswered (read: %v)", err)
	}
	testenv.WaitFor(t, 10*time.Second, "no connection left", func() bool {
		return gw.Metric(t, "roomcast_gateway_connections") == 0
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// BenchmarkIdleConnection: what one idle connection, authenticated and
// joined to one of 100 rooms, costs a gateway process: RSS and goroutines
// per connection, from the gateway's /metrics before and after b.N
// connections. Run with a fixed count, e.g.
//
//	cd tests && go test ./e2e -run '^$' -bench IdleConnection -benchtime 5000x
func BenchmarkIdleConnection(b *testing.B) {
	env := harness.NewEnv(b)
	gw := env.Gateway(b, "gw-idle-bench", "GATEWAY_IP_RATE=1000000", "GATEWAY_IP_BURST=1000000")
	caps := token.Capabilities{"*": {token.OpJoin}}
	rss0 := gw.Metric(b, "process_resident_memory_bytes")
	g0 := gw.Metric(b, "go_goroutines")
	b.ResetTimer()
	for i := range b.N {
		raw, _ := harness.Connect(b, gw.WSURL(), env.Token(b, fmt.Sprintf("idle-%d", i), caps, time.Hour))
		raw.WriteJSON(map[string]any{"id": 1, "op": "join", "room": fmt.Sprintf("idle-%d", i%100)})
		if f := raw.ReadServer(); f.Reply == nil || f.Reply.Error != nil {
			b.Fatalf("join %d: %+v", i, f)
		}
	}
	b.StopTimer()
	testenv.WaitFor(b, 30*time.Second, "the gateway counts every connection", func() bool {
		return gw.Metric(b, "roomcast_gateway_connections") == float64(b.N)
	})
	b.ReportMetric((gw.Metric(b, "process_resident_memory_bytes")-rss0)/float64(b.N), "rss-B/conn")
	b.ReportMetric((gw.Metric(b, "go_goroutines")-g0)/float64(b.N), "goroutines/conn")
}

// TestReaderLingersForTheNextCommand: a connection that sends again within
// GATEWAY_READ_LINGER keeps its reading goroutine, parked on the runtime's
// poller; with no linger every command after a pause wakes the connection
// from the idle-socket poller anew (a new goroutine each time).
func TestReaderLingersForTheNextCommand(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	caps := token.Capabilities{"*": {token.OpJoin}}
	wakeups := func(linger string) float64 {
		gw := env.Gateway(t, "gw-linger-"+linger, "GATEWAY_READ_LINGER="+linger)
		raw, _ := harness.Connect(t, gw.WSURL(), env.Token(t, "linger-"+linger, caps, time.Hour))
		before := gw.Metric(t, "roomcast_gateway_reader_wakeups_total")
		for i := range 20 {
			// A pause long enough for a reader without linger to park
			// (the stimulus, not a wait for a result).
			time.Sleep(50 * time.Millisecond)
			raw.WriteJSON(map[string]any{"id": i + 1, "op": "join", "room": fmt.Sprintf("linger-%d", i)})
			if f := raw.ReadServer(); f.Reply == nil || f.Reply.Error != nil {
				t.Fatalf("join %d with linger %s: %+v", i, linger, f)
			}
		}
		return gw.Metric(t, "roomcast_gateway_reader_wakeups_total") - before
	}
	if n := wakeups("0s"); n < 10 {
		t.Errorf("no linger: %v wake-ups for 20 commands 50 ms apart, want about one each", n)
	}
	if n := wakeups("10s"); n > 1 {
		t.Errorf("10 s linger: %v wake-ups for 20 commands 50 ms apart, want at most one", n)
	}
}
