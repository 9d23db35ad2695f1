package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/services/gateway/config"
)

// startGateway runs a whole gateway in this process (Redis and RabbitMQ
// are the machine's, with the test's own prefix and vhost), the way
// nats-server's tests start in-process servers, and returns its address.
func startGateway(b *testing.B, key token.Key) string {
	b.Helper()
	_, prefix := testenv.Redis(b)
	b.Setenv("ROOMCAST_AMQP_URL", testenv.AMQPVHost(b))
	b.Setenv("ROOMCAST_REDIS_URL", testenv.RedisURL())
	b.Setenv("ROOMCAST_REDIS_PREFIX", prefix)
	b.Setenv("ROOMCAST_KEYS", key.String())
	b.Setenv("ROOMCAST_NODE_ID", "bench")
	b.Setenv("GATEWAY_ADDR", "127.0.0.1:0")
	b.Setenv("GATEWAY_EVENT_CONSUMERS", "")
	b.Setenv("GATEWAY_IP_RATE", "1000000")
	b.Setenv("GATEWAY_IP_BURST", "1000000")
	cfg, err := config.Load()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a net.Addr) { addr <- a.String() })
	}()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("gateway: %v", err)
		}
	})
	select {
	case a := <-addr:
		return a
	case err := <-done:
		b.Fatalf("gateway did not start: %v", err)
	case <-time.After(30 * time.Second):
		b.Fatal("gateway did not start within 30s")
	}
	return ""
}

// BenchmarkUpgrade: the connect path of one client — TCP connect, HTTP
// upgrade, token check, session creation in Redis, the connected frame —
// then a client close. B/op and allocs/op count the client's side too
// (both run in this process).
func BenchmarkUpgrade(b *testing.B) {
	key := token.Key{App: "bench", ID: "k1", Secret: []byte(testenv.RandomName("secret-secret-"))}
	addr := startGateway(b, key)
	tok, err := token.Mint(key, "alice", token.Capabilities{"*": {token.OpJoin}}, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	dialer := ws.Dialer{Protocols: []string{protocol.SubprotocolJSON, protocol.TokenSubprotocolPrefix + tok}}
	url := "ws://" + addr + "/v1/connect"
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		nc, br, _, err := dialer.Dial(context.Background(), url)
		if err != nil {
			b.Fatal(err)
		}
		var rw io.ReadWriter = nc
		if br != nil { // the connected frame may have come with the handshake
			rw = struct {
				io.Reader
				io.Writer
			}{br, nc}
		}
		msg, err := wsutil.ReadServerText(rw)
		if err != nil {
			b.Fatal(err)
		}
		f, err := protocol.JSON.DecodeServerFrame(msg)
		if err != nil || f.Connected == nil {
			b.Fatalf("first frame %q (%v): want connected", msg, err)
		}
		_ = wsutil.WriteClientMessage(nc, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
		_ = nc.Close()
		if br != nil {
			ws.PutReader(br)
		}
	}
}
