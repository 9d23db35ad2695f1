package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/services/metrics/internal/migrations"
	"github.com/roomcast/roomcast/services/metrics/internal/store"
)

func open(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	if _, err := migrations.Up(ctx, db, nil); err != nil {
		t.Fatal(err)
	}
	return store.New(pool)
}

func TestApplyCountsEachEventOnce(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	t0 := time.Date(2030, 1, 2, 10, 0, 0, 0, time.UTC)
	apply := func(id string, now time.Time, cs ...store.Change) bool {
		t.Helper()
		ok, err := st.Apply(ctx, id, now, cs)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	// Three connections open in minute 0, one closes in minute 2.
	for i, id := range []string{"a", "b", "c"} {
		if !apply(id, t0.Add(time.Duration(i)*time.Second), store.Change{App: "x", At: t0, Connections: 1, ConnDelta: 1}) {
			t.Fatalf("%s not applied", id)
		}
	}
	if apply("b", t0, store.Change{App: "x", At: t0, Connections: 1, ConnDelta: 1}) {
		t.Fatal("a repeated id was applied")
	}
	apply("d", t0.Add(2*time.Minute), store.Change{App: "x", At: t0.Add(2 * time.Minute), ConnDelta: -1})
	apply("m1", t0, store.Change{App: "x", Room: "r", At: t0.Add(time.Minute), Messages: 1, Bytes: 10},
		store.Change{App: "x", At: t0.Add(time.Minute), Messages: 1, Bytes: 10})
	apply("m1", t0, store.Change{App: "x", Room: "r", At: t0.Add(time.Minute), Messages: 1, Bytes: 10})

	b, err := st.Stats(ctx, "x", "", t0, t0.Add(4*time.Minute), store.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Bucket{
		{Start: t0, Connections: 3, PeakConnections: 3, CurrentConnections: 3},
		{Start: t0.Add(time.Minute), Messages: 1, Bytes: 10, PeakConnections: 3, CurrentConnections: 3},
		{Start: t0.Add(2 * time.Minute), PeakConnections: 3, CurrentConnections: 2},
		{Start: t0.Add(3 * time.Minute), PeakConnections: 2, CurrentConnections: 2},
	}
	if len(b) != len(want) {
		t.Fatalf("%d buckets, want %d", len(b), len(want))
	}
	for i := range want {
		if !b[i].Start.Equal(want[i].Start) {
			t.Errorf("bucket %d starts %s", i, b[i].Start)
		}
		b[i].Start = want[i].Start
		if b[i] != want[i] {
			t.Errorf("bucket %d = %+v, want %+v", i, b[i], want[i])
		}
	}
	h, err := st.Stats(ctx, "x", "r", t0.Truncate(time.Hour), t0.Truncate(time.Hour).Add(time.Hour), store.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 1 || h[0].Messages != 1 || h[0].Bytes != 10 {
		t.Fatalf("hour of room r: %+v", h)
	}
	if _, err := st.Stats(ctx, "x", "", t0.Add(time.Second), t0.Add(time.Hour), store.Minute); err != store.ErrRange {
		t.Fatalf("unaligned range: %v", err)
	}
	if n, err := st.Prune(ctx, time.Now().Add(time.Hour), 2); err != nil || n != 2 {
		t.Fatalf("prune: %d, %v", n, err)
	}
}

// TestSweepNodeTakesADeadGatewaysConnectionsOff: connections of a gateway
// that died never close; sweeping it takes them off the live values once,
// and its late events count nothing.
func TestSweepNodeTakesADeadGatewaysConnectionsOff(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	t0 := time.Date(2030, 1, 2, 10, 0, 0, 0, time.UTC)
	n := 0
	apply := func(cs ...store.Change) {
		t.Helper()
		n++
		if _, err := st.Apply(ctx, fmt.Sprint("e", n), t0, cs); err != nil {
			t.Fatal(err)
		}
	}
	connect := func(node, room string) {
		apply(store.Change{App: "x", At: t0, Connections: 1, ConnDelta: 1, Node: node})
		apply(store.Change{App: "x", Room: room, At: t0, Connections: 1, ConnDelta: 1, Node: node})
	}
	connect("g1", "r")
	connect("g1", "r")
	connect("g2", "r")
	connect("g2", "s")
	current := func(room string) int64 {
		t.Helper()
		b, err := st.Stats(ctx, "x", room, t0, t0.Add(2*time.Minute), store.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return b[len(b)-1].CurrentConnections
	}
	if c := current(""); c != 4 {
		t.Fatalf("app current %d, want 4", c)
	}
	nodes, err := st.LiveNodes(ctx)
	if err != nil || len(nodes) != 2 {
		t.Fatalf("live nodes %v, %v", nodes, err)
	}

	removed, err := st.SweepNode(ctx, "g1", t0.Add(time.Minute))
	if err != nil || removed != 2 {
		t.Fatalf("sweep g1: removed %d, %v; want 2", removed, err)
	}
	if c, r := current(""), current("r"); c != 2 || r != 1 {
		t.Fatalf("after the sweep: app %d, room r %d; want 2 and 1", c, r)
	}
	// A close of g1 handled after the sweep: already taken off.
	apply(store.Change{App: "x", At: t0, ConnDelta: -1, Node: "g1"})
	if removed, err := st.SweepNode(ctx, "g1", t0.Add(time.Minute)); err != nil || removed != 0 {
		t.Fatalf("second sweep removed %d, %v", removed, err)
	}
	if c := current(""); c != 2 {
		t.Fatalf("late event or second sweep changed the count: app %d, want 2", c)
	}
	// g2 is alive: its close counts.
	apply(store.Change{App: "x", Room: "s", At: t0, ConnDelta: -1, Node: "g2"})
	if c := current("s"); c != 0 {
		t.Fatalf("room s %d, want 0", c)
	}
	if nodes, _ := st.LiveNodes(ctx); len(nodes) != 1 || nodes[0] != "g2" {
		t.Fatalf("live nodes %v, want [g2]", nodes)
	}
	if err := st.PruneDeadNodes(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}
