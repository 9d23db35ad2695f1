package online

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/nodelease"
	"github.com/roomcast/roomcast/pkg/presence"
	"github.com/roomcast/roomcast/pkg/testenv"
)

func isUser(id string) bool { return strings.HasPrefix(id, "u") }

func TestOnlineFollowsConnectionsAndLeases(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	tr := New(rdb, prefix, isUser)
	ps := presence.New(rdb, nil, presence.Config{Prefix: prefix, NodeTTL: time.Hour})
	if _, err := ps.Lease(ctx, "gw1"); err != nil {
		t.Fatal(err)
	}
	status := func() (bool, *time.Time) {
		t.Helper()
		on, seen, err := tr.Status(ctx, "app", "u1")
		if err != nil {
			t.Fatal(err)
		}
		return on, seen
	}
	if on, seen := status(); on || seen != nil {
		t.Fatalf("never connected: online %v, seen %v", on, seen)
	}
	t0 := time.UnixMilli(1_700_000_000_000)
	if err := tr.Opened(ctx, "app", "u1", "c1", "gw1", t0); err != nil {
		t.Fatal(err)
	}
	if err := tr.Opened(ctx, "app", "u1", "c2", "gw1", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if on, _ := status(); !on {
		t.Fatal("connected: not online")
	}
	_ = tr.Closed(ctx, "app", "u1", "c1", t0.Add(2*time.Second))
	if on, _ := status(); !on {
		t.Fatal("one of two connections closed: not online")
	}
	_ = tr.Closed(ctx, "app", "u1", "c2", t0.Add(3*time.Second))
	on, seen := status()
	if on || seen == nil || !seen.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("all closed: online %v, seen %v", on, seen)
	}

	// A close delivered before its open: the open is ignored.
	_ = tr.Closed(ctx, "app", "u1", "c3", t0.Add(4*time.Second))
	_ = tr.Opened(ctx, "app", "u1", "c3", "gw1", t0.Add(3500*time.Millisecond))
	if on, _ := status(); on {
		t.Fatal("an open after its close made the user online")
	}

	// A connection on a gateway whose lease is gone does not count.
	_ = tr.Opened(ctx, "app", "u1", "c4", "gw-crashed", t0.Add(5*time.Second))
	if on, _ := status(); on {
		t.Fatal("a connection of a gateway without a lease counts")
	}
	if _, err := ps.Lease(ctx, "gw2"); err != nil {
		t.Fatal(err)
	}
	_ = tr.Opened(ctx, "app", "u1", "c5", "gw2", t0.Add(6*time.Second))
	if on, _ := status(); !on {
		t.Fatal("connected to gw2: not online")
	}
	if err := rdb.Del(ctx, nodelease.Key(prefix, "gw2")).Err(); err != nil { // gw2 crashes
		t.Fatal(err)
	}
	if on, _ := status(); on {
		t.Fatal("still online after the gateway's lease ran out")
	}
	if n := rdb.HLen(ctx, tr.userKey("app", "u1", "conns")).Val(); n != 1 {
		t.Fatalf("%d connections recorded, want c5 (c4 pruned when c5 opened)", n)
	}
	_ = tr.Opened(ctx, "app", "u1", "c6", "gw1", t0.Add(7*time.Second))
	if n := rdb.HLen(ctx, tr.userKey("app", "u1", "conns")).Val(); n != 1 {
		t.Fatalf("dead gateways' connections not pruned on the next open: %d left", n)
	}
}

func TestHandlersIgnoreNonUsers(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	tr := New(rdb, prefix, isUser)
	mux := asynq.NewServeMux()
	tr.Register(mux)
	ps := presence.New(rdb, nil, presence.Config{Prefix: prefix, NodeTTL: time.Hour})
	_, _ = ps.Lease(ctx, "gw1")
	for _, id := range []string{"backend-client", "u9"} {
		task, _ := events.NewTask(events.TypeConnectionOpened, events.Connection{V: 1, App: "a", ClientID: id, ConnID: "c-" + id, Node: "gw1", At: 1})
		if err := mux.ProcessTask(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	if on, _, _ := tr.Status(ctx, "a", "backend-client"); on {
		t.Fatal("a non-user client was recorded")
	}
	if on, _, _ := tr.Status(ctx, "a", "u9"); !on {
		t.Fatal("user not online after connection.opened")
	}
	task, _ := events.NewTask(events.TypeConnectionClosed, events.Connection{V: 1, App: "a", ClientID: "u9", ConnID: "c-u9", Node: "gw1", At: 2})
	if err := mux.ProcessTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	if on, _, _ := tr.Status(ctx, "a", "u9"); on {
		t.Fatal("user online after connection.closed")
	}
}
