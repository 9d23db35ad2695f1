package store_test

import (
	"context"
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
