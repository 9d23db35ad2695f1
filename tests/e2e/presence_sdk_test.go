package e2e

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/tests/harness"
)

// presenceLog records a client's presence events.
type presenceLog struct {
	mu  sync.Mutex
	evs []protocol.PresenceEvent
}

func (l *presenceLog) add(e protocol.PresenceEvent) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	l.mu.Unlock()
}

func (l *presenceLog) snapshot() []protocol.PresenceEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]protocol.PresenceEvent(nil), l.evs...)
}

func (l *presenceLog) describe() []string {
	var out []string
	for _, e := range l.snapshot() {
		out = append(out, fmt.Sprintf("%d:%s:%s:%s", e.Offset, e.Action, e.Member.ClientID, e.Member.Data))
	}
	return out
}

// TestSDKPresenceSurvivesAGatewayDrain: the Go SDK's presence (subscribe,
// enter) carries over when its gateway drains: the client resumes on
// another node, nobody sees it leave and join again, and an event that
// happens while it is away reaches it once, in order.
func TestSDKPresenceSurvivesAGatewayDrain(t *testing.T) {
	env := harness.NewEnv(t)
	gwA, gwB, gwC := env.Gateway(t, "spa"), env.Gateway(t, "spb"), env.Gateway(t, "spc")
	env.Presence(t, "spw")
	lb := harness.StartProxy(t, gwA.Addr, gwB.Addr)
	ctx := context.Background()
	const room = "board"

	bobUpdated := make(chan error, 1)
	var bob *client.Client
	var once sync.Once
	adaLog, bobLog := &presenceLog{}, &presenceLog{}
	ada, err := client.Dial(ctx, client.Config{
		URL:   lb.WSURL(),
		Token: env.Token(t, "ada", presenceCaps(), time.Hour),
		OnStateChange: func(s client.StateChange) {
			if s.State == client.StateReconnecting {
				// While ada is away, bob changes his data.
				once.Do(func() {
					go func() { bobUpdated <- bob.EnterPresence(ctx, room, []byte(`{"name":"Bob","away":true}`)) }()
				})
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ada.Close() })
	bob, err = client.Dial(ctx, client.Config{URL: gwC.WSURL(), Token: env.Token(t, "bob", presenceCaps(), time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bob.Close() })
	for _, x := range []struct {
		c   *client.Client
		log *presenceLog
	}{{ada, adaLog}, {bob, bobLog}} {
		x.c.OnPresence(room, x.log.add)
		if _, err := x.c.Join(ctx, room); err != nil {
			t.Fatal(err)
		}
		if _, err := x.c.SubscribePresence(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	if err := ada.EnterPresence(ctx, room, []byte(`{"name":"Ada"}`)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "ada's join", func() bool { return len(bobLog.snapshot()) == 1 })
	if err := bob.EnterPresence(ctx, room, []byte(`{"name":"Bob"}`)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "both joins at both", func() bool {
		return len(adaLog.snapshot()) == 2 && len(bobLog.snapshot()) == 2
	})

	// ada's node drains; the SDK resumes on the other node behind the proxy.
	doomed, doomedNode := gwA, "spa"
	if ada.Info().Node == "spb" {
		doomed, doomedNode = gwB, "spb"
	}
	if err := doomed.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-bobUpdated:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ada never reconnected")
	}
	testenv.WaitFor(t, 10*time.Second, "ada to resume on the other node and get bob's update", func() bool {
		return ada.Info().Node != doomedNode && len(adaLog.snapshot()) == 3
	})
	want := []string{`join:ada:{"name":"Ada"}`, `join:bob:{"name":"Bob"}`, `update:bob:{"name":"Bob","away":true}`}
	for name, log := range map[string]*presenceLog{"ada": adaLog, "bob": bobLog} {
		got := log.describe()
		if len(got) != len(want) {
			t.Fatalf("%s saw %v, want %v", name, got, want)
		}
		for i := range want {
			if got[i] != fmt.Sprintf("%d:%s", i+1, want[i]) {
				t.Fatalf("%s saw %v, want %v (offsets 1…3)", name, got, want)
			}
		}
	}
	members, err := bob.PresenceMembers(ctx, room, 1)
	if err != nil || len(members) != 2 {
		t.Fatalf("members %+v, %v", members, err)
	}
	n, err := ada.PresenceCount(ctx, room)
	if err != nil || n.Clients != 2 || n.Connections != 2 {
		t.Fatalf("count %+v, %v", n, err)
	}
}

// BenchmarkPresenceEventLatency measures, on an idle system, the time from
// a presence change on one gateway until a subscriber on another gateway
// has the event: gateway → asynq queue → presence worker (Redis script,
// RabbitMQ) → gateway → SDK. One op is one change.
//
//	go test ./tests/e2e -run '^$' -bench PresenceEventLatency -benchtime 1000x
func BenchmarkPresenceEventLatency(b *testing.B) {
	env := harness.NewEnv(b)
	gw0 := env.Gateway(b, "pl0", "ROOMCAST_LOG_LEVEL=info", "GATEWAY_RATE=100000", "GATEWAY_BURST=100000")
	gw1 := env.Gateway(b, "pl1", "ROOMCAST_LOG_LEVEL=info")
	env.Presence(b, "plw", "ROOMCAST_LOG_LEVEL=info")
	ctx := context.Background()
	member, err := client.Dial(ctx, client.Config{URL: gw0.WSURL(), Token: env.Token(b, "member", presenceCaps(), time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	defer member.Close()
	watcher, err := client.Dial(ctx, client.Config{URL: gw1.WSURL(), Token: env.Token(b, "watcher", presenceCaps(), time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	defer watcher.Close()
	got := make(chan time.Time, 1)
	watcher.OnPresence("lat", func(protocol.PresenceEvent) { got <- time.Now() })
	if _, err := watcher.SubscribePresence(ctx, "lat"); err != nil {
		b.Fatal(err)
	}
	if _, err := member.Join(ctx, "lat"); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		// Each op changes the data, so each makes one event (the first a
		// join, the rest updates).
		if err := member.EnterPresence(ctx, "lat", []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-got:
			lat = append(lat, at.Sub(start))
		case <-time.After(10 * time.Second):
			b.Fatalf("presence event %d not delivered", i)
		}
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}
