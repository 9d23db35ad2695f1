package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/tests/harness"
)

// Room names that would break a naive AMQP routing key or a key layout.
var hostileRooms = []string{
	"lobby", "a.b.c", "star*room", "hash#tag", "co:lon",
	"sl/ash", "ünïcödé", "日本語の部屋", "mix.*#:/ü", "#",
}

// recorder collects what one client received.
type recorder struct {
	mu   sync.Mutex
	msgs []protocol.Message
}

func (r *recorder) add(m protocol.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []protocol.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]protocol.Message(nil), r.msgs...)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

type payload struct {
	Pub string `json:"pub"`
	Seq int    `json:"seq"`
}

// TestFanoutAcrossNodes: 3 gateway processes, 300 clients over 10 rooms;
// members on every node publish. Every client receives every message of
// its room exactly once, in offset order, and nothing from other rooms.
func TestFanoutAcrossNodes(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gws := []*harness.Process{env.Gateway(t, "gw-0"), env.Gateway(t, "gw-1"), env.Gateway(t, "gw-2")}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const clients, perPublisher = 300, 20
	caps := token.Capabilities{"*": {token.OpJoin, token.OpPublish}}
	conns := make([]*client.Client, clients)
	recs := make([]*recorder, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := client.Dial(ctx, client.Config{
				URL:   gws[i%len(gws)].WSURL(),
				Token: env.Token(t, fmt.Sprintf("user-%d", i), caps, time.Hour),
			})
			if err != nil {
				errs <- fmt.Errorf("client %d: dial: %w", i, err)
				return
			}
			t.Cleanup(func() { c.Close() })
			rec := &recorder{}
			c.OnAnyMessage(rec.add)
			if _, err := c.Join(ctx, hostileRooms[i%len(hostileRooms)]); err != nil {
				errs <- fmt.Errorf("client %d: join: %w", i, err)
				return
			}
			conns[i], recs[i] = c, rec
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// In each room, the first three members (one per node) publish.
	publishers := 0
	for i := 0; i < clients; i++ {
		if i/len(hostileRooms) >= len(gws) {
			continue
		}
		publishers++
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			room := hostileRooms[i%len(hostileRooms)]
			for seq := 0; seq < perPublisher; seq++ {
				data, _ := json.Marshal(payload{Pub: fmt.Sprintf("user-%d", i), Seq: seq})
				if _, err := conns[i].Publish(ctx, room, data); err != nil {
					t.Errorf("publish %d/%d: %v", i, seq, err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	perRoom := len(gws) * perPublisher
	testenv.WaitFor(t, 30*time.Second, "every client holds its room's messages", func() bool {
		for _, r := range recs {
			if r.len() < perRoom {
				return false
			}
		}
		return true
	})

	// order[room][k] is the message every member of room must see at
	// offset k+1: one and the same order for all, whichever node published.
	order := map[string][]payload{}
	for i, r := range recs {
		room := hostileRooms[i%len(hostileRooms)]
		msgs := r.snapshot()
		if len(msgs) != perRoom {
			t.Fatalf("client %d (%s): %d messages, want %d", i, room, len(msgs), perRoom)
		}
		seen := map[payload]bool{}
		for k, m := range msgs {
			if m.Room != room {
				t.Fatalf("client %d in %q received a message of %q", i, room, m.Room)
			}
			if m.Offset != uint64(k+1) {
				t.Fatalf("client %d (%s): message %d has offset %d, want %d (in order, no gap)", i, room, k, m.Offset, k+1)
			}
			var p payload
			if err := json.Unmarshal(m.Data, &p); err != nil {
				t.Fatalf("client %d: bad data %q", i, m.Data)
			}
			if seen[p] {
				t.Fatalf("client %d (%s): duplicate %+v", i, room, p)
			}
			if ref := order[room]; len(ref) > k {
				if ref[k] != p {
					t.Fatalf("client %d (%s): offset %d is %+v, another member saw %+v", i, room, k+1, p, ref[k])
				}
			} else {
				order[room] = append(order[room], p)
			}
			seen[p] = true
			if m.From != p.Pub {
				t.Fatalf("from = %q, want %q", m.From, p.Pub)
			}
		}
	}
	var deliveries float64
	for _, gw := range gws {
		deliveries += gw.Metric(t, "roomcast_gateway_deliveries_total")
	}
	if want := float64(clients * perRoom); deliveries != want {
		t.Fatalf("gateways count %v deliveries, want %v", deliveries, want)
	}
	t.Logf("%d clients on %d nodes, %d publishers, %d messages per room delivered exactly once", clients, len(gws), publishers, perRoom)
}
