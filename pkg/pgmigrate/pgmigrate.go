// Package pgmigrate applies a service's schema — versioned SQL files
// embedded in its binary — to PostgreSQL with goose. Every start runs Up
// under a PostgreSQL session lock, so several instances starting at once
// apply each migration exactly once. Each service keeps its versions in a
// table of its own, so services can share one database without taking each
// other's migrations for their own.
package pgmigrate

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Set is one service's migrations.
type Set struct {
	// FS holds the files, named <version>_<what>.sql, at its root.
	FS fs.FS
	// Table records the applied versions, e.g. "auth_schema_version".
	Table string
}

func (s Set) provider(db *sql.DB, log *slog.Logger) (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true), goose.WithTableName(s.Table)}
	if log != nil {
		opts = append(opts, goose.WithSlog(log))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, s.FS, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

// Up applies every migration not applied yet and returns the schema
// version.
func (s Set) Up(ctx context.Context, db *sql.DB, log *slog.Logger) (int64, error) {
	p, err := s.provider(db, log)
	if err != nil {
		return 0, err
	}
	if _, err := p.Up(ctx); err != nil {
		return 0, fmt.Errorf("migrations: up: %w", err)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrations: version: %w", err)
	}
	return v, nil
}

// Down rolls every migration back (for tests of the down steps).
func (s Set) Down(ctx context.Context, db *sql.DB) error {
	p, err := s.provider(db, nil)
	if err != nil {
		return err
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		return fmt.Errorf("migrations: down: %w", err)
	}
	return nil
}

// Latest is the version of the newest migration file.
func (s Set) Latest() (int64, error) {
	names, err := fs.Glob(s.FS, "*.sql")
	if err != nil {
		return 0, err
	}
	var latest int64
	for _, n := range names {
		i := strings.IndexByte(n, '_')
		if i < 0 {
			return 0, fmt.Errorf("migrations: file %s is not <version>_<what>.sql", n)
		}
		v, err := strconv.ParseInt(n[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("migrations: file %s: %w", n, err)
		}
		latest = max(latest, v)
	}
	return latest, nil
}

// Open connects a pool to the database at dbURL (named by envVar in
// errors, which never quote the URL: it may hold a password), with at
// least minConns connections allowed, and brings the schema up to date
// before returning it.
func (s Set) Open(ctx context.Context, envVar, dbURL string, minConns int32, log *slog.Logger) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid PostgreSQL URL", envVar)
	}
	pcfg.MaxConns = max(pcfg.MaxConns, minConns)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	mctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	db := stdlib.OpenDBFromPool(pool)
	version, err := s.Up(mctx, db, log.With("component", "migrations"))
	_ = db.Close()
	if err != nil {
		pool.Close()
		return nil, err
	}
	log.Info("database ready", "schema_version", version)
	return pool, nil
}
