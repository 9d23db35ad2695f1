package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/tests/harness"
)

// TestSDKWatchesLiveMetrics: the Go SDK's WatchMetrics delivers pushes
// with the room's connections to OnMetrics.
func TestSDKWatchesLiveMetrics(t *testing.T) {
	env := harness.NewEnv(t)
	gw := env.Gateway(t, "lm-sdk")
	env.Presence(t, "lm-sdk-p")
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Config{URL: gw.WSURL(), Token: env.Token(t, "watcher", allCaps, time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan protocol.RoomMetrics, 16)
	c.OnMetrics("dash", func(m protocol.RoomMetrics) { got <- m })
	if _, err := c.Join(ctx, "dash"); err != nil {
		t.Fatal(err)
	}
	if err := c.WatchMetrics(ctx, "dash", time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(15 * time.Second)
	for {
		select {
		case m := <-got:
			if m.Room == "dash" && m.Connections >= 1 {
				if err := c.UnwatchMetrics(ctx, "dash"); err != nil {
					t.Fatal(err)
				}
				return
			}
		case <-deadline:
			t.Fatal("no live metrics push with the watcher's connection")
		}
	}
}
