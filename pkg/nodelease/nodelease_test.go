package nodelease_test

import (
	"context"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/nodelease"
	"github.com/roomcast/roomcast/pkg/presence"
	"github.com/roomcast/roomcast/pkg/testenv"
)

func TestTrackerSeesALeaseRunOut(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	ps := presence.New(rdb, nil, presence.Config{Prefix: prefix, NodeTTL: 300 * time.Millisecond})
	tr := &nodelease.Tracker{RDB: rdb, Prefix: prefix, Seen: prefix + "test:leased"}

	// Never leased: not dead, whatever its lease says.
	if st, err := tr.Check(ctx, "never"); err != nil || st != nodelease.Unknown {
		t.Fatalf("a node that never held a lease: %v, %v", st, err)
	}
	if _, err := ps.Lease(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if st, err := tr.Check(ctx, "g1"); err != nil || st != nodelease.Alive {
		t.Fatalf("leased node: %v, %v", st, err)
	}
	testenv.WaitFor(t, 5*time.Second, "lease to run out", func() bool {
		n, _ := rdb.Exists(ctx, nodelease.Key(prefix, "g1")).Result()
		return n == 0
	})
	if st, err := tr.Check(ctx, "g1"); err != nil || st != nodelease.Dead {
		t.Fatalf("expired lease: %v, %v", st, err)
	}
	if err := tr.Forget(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	if st, _ := tr.Check(ctx, "g1"); st != nodelease.Unknown {
		t.Fatalf("a forgotten node: %v, want Unknown", st)
	}
}
