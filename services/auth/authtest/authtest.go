// Package authtest gives tests their own PostgreSQL database (see
// pkg/testenv.Postgres).
package authtest

import (
	"testing"

	"github.com/roomcast/roomcast/pkg/testenv"
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
