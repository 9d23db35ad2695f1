package e2e

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/tests/harness"
)

// BenchmarkPublishToDeliverTwoNodes measures, on an idle system, the time
// from a publish on one gateway until a member on another gateway has the
// message (SDK to SDK, through Redis and RabbitMQ). One op is one message.
//
//	go test ./tests/e2e -run '^$' -bench PublishToDeliver -benchtime 2000x
func BenchmarkPublishToDeliverTwoNodes(b *testing.B) {
	env := harness.NewEnv(b)
	gw0 := env.Gateway(b, "gw-bench-0", "ROOMCAST_LOG_LEVEL=info", "GATEWAY_RATE=100000", "GATEWAY_BURST=100000")
	gw1 := env.Gateway(b, "gw-bench-1", "ROOMCAST_LOG_LEVEL=info")
	ctx := context.Background()
	caps := token.Capabilities{"*": {token.OpJoin, token.OpPublish}}
	pubToken, subToken := env.Token(b, "pub", caps, time.Hour), env.Token(b, "sub", caps, time.Hour)
	pub, err := client.Dial(ctx, client.Config{URL: gw0.WSURL(), Token: pubToken})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	sub, err := client.Dial(ctx, client.Config{URL: gw1.WSURL(), Token: subToken})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	got := make(chan time.Time, 1)
	sub.OnMessage("lat", func(protocol.Message) { got <- time.Now() })
	if _, err := sub.Join(ctx, "lat"); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := pub.Publish(ctx, "lat", []byte(`{"k":1}`)); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-got:
			lat = append(lat, at.Sub(start))
		case <-time.After(10 * time.Second):
			b.Fatalf("message %d not delivered", i)
		}
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkReplay1000OnResume measures how long a client that missed
// 1,000 messages takes, from sending its join with since on another node,
// until it holds all of them. One op is one full replay.
//
//	go test ./tests/e2e -run '^$' -bench Replay1000 -benchtime 20x
func BenchmarkReplay1000OnResume(b *testing.B) {
	env := harness.NewEnv(b)
	gw0, gw1 := env.Gateway(b, "gw-rb-0", "ROOMCAST_LOG_LEVEL=info"), env.Gateway(b, "gw-rb-1", "ROOMCAST_LOG_LEVEL=info", "GATEWAY_RATE=100000", "GATEWAY_BURST=100000")
	ctx := context.Background()
	caps := token.Capabilities{"*": {token.OpJoin, token.OpPublish}}
	tok := env.Token(b, "phone", caps, time.Hour)
	pub, err := client.Dial(ctx, client.Config{URL: gw1.WSURL(), Token: env.Token(b, "backend", caps, time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	var durations []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		room := fmt.Sprintf("replay-%d", i)
		s := dialSession(b, gw0, tok)
		jr := s.call(b, map[string]any{"op": "join", "room": room})
		if jr.Error != nil {
			b.Fatal(jr.Error)
		}
		since := *jr.Position
		_ = s.r.Conn.Close()
		for k := 0; k < 1000; k++ {
			if _, err := pub.Publish(ctx, room, []byte(`{"missed":true}`)); err != nil {
				b.Fatal(err)
			}
		}
		back := dialSession(b, gw1, tok)
		if rep := back.call(b, map[string]any{"op": "resume", "session_id": s.connected.SessionID, "resume_token": s.connected.ResumeToken}); rep.Error != nil {
			b.Fatal(rep.Error)
		}
		b.StartTimer()
		start := time.Now()
		jr = back.call(b, map[string]any{"op": "join", "room": room, "since": map[string]any{"offset": since.Offset, "epoch": since.Epoch}})
		if !jr.Recovered {
			b.Fatalf("not recovered: %+v", jr)
		}
		back.readUntil(b, since.Offset+1000)
		durations = append(durations, time.Since(start))
		b.StopTimer()
		if len(back.msgs) != 1000 {
			b.Fatalf("replayed %d messages, want 1000", len(back.msgs))
		}
		_ = back.r.Conn.Close()
	}
	reportPercentiles(b, durations)
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	pct := func(p float64) float64 {
		return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(d[len(d)-1].Microseconds())/1000, "max-ms")
}
