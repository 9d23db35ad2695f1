package api_test

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/roomcast/roomcast/pkg/history"
	"github.com/roomcast/roomcast/pkg/roomlog"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/services/history/historytest"
	"github.com/roomcast/roomcast/services/history/internal/api"
	"github.com/roomcast/roomcast/services/history/internal/migrations"
	"github.com/roomcast/roomcast/services/history/internal/store"
)

func migrated(b *testing.B) *pgxpool.Pool {
	b.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, historytest.Database(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	if _, err := migrations.Up(ctx, db, nil); err != nil {
		b.Fatal(err)
	}
	return pool
}

// BenchmarkArchiveThroughput: batches of 1,000 messages (~100 bytes of
// data each, over 100 rooms) inserted by 8 writers at once, as 8 history
// worker goroutines would; reports messages/s.
func BenchmarkArchiveThroughput(b *testing.B) {
	pool := migrated(b)
	st := store.New(pool)
	data := []byte(`{"text":"` + string(slices.Repeat([]byte("x"), 80)) + `","n":1}`)
	exp := time.Now().Add(time.Hour)
	var next atomic.Uint64
	batch := func() []store.Row {
		base := next.Add(10) - 10
		rows := make([]store.Row, 0, 1000)
		for r := 0; r < 100; r++ {
			for i := uint64(1); i <= 10; i++ {
				rows = append(rows, store.Row{App: "bench", Room: "room-" + strconv.Itoa(r), Epoch: "e", Offset: base + i,
					TS: time.Now().UnixMilli(), Data: data, ExpiresAt: exp})
			}
		}
		return rows
	}
	b.SetParallelism(8)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := st.Insert(context.Background(), batch()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N*1000)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkQueryPage100On1MRoom: a room with 1,000,000 archived messages
// (bulk-loaded with COPY); each op reads one page of 100 through the whole
// read path but the gateway — pkg/history.Reader, over HTTP to this API,
// to PostgreSQL, merged with the room's (empty) recovery stream in Redis —
// alternating the newest page and pages from random offsets, both
// directions. Reports p50 and p99 latency.
func BenchmarkQueryPage100On1MRoom(b *testing.B) {
	const rows = 1_000_000
	pool := migrated(b)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	data := []byte(`{"text":"hello, this is a chat message of some length","n":1}`)
	loadStart := time.Now()
	n, err := pool.CopyFrom(ctx, pgx.Identifier{"history_messages"},
		[]string{"app", "room", "epoch", "msg_offset", "ts", "event", "sender", "data", "expires_at"},
		pgx.CopyFromSlice(rows, func(i int) ([]any, error) {
			return []any{"bench", "big", "5d1c9e0a7b2f4e11", int64(i + 1), int64(1_700_000_000_000 + i), "msg", "alice", data, exp}, nil
		}))
	if err != nil || n != rows {
		b.Fatalf("copy: %d, %v", n, err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO history_epochs VALUES ('bench', 'big', '5d1c9e0a7b2f4e11', 1700000000000, $1)`, exp); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE history_messages`); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d rows in %s", rows, time.Since(loadStart).Round(time.Millisecond))
	srv := httptest.NewServer(mux(api.New(store.New(pool), "bench-service-token", slog.New(slog.DiscardHandler))))
	defer srv.Close()
	rdb, prefix := testenv.Redis(b)
	log := roomlog.New(rdb, roomlog.Config{Prefix: prefix})
	// The room is live in Redis at the archive's head.
	if err := rdb.HSet(ctx, log.Target("bench", "big").Meta, "epoch", "5d1c9e0a7b2f4e11", "offset", rows).Err(); err != nil {
		b.Fatal(err)
	}
	r := history.NewReader(history.NewClient(srv.URL, "bench-service-token", nil), history.NewRedisStream(rdb, log))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q := history.Query{App: "bench", Room: "big", Limit: 100, Backward: i%2 == 0}
		if i%4 >= 2 {
			q.FromOffset = uint64(rand.IntN(rows-200)) + 1 //nolint:gosec // not crypto
			q.ToOffset = q.FromOffset + 150
		}
		t0 := time.Now()
		p, err := r.Query(ctx, q)
		lat = append(lat, time.Since(t0))
		if err != nil || len(p.Messages) != 100 {
			b.Fatalf("page: %d messages, %v", len(p.Messages), err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}
