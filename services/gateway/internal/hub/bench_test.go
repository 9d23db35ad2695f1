package hub

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"

	"github.com/roomcast/roomcast/pkg/envelope"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/roomlog"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/services/gateway/internal/wsframe"
)

// counter is a member that only counts frames, so the benchmark measures
// the hub (decode once, encode once per codec, hand the shared frame to
// each member) and not a socket.
type counter struct {
	n      *atomic.Int64
	target *atomic.Int64
	done   chan struct{}
	joined chan struct{}
}

func (c *counter) QueueFrame([]byte) bool { return true }
func (c *counter) Flush() {
	if c.n.Add(1) == c.target.Load() {
		c.done <- struct{}{}
	}
}
func (c *counter) Codec() protocol.Codec { return protocol.JSON }
func (c *counter) Reply(*protocol.Reply) { c.joined <- struct{}{} }

// BenchmarkFanOut1000: one message from the node queue to 1,000 local
// members of its room; one op is the whole fan-out (1,000 deliveries).
func BenchmarkFanOut1000(b *testing.B) {
	for _, transient := range []bool{false, true} {
		b.Run(fmt.Sprintf("transient=%v", transient), func(b *testing.B) { benchFanOut(b, 1000, transient) })
	}
}

func benchFanOut(b *testing.B, members int, transient bool) {
	rdb, prefix := testenv.Redis(b)
	rlog := roomlog.New(rdb, roomlog.Config{Prefix: prefix})
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := New(Config{Shards: 16, Workers: 2, Frame: wsframe.Encode}, log, &memBus{subs: map[int]int{}}, rlog)
	b.Cleanup(h.Close)
	ctx := context.Background()

	var n, target atomic.Int64
	done := make(chan struct{}, 1)
	joined := make(chan struct{}, members)
	for i := 0; i < members; i++ {
		if err := h.Join(ctx, "a", "r", &counter{n: &n, target: &target, done: done, joined: joined}, 1, nil); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < members; i++ {
		<-joined
	}
	pos, err := h.Position(ctx, "a", "r")
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(`{"text":"hello, this is a chat message of a typical size","from":"alice"}`)
	env := envelope.Envelope{App: "a", Room: "r", Epoch: pos.Epoch, Transient: transient, Data: data, Timestamp: 1}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !transient {
			env.Offset = pos.Offset + uint64(i) + 1
		}
		target.Store(int64(members) * int64(i+1))
		h.HandleDelivery(0, env.Marshal())
		<-done
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(members), "ns/delivery")
}
