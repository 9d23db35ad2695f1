//go:build disruptive

package disruptive

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/tests/harness"
)

func rabbitmqctl(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
	}
}

type received struct {
	mu   sync.Mutex
	msgs []protocol.Message
}

func (r *received) add(m protocol.Message) { r.mu.Lock(); r.msgs = append(r.msgs, m); r.mu.Unlock() }
func (r *received) snapshot() []protocol.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]protocol.Message(nil), r.msgs...)
}

// TestRabbitMQRestart restarts RabbitMQ (stop_app / start_app) under
// continuous publishing across three gateways. Traffic must flow again
// within 10 s of start_app without restarting a gateway, and no publish
// that was acknowledged to its client may be lost.
func TestRabbitMQRestart(t *testing.T) {
	env := harness.NewEnv(t)
	gws := []*harness.Process{env.Gateway(t, "gw-r0"), env.Gateway(t, "gw-r1"), env.Gateway(t, "gw-r2")}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Whatever happens, RabbitMQ is running again when this test ends.
	t.Cleanup(func() { _ = exec.Command("rabbitmqctl", "start_app").Run() })

	caps := token.Capabilities{"*": {token.OpJoin, token.OpPublish}}
	rooms := []string{"r.one", "r#two", "r/three"}
	type member struct {
		c    *client.Client
		room string
		rec  *received
	}
	var members []member
	for i := 0; i < 30; i++ {
		c, err := client.Dial(ctx, client.Config{URL: gws[i%3].WSURL(), Token: env.Token(t, fmt.Sprintf("m%d", i), caps, time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		rec := &received{}
		c.OnAnyMessage(rec.add)
		room := rooms[i%len(rooms)]
		if _, err := c.Join(ctx, room); err != nil {
			t.Fatal(err)
		}
		members = append(members, member{c, room, rec})
	}

	// One publisher per room, each on a different node, publishing until
	// told to stop. acked records the offsets acknowledged to publishers.
	var (
		stop     atomic.Bool
		ackedMu  sync.Mutex
		acked    = map[string][]uint64{}
		failures atomic.Int64
		lastOK   atomic.Int64 // unix nanos of the latest acknowledged publish
		wg       sync.WaitGroup
	)
	for p, room := range rooms {
		pub, err := client.Dial(ctx, client.Config{URL: gws[(p+1)%3].WSURL(), Token: env.Token(t, "pub-"+room, caps, time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pub.Close() })
		wg.Add(1)
		go func(room string) {
			defer wg.Done()
			for seq := 0; !stop.Load(); seq++ {
				data, _ := json.Marshal(map[string]any{"seq": seq})
				pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
				pos, err := pub.Publish(pctx, room, data)
				pcancel()
				if err != nil {
					failures.Add(1) // reported to the client as failed: allowed
					time.Sleep(20 * time.Millisecond)
					continue
				}
				ackedMu.Lock()
				acked[room] = append(acked[room], pos.Offset)
				ackedMu.Unlock()
				lastOK.Store(time.Now().UnixNano())
				time.Sleep(5 * time.Millisecond)
			}
		}(room)
	}

	testenv.WaitFor(t, 20*time.Second, "traffic before the restart", func() bool {
		ackedMu.Lock()
		defer ackedMu.Unlock()
		return len(acked[rooms[0]]) > 20 && len(acked[rooms[1]]) > 20 && len(acked[rooms[2]]) > 20
	})
	rabbitmqctl(t, "stop_app")
	stopped := time.Now()
	time.Sleep(2 * time.Second) // an outage of a known length is the point of the test
	rabbitmqctl(t, "start_app")
	started := time.Now()
	t.Logf("RabbitMQ was down for %s", started.Sub(stopped).Round(time.Millisecond))

	testenv.WaitFor(t, 10*time.Second, "a publish acknowledged after start_app", func() bool {
		return lastOK.Load() > started.UnixNano()
	})
	recovered := time.Since(started)
	// And delivered: wait for a member of each room to see a message
	// published after the restart.
	testenv.WaitFor(t, 10*time.Second-recovered, "delivery after start_app", func() bool {
		for _, m := range members[:3] {
			msgs := m.rec.snapshot()
			ackedMu.Lock()
			offs := acked[m.room]
			last := offs[len(offs)-1]
			ackedMu.Unlock()
			if len(msgs) == 0 || msgs[len(msgs)-1].Offset < last {
				return false
			}
		}
		return true
	})
	t.Logf("traffic flowing again %s after start_app (publish acked after %s)", time.Since(started).Round(time.Millisecond), recovered.Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond) // let a little post-restart traffic through
	stop.Store(true)
	wg.Wait()

	// Every member holds its room's offsets 1..N exactly once, in order, and
	// N covers every acknowledged publish.
	for i, m := range members {
		ackedMu.Lock()
		offs := acked[m.room]
		want := offs[len(offs)-1]
		ackedMu.Unlock()
		testenv.WaitFor(t, 15*time.Second, fmt.Sprintf("member %d catches up to offset %d", i, want), func() bool {
			msgs := m.rec.snapshot()
			return len(msgs) > 0 && msgs[len(msgs)-1].Offset >= want
		})
		msgs := m.rec.snapshot()
		for k, msg := range msgs {
			if msg.Offset != uint64(k+1) {
				t.Fatalf("member %d (%s): message %d has offset %d, want %d — gap, duplicate or reorder", i, m.room, k, msg.Offset, k+1)
			}
		}
	}
	total := 0
	for _, offs := range acked {
		total += len(offs)
	}
	t.Logf("%d publishes acknowledged, %d reported failed, none lost", total, failures.Load())
}
