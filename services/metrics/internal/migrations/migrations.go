// Package migrations holds the metrics service's schema as versioned SQL files,
// embedded in the binary and applied by pkg/pgmigrate on every start.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomcast/roomcast/pkg/pgmigrate"
)

//go:embed *.sql
var files embed.FS

// set keeps its versions in metrics_schema_version, so the service can share
// a database with others.
var set = pgmigrate.Set{FS: files, Table: "metrics_schema_version"}

// Up applies every migration not applied yet and returns the schema
// version.
func Up(ctx context.Context, db *sql.DB, log *slog.Logger) (int64, error) {
	return set.Up(ctx, db, log)
}

// Down rolls every migration back (for tests of the down steps).
func Down(ctx context.Context, db *sql.DB) error { return set.Down(ctx, db) }

// Open connects to the service's database and migrates it (see
// pgmigrate.Set.Open).
func Open(ctx context.Context, envVar, dbURL string, minConns int32, log *slog.Logger) (*pgxpool.Pool, error) {
	return set.Open(ctx, envVar, dbURL, minConns, log)
}

// Latest is the version of the newest migration file.
func Latest() (int64, error) { return set.Latest() }
