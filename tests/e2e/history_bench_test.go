package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/tests/harness"
)

// BenchmarkHistoryArchive measures the history service's archive
// throughput: b.N×1,000 message.published tasks (over 100 rooms, ~100
// bytes of data each) are put into the history queue's groups first, as
// gateways would, then one history process (default settings) is started,
// and the time until every message is in PostgreSQL gives messages/s —
// asynq aggregation, batch decode and the INSERTs, end to end.
func BenchmarkHistoryArchive(b *testing.B) {
	env := harness.NewEnv(b)
	total := b.N * 1000
	em := events.NewEmitter(env.Redis, events.EmitterConfig{Prefix: env.RedisPrefix, Consumers: []string{"history"}, Buffer: total + 1, Workers: 16},
		slog.New(slog.DiscardHandler))
	data := []byte(`{"text":"hello, this is a chat message of some length","n":1}`)
	now := time.Now().UnixMilli()
	for i := 0; i < total; i++ {
		room := fmt.Sprintf("room-%02d", i%100)
		em.Emit(events.TypeMessagePublished, events.PublishedFrom(env.Key.App, room, uint64(i/100+1), "5d1c9e0a7b2f4e11", "msg", "alice", false, false, data, now))
	}
	em.Close(context.Background())
	if s := em.Stats(); s.Enqueued != uint64(total) {
		b.Fatalf("enqueued %d of %d", s.Enqueued, total)
	}
	b.ResetTimer()
	start := time.Now()
	env.History(b, "hist-bench", "ROOMCAST_LOG_LEVEL=info")
	testenv.WaitFor(b, 10*time.Minute, "every message archived", func() bool {
		return archived(b, env, "true") == total
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(0, "ns/op")
}
