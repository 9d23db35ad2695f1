package migrations_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/roomcast/roomcast/services/auth/authtest"
	"github.com/roomcast/roomcast/services/auth/internal/migrations"
)

func tables(t *testing.T, url string) map[string]bool {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range names {
		out[n] = true
	}
	return out
}

// TestUpDownUp applies every migration to an empty database (from several
// instances at once, as when replicas start together), rolls them all
// back, and applies them again.
func TestUpDownUp(t *testing.T) {
	url := authtest.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	latest, err := migrations.Latest()
	if err != nil || latest < 1 {
		t.Fatalf("Latest = %d, %v", latest, err)
	}

	var wg sync.WaitGroup
	errs := make([]error, 3)
	versions := make([]int64, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := stdlibOpen(url)
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Close()
			versions[i], errs[i] = migrations.Up(ctx, db, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil || versions[i] != latest {
			t.Fatalf("instance %d: Up = %d, %v; want %d", i, versions[i], err, latest)
		}
	}
	got := tables(t, url)
	for _, want := range []string{"apps", "api_keys", "signing_keys", "auth_schema_version"} {
		if !got[want] {
			t.Errorf("after Up, table %s is missing (have %v)", want, got)
		}
	}

	db, err := stdlibOpen(url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := migrations.Down(ctx, db); err != nil {
		t.Fatal(err)
	}
	if got := tables(t, url); len(got) != 1 || !got["auth_schema_version"] {
		t.Fatalf("after Down, tables %v remain", got)
	}
	if v, err := migrations.Up(ctx, db, nil); err != nil || v != latest {
		t.Fatalf("Up again = %d, %v", v, err)
	}
}

func stdlibOpen(url string) (*sql.DB, error) { return sql.Open("pgx", url) }
