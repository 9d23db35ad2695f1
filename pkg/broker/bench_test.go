package broker

import (
	"context"
	"testing"

	"github.com/roomcast/roomcast/pkg/testenv"
)

// BenchmarkPublishConfirm measures confirmed publishes from many
// goroutines (64 per GOMAXPROCS) to 16 shards a second node consumes.
func BenchmarkPublishConfirm(b *testing.B) {
	u := testenv.AMQPVHost(b)
	pub := newNode(b, u, "pub", nil)
	sub := newNode(b, u, "sub", nil)
	waitReady(b, pub, sub)
	const shards = 16
	for s := range shards {
		subscribe(b, sub, s)
	}
	body := make([]byte, 256)
	b.SetBytes(int64(len(body)))
	b.SetParallelism(64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		shard := 0
		for pb.Next() {
			shard = (shard + 1) % shards
			if err := pub.Publish(context.Background(), shard, body); err != nil {
				b.Errorf("Publish: %v", err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
