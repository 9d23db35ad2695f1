package testenv

import (
	"context"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Tests get their own PostgreSQL database on the machine's server, created
// empty for the test and dropped when it ends. The server comes from
// ROOMCAST_TEST_PG_URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable: trust
// authentication as user postgres). A missing server fails the test; it is
// never skipped silently.

// PostgresAdminURL is the maintenance database tests connect to for CREATE and
// DROP DATABASE.
func PostgresAdminURL() string {
	if u := os.Getenv("ROOMCAST_TEST_PG_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Postgres creates a fresh database, drops it (closing any connection
// left) when the test ends, and returns its URL.
func Postgres(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, PostgresAdminURL())
	if err != nil {
		t.Fatalf("testenv: PostgreSQL at %s is not reachable: %v", PostgresAdminURL(), err)
	}
	defer admin.Close(context.Background())
	name := RandomName("rctest_")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, PostgresAdminURL())
		if err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(PostgresAdminURL())
	if err != nil {
		t.Fatalf("testenv: bad ROOMCAST_TEST_PG_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
