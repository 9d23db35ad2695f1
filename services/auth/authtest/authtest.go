// Package authtest gives tests their own PostgreSQL database (see
// pkg/testenv.Postgres), migrated to the auth service's schema if asked.
package authtest

import (
	"context"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/services/auth/internal/migrations"
)

// AdminURL is the maintenance database tests connect to for CREATE and
// DROP DATABASE.
func AdminURL() string { return testenv.PostgresAdminURL() }

// Database creates a fresh database, dropped when the test ends, and
// returns its URL.
func Database(t testing.TB) string {
	t.Helper()
	return testenv.Postgres(t)
}

// Pool returns a pool over a fresh database with the auth service's
// schema, closed when the test ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := migrations.Open(context.Background(), "AUTH_DATABASE_URL", Database(t), 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}
