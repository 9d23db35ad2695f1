package e2e

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/tests/harness"
)

// TestPipelinedPublishesKeepTheirOrder: one connection writes hundreds of
// publishes to two rooms back to back, without waiting for replies (the
// gateway queues them and reads on, up to its in-flight window). Each
// room's offsets follow the order the frames were sent, every publish is
// answered, and members on another node receive each room's messages in
// that order.
func TestPipelinedPublishesKeepTheirOrder(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	// A burst of 300 is over the default per-connection rate limit; a
	// window of 8 makes the read loop wait for answers most of the time.
	pubGW := env.Gateway(t, "gw-pipe-0", "GATEWAY_RATE=10000", "GATEWAY_BURST=10000", "GATEWAY_MAX_INFLIGHT_PUBLISHES=8")
	subGW := env.Gateway(t, "gw-pipe-1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rooms := []string{"pipe.a", "pipe.b"}
	caps := token.Capabilities{"pipe.*": {token.OpJoin, token.OpPublish}}

	type received struct {
		mu   sync.Mutex
		data []string
	}
	got := map[string]*received{}
	for _, room := range rooms {
		c, err := client.Dial(ctx, client.Config{URL: subGW.WSURL(), Token: env.Token(t, "sub-"+room, caps, time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		rec := &received{}
		got[room] = rec
		c.OnMessage(room, func(m protocol.Message) {
			rec.mu.Lock()
			rec.data = append(rec.data, string(m.Data))
			rec.mu.Unlock()
		})
		if _, err := c.Join(ctx, room); err != nil {
			t.Fatal(err)
		}
	}

	r, _ := harness.Connect(t, pubGW.WSURL(), env.Token(t, "pub", caps, time.Hour))
	const n = 300
	for i := range n {
		r.WriteJSON(map[string]any{"id": i + 1, "op": "publish", "room": rooms[i%2], "data": i})
	}
	offsets := make([]uint64, n)
	for range n {
		f := r.ReadServer()
		if f.Reply == nil || f.Reply.Error != nil || f.Reply.Position == nil || f.Reply.ID < 1 || f.Reply.ID > n {
			t.Fatalf("want a publish reply with a position, got %+v (reply %+v)", f, f.Reply)
		}
		offsets[f.Reply.ID-1] = f.Reply.Position.Offset
	}
	for i := range n {
		// The rooms were empty: the k-th publish to a room has offset k.
		if want := uint64(i/2 + 1); offsets[i] != want {
			t.Fatalf("publish %d (%s) got offset %d, want %d", i, rooms[i%2], offsets[i], want)
		}
	}
	for k, room := range rooms {
		rec := got[room]
		testenv.WaitFor(t, 20*time.Second, room+" receives every message", func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return len(rec.data) >= n/2
		})
		rec.mu.Lock()
		for j, d := range rec.data {
			if want := strconv.Itoa(2*j + k); d != want {
				rec.mu.Unlock()
				t.Fatalf("%s: message %d is %s, want %s", room, j, d, want)
			}
		}
		if len(rec.data) != n/2 {
			t.Errorf("%s: %d messages, want %d", room, len(rec.data), n/2)
		}
		rec.mu.Unlock()
	}
}
