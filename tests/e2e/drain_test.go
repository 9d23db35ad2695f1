package e2e

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/tests/harness"
)

// TestDrainOnSIGTERM: SIGTERM on one of three gateways closes its clients
// with 4000 (reconnect elsewhere) within the drain timeout, the process
// exits 0, and the other nodes keep serving the same rooms.
func TestDrainOnSIGTERM(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	const drain = 5 * time.Second
	gws := []*harness.Process{
		env.Gateway(t, "gw-drain", fmt.Sprintf("GATEWAY_DRAIN_TIMEOUT=%s", drain)),
		env.Gateway(t, "gw-a"),
		env.Gateway(t, "gw-b"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	caps := token.Capabilities{"*": {token.OpJoin, token.OpPublish}}
	dial := func(gw *harness.Process, id string) (*client.Client, *recorder) {
		// This test is about what the server sends, so no client reconnects.
		c, err := client.Dial(ctx, client.Config{URL: gw.WSURL(), Token: env.Token(t, id, caps, time.Hour), DisableReconnect: true})
		if err != nil {
			t.Fatalf("dial %s: %v", id, err)
		}
		t.Cleanup(func() { c.Close() })
		rec := &recorder{}
		c.OnAnyMessage(rec.add)
		if _, err := c.Join(ctx, "drain-room"); err != nil {
			t.Fatalf("join %s: %v", id, err)
		}
		return c, rec
	}
	var draining []*client.Client
	for i := 0; i < 20; i++ {
		c, _ := dial(gws[0], fmt.Sprintf("d-%d", i))
		draining = append(draining, c)
	}
	pub, _ := dial(gws[1], "publisher")
	_, survivor := dial(gws[2], "survivor")

	start := time.Now()
	if err := gws[0].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i, c := range draining {
		select {
		case <-c.Done():
		case <-time.After(drain + 2*time.Second):
			t.Fatalf("client %d still connected %s after SIGTERM", i, time.Since(start))
		}
		var ce *client.CloseError
		if !errors.As(c.Err(), &ce) || ce.Code != protocol.CloseServerShutdown {
			t.Fatalf("client %d closed with %v, want close code %d", i, c.Err(), protocol.CloseServerShutdown)
		}
		if ce.Retry() != protocol.RetryNow {
			t.Fatalf("close 4000 should tell clients to reconnect now, got %s", ce.Retry())
		}
	}
	code, err := gws[0].Wait(drain + 5*time.Second)
	t.Logf("drained node exited after %s", time.Since(start))
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("drained gateway exited with %d, want 0", code)
	}

	// The other nodes keep serving: a publish on one reaches the other.
	if _, err := pub.Publish(ctx, "drain-room", []byte(`"after drain"`)); err != nil {
		t.Fatalf("publish after drain: %v", err)
	}
	testenv.WaitFor(t, 10*time.Second, "survivor receives the message", func() bool { return survivor.len() == 1 })
	// A new connection to the drained address is refused.
	if _, err := client.Dial(ctx, client.Config{URL: gws[0].WSURL(), Token: env.Token(t, "late", caps, time.Hour)}); err == nil {
		t.Fatal("dial to the stopped gateway succeeded")
	}
}
