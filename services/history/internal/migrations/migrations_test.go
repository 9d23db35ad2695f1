package migrations

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"

	"github.com/roomcast/roomcast/services/history/historytest"
)

// Rows archived before the binary mark existed (version 1) read as not
// binary once the mark's migration ran; every migration rolls back and
// applies again.
func TestBinaryMarkMigration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sql.Open("pgx", historytest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, files, goose.WithDisableGlobalRegistry(true), goose.WithTableName(set.Table))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO history_messages (app, room, epoch, msg_offset, ts, data, expires_at)
VALUES ('a', 'r', 'e', 1, 1, '\x00ff', now() + interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	latest, err := Latest()
	if err != nil || latest < 2 {
		t.Fatalf("Latest = %d, %v", latest, err)
	}
	if v, err := Up(ctx, db, nil); err != nil || v != latest {
		t.Fatalf("Up = %d, %v; want %d", v, err, latest)
	}
	var binary bool
	if err := db.QueryRowContext(ctx, `SELECT is_binary FROM history_messages WHERE msg_offset = 1`).Scan(&binary); err != nil || binary {
		t.Fatalf("existing row: is_binary %v, %v; want false", binary, err)
	}
	if err := Down(ctx, db); err != nil {
		t.Fatal(err)
	}
	if v, err := Up(ctx, db, nil); err != nil || v != latest {
		t.Fatalf("Up again = %d, %v", v, err)
	}
}
