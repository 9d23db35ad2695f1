package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/roomcast/roomcast/pkg/history"
	"github.com/roomcast/roomcast/services/history/historytest"
	"github.com/roomcast/roomcast/services/history/internal/migrations"
	"github.com/roomcast/roomcast/services/history/internal/store"
)

func newStore(t testing.TB) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, historytest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	if _, err := migrations.Up(ctx, db, nil); err != nil {
		t.Fatal(err)
	}
	return store.New(pool), pool
}

func rows(app, room, epoch string, from, to uint64, ts int64, exp time.Time) []store.Row {
	var out []store.Row
	for i := from; i <= to; i++ {
		out = append(out, store.Row{App: app, Room: room, Epoch: epoch, Offset: i, TS: ts + int64(i),
			Data: fmt.Appendf(nil, `{"i":%d}`, i), ExpiresAt: exp})
	}
	return out
}

func TestInsertIsIdempotentAndReadsPage(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	n, err := st.Insert(ctx, rows("a", "r", "e2", 1, 100, 5000, exp))
	if err != nil || n != 100 {
		t.Fatalf("insert: %d, %v", n, err)
	}
	// A retried batch overlapping the first inserts only what is new.
	n, err = st.Insert(ctx, rows("a", "r", "e2", 51, 150, 5000, exp))
	if err != nil || n != 50 {
		t.Fatalf("repeat: %d, %v", n, err)
	}
	if _, err := st.Insert(ctx, rows("a", "r", "e1", 1, 10, 1000, exp)); err != nil {
		t.Fatal(err)
	}
	eps, err := st.Epochs(ctx, "a", "r")
	if err != nil || len(eps) != 2 || eps[0] != "e1" || eps[1] != "e2" {
		t.Fatalf("epochs %v, %v: want e1 (older) then e2", eps, err)
	}
	msgs, err := st.Read(ctx, history.ReadRequest{App: "a", Room: "r", Epoch: "e2", Min: 10, Max: 1<<64 - 1, Backward: true, Limit: 5})
	if err != nil || len(msgs) != 5 || msgs[0].Offset != 150 || msgs[4].Offset != 146 || string(msgs[0].Data) != `{"i":150}` {
		t.Fatalf("backward page %+v, %v", msgs, err)
	}
	msgs, err = st.Read(ctx, history.ReadRequest{App: "a", Room: "r", Epoch: "e2", Min: 1, Max: 20, Start: 5010, End: 5012, Limit: 100})
	if err != nil || len(msgs) != 3 || msgs[0].Offset != 10 {
		t.Fatalf("time range %+v, %v", msgs, err)
	}
}

func TestDeleteExpiredDeletesExactlyTheExpired(t *testing.T) {
	st, pool := newStore(t)
	ctx := context.Background()
	now := time.Now()
	if _, err := st.Insert(ctx, rows("a", "old", "e", 1, 2500, 0, now.Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Insert(ctx, rows("a", "new", "e", 1, 300, 0, now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	var total int64
	for {
		n, err := st.DeleteExpired(ctx, now, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if n > 1000 {
			t.Fatalf("a batch deleted %d > 1000", n)
		}
		total += n
		if n < 1000 {
			break
		}
	}
	if total != 2500 {
		t.Fatalf("deleted %d, want 2500", total)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM history_messages WHERE room = 'new'`).Scan(&left); err != nil || left != 300 {
		t.Fatalf("left %d, %v", left, err)
	}
	if _, err := st.DeleteEmptyEpochs(ctx, now.Add(3*time.Hour), 100); err != nil {
		t.Fatal(err)
	}
	if eps, _ := st.Epochs(ctx, "a", "old"); len(eps) != 0 {
		t.Fatalf("empty epoch kept: %v", eps)
	}
	if eps, _ := st.Epochs(ctx, "a", "new"); len(eps) != 1 {
		t.Fatalf("epoch with messages deleted: %v", eps)
	}
}

// A message's binary mark is archived and read back: bytes published as
// binary stay binary even when they are valid JSON text, JSON stays JSON,
// and empty data is never marked.
func TestBinaryMarkRoundTrips(t *testing.T) {
	st, pool := newStore(t)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	in := []store.Row{
		{App: "a", Room: "r", Epoch: "e", Offset: 1, TS: 1, Data: []byte(`{"a":1}`), Binary: true, ExpiresAt: exp},
		{App: "a", Room: "r", Epoch: "e", Offset: 2, TS: 2, Data: []byte(`{"a":1}`), ExpiresAt: exp},
		{App: "a", Room: "r", Epoch: "e", Offset: 3, TS: 3, Data: []byte{0, 0xff}, Binary: true, ExpiresAt: exp},
		{App: "a", Room: "r", Epoch: "e", Offset: 4, TS: 4, Binary: true, ExpiresAt: exp},
	}
	if n, err := st.Insert(ctx, in); err != nil || n != 4 {
		t.Fatalf("insert: %d, %v", n, err)
	}
	msgs, err := st.Read(ctx, history.ReadRequest{App: "a", Room: "r", Epoch: "e", Min: 1, Max: 10, Limit: 10})
	if err != nil || len(msgs) != 4 {
		t.Fatalf("read %+v, %v", msgs, err)
	}
	for i, want := range []bool{true, false, true, false} {
		if m := msgs[i]; m.Binary != want || string(m.Data) != string(in[i].Data) {
			t.Errorf("offset %d: binary %v data %q, want binary %v data %q", m.Offset, m.Binary, m.Data, want, in[i].Data)
		}
	}
	var marked int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM history_messages WHERE is_binary`).Scan(&marked); err != nil || marked != 2 {
		t.Fatalf("%d rows marked binary (%v), want 2", marked, err)
	}
}
