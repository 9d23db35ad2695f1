// Package store keeps the auth service's state in PostgreSQL: apps, API
// keys (secrets hashed for comparison and sealed for gateways) and, in
// signing.go, the Ed25519 token-signing keys.
package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/seal"
)

// Errors the API maps to its codes.
var (
	ErrNotFound   = errors.New("store: not found")
	ErrConflict   = errors.New("store: already exists")
	ErrBadKey     = errors.New("store: invalid API key")
	ErrKeyRevoked = errors.New("store: API key revoked or expired")
)

// keyLock is the advisory lock every api_keys change holds while it takes
// its version, so versions become visible in order (see the migration).
const keyLock = 0x726f6f6d636b6579 // "roomckey"

// Store is the auth service's database. It is safe for concurrent use.
type Store struct {
	db     *pgxpool.Pool
	sealer *seal.Sealer
	now    func() time.Time
}

// New creates a Store over an open pool.
func New(db *pgxpool.Pool, sealer *seal.Sealer) *Store {
	return &Store{db: db, sealer: sealer, now: time.Now}
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func isForeignKeyViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}

// CreateApp creates an app; ErrConflict if the id is taken.
func (s *Store) CreateApp(ctx context.Context, id, name string) (authapi.App, error) {
	a := authapi.App{ID: id, Name: name}
	err := s.db.QueryRow(ctx, `INSERT INTO apps (id, name) VALUES ($1, $2) RETURNING created_at`, id, name).Scan(&a.CreatedAt)
	if isUniqueViolation(err) {
		return authapi.App{}, ErrConflict
	}
	if err != nil {
		return authapi.App{}, fmt.Errorf("store: create app: %w", err)
	}
	return a, nil
}

// ListApps lists every app, oldest first.
func (s *Store) ListApps(ctx context.Context) ([]authapi.App, error) {
	rows, err := s.db.Query(ctx, `SELECT id, name, created_at FROM apps ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list apps: %w", err)
	}
	apps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (authapi.App, error) {
		var a authapi.App
		err := r.Scan(&a.ID, &a.Name, &a.CreatedAt)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list apps: %w", err)
	}
	return apps, nil
}

// sealContext binds a sealed key secret to its key.
func sealContext(app, id string) string { return "api-key:" + app + "." + id }

// newKeyID returns a fresh key id: "k" and 16 hex characters.
func newKeyID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "k" + hex.EncodeToString(b[:])
}

// newSecret returns 256 random bits as 43 base64url characters: valid in
// the API key syntax (printable, no ',' or space).
func newSecret() []byte {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return []byte(base64.RawURLEncoding.EncodeToString(b[:]))
}

// withKeyChange runs fn in a transaction that holds the key-change lock
// and passes it the change's version.
func (s *Store) withKeyChange(ctx context.Context, fn func(tx pgx.Tx, version int64) error) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(keyLock)); err != nil {
			return err
		}
		var v int64
		if err := tx.QueryRow(ctx, `SELECT nextval('api_key_versions')`).Scan(&v); err != nil {
			return err
		}
		return fn(tx, v)
	})
}

// insertKey stores a new key for app with a fresh id and secret and
// returns it with the full API key (shown once).
func (s *Store) insertKey(ctx context.Context, tx pgx.Tx, version int64, app, name string, caps token.Capabilities) (authapi.Key, error) {
	if caps == nil {
		caps = token.Capabilities{}
	}
	capsJSON, err := json.Marshal(caps)
	if err != nil {
		return authapi.Key{}, err
	}
	k := token.Key{App: app, ID: newKeyID(), Secret: newSecret()}
	out := authapi.Key{App: app, ID: k.ID, Name: name, Caps: caps}
	err = tx.QueryRow(ctx, `
		INSERT INTO api_keys (id, app_id, name, caps, secret_hash, secret_sealed, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at`,
		k.ID, app, name, capsJSON, seal.Hash(k.Secret), s.sealer.Seal(k.Secret, sealContext(app, k.ID)), version,
	).Scan(&out.CreatedAt)
	if isForeignKeyViolation(err) {
		return authapi.Key{}, ErrNotFound
	}
	if err != nil {
		return authapi.Key{}, err
	}
	out.APIKey = k.String()
	return out, nil
}

// CreateKey creates an API key for app (ErrNotFound if there is no such
// app). The answer carries the full key; it is never readable again.
func (s *Store) CreateKey(ctx context.Context, app, name string, caps token.Capabilities) (authapi.Key, error) {
	var out authapi.Key
	err := s.withKeyChange(ctx, func(tx pgx.Tx, v int64) error {
		var err error
		out, err = s.insertKey(ctx, tx, v, app, name, caps)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return authapi.Key{}, err
	}
	if err != nil {
		return authapi.Key{}, fmt.Errorf("store: create key: %w", err)
	}
	return out, nil
}

const keyColumns = `id, app_id, name, caps, created_at, expires_at, revoked_at`

func scanKey(r pgx.Row) (authapi.Key, error) {
	var (
		k    authapi.Key
		caps []byte
	)
	if err := r.Scan(&k.ID, &k.App, &k.Name, &caps, &k.CreatedAt, &k.ExpiresAt, &k.RevokedAt); err != nil {
		return authapi.Key{}, err
	}
	if err := json.Unmarshal(caps, &k.Caps); err != nil {
		return authapi.Key{}, fmt.Errorf("key %s: caps: %w", k.ID, err)
	}
	return k, nil
}

// ListKeys lists app's keys, revoked ones included, oldest first; no
// secrets. ErrNotFound if there is no such app.
func (s *Store) ListKeys(ctx context.Context, app string) ([]authapi.Key, error) {
	var exists bool
	if err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM apps WHERE id = $1)`, app).Scan(&exists); err != nil {
		return nil, fmt.Errorf("store: list keys: %w", err)
	}
	if !exists {
		return nil, ErrNotFound
	}
	rows, err := s.db.Query(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE app_id = $1 ORDER BY created_at, id`, app)
	if err != nil {
		return nil, fmt.Errorf("store: list keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (authapi.Key, error) { return scanKey(r) })
	if err != nil {
		return nil, fmt.Errorf("store: list keys: %w", err)
	}
	return keys, nil
}

// RevokeKey revokes app's key id at once. Revoking a revoked key is not an
// error (the first revocation time stays).
func (s *Store) RevokeKey(ctx context.Context, app, id string) (authapi.Key, error) {
	var out authapi.Key
	err := s.withKeyChange(ctx, func(tx pgx.Tx, v int64) error {
		var err error
		out, err = scanKey(tx.QueryRow(ctx, `
			UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()), version = $3
			WHERE app_id = $1 AND id = $2 RETURNING `+keyColumns, app, id, v))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return authapi.Key{}, ErrNotFound
	}
	if err != nil {
		return authapi.Key{}, fmt.Errorf("store: revoke key: %w", err)
	}
	return out, nil
}

// RotateKey replaces app's key id with a new key of the same name and
// capabilities. The old key keeps working for grace (zero: it is revoked
// at once). Rotating a revoked or expired key is ErrKeyRevoked.
func (s *Store) RotateKey(ctx context.Context, app, id string, grace time.Duration) (authapi.Key, error) {
	var out authapi.Key
	err := s.withKeyChange(ctx, func(tx pgx.Tx, v int64) error {
		old, err := scanKey(tx.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE app_id = $1 AND id = $2 FOR UPDATE`, app, id))
		if err != nil {
			return err
		}
		if old.RevokedAt != nil || (old.ExpiresAt != nil && !old.ExpiresAt.After(s.now())) {
			return ErrKeyRevoked
		}
		if grace > 0 {
			_, err = tx.Exec(ctx, `UPDATE api_keys SET expires_at = least(coalesce(expires_at, 'infinity'), now() + $2::interval), version = $3 WHERE id = $1`, id, grace.String(), v)
		} else {
			_, err = tx.Exec(ctx, `UPDATE api_keys SET revoked_at = now(), version = $2 WHERE id = $1`, id, v)
		}
		if err != nil {
			return err
		}
		out, err = s.insertKey(ctx, tx, v, app, old.Name, old.Caps)
		return err
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return authapi.Key{}, ErrNotFound
	case errors.Is(err, ErrKeyRevoked):
		return authapi.Key{}, err
	case err != nil:
		return authapi.Key{}, fmt.Errorf("store: rotate key: %w", err)
	}
	return out, nil
}

// Authenticate checks an API key presented by a backend: its secret is
// compared in constant time with the stored hash. It returns the key's
// capabilities. An unknown key or a wrong secret is ErrBadKey (the same
// for both); a right secret of a revoked or expired key is ErrKeyRevoked.
func (s *Store) Authenticate(ctx context.Context, k token.Key) (authapi.Key, error) {
	var (
		hash []byte
		caps []byte
		out  authapi.Key
	)
	err := s.db.QueryRow(ctx, `SELECT id, app_id, name, caps, secret_hash, expires_at, revoked_at FROM api_keys WHERE id = $1`, k.ID).
		Scan(&out.ID, &out.App, &out.Name, &caps, &hash, &out.ExpiresAt, &out.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		// Compare anyway, so timing does not tell which key ids exist.
		seal.Equal(make([]byte, 32), k.Secret)
		return authapi.Key{}, ErrBadKey
	}
	if err != nil {
		return authapi.Key{}, fmt.Errorf("store: authenticate: %w", err)
	}
	if !seal.Equal(hash, k.Secret) || out.App != k.App {
		return authapi.Key{}, ErrBadKey
	}
	if out.RevokedAt != nil || (out.ExpiresAt != nil && !out.ExpiresAt.After(s.now())) {
		return authapi.Key{}, ErrKeyRevoked
	}
	if err := json.Unmarshal(caps, &out.Caps); err != nil {
		return authapi.Key{}, fmt.Errorf("store: key %s: caps: %w", out.ID, err)
	}
	return out, nil
}

// KeyVersion is the version of the key set: it grows with every change.
func (s *Store) KeyVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.db.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM api_keys`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: key version: %w", err)
	}
	return v, nil
}

// KeySet returns every key as gateways need it: live keys with their
// secret opened, revoked and expired ones flagged, without a secret.
func (s *Store) KeySet(ctx context.Context) (authapi.KeySet, error) {
	var set authapi.KeySet
	err := pgx.BeginTxFunc(ctx, s.db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM api_keys`).Scan(&set.Version); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, app_id, caps, secret_sealed, expires_at, revoked_at IS NOT NULL OR coalesce(expires_at <= now(), false) FROM api_keys ORDER BY id`)
		if err != nil {
			return err
		}
		set.Keys, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (authapi.InternalKey, error) {
			var (
				k      authapi.InternalKey
				caps   []byte
				sealed []byte
			)
			if err := r.Scan(&k.ID, &k.App, &caps, &sealed, &k.ExpiresAt, &k.Revoked); err != nil {
				return k, err
			}
			if err := json.Unmarshal(caps, &k.Caps); err != nil {
				return k, fmt.Errorf("key %s: caps: %w", k.ID, err)
			}
			if k.Revoked {
				k.ExpiresAt = nil
				return k, nil
			}
			secret, err := s.sealer.Open(sealed, sealContext(k.App, k.ID))
			if err != nil {
				return k, fmt.Errorf("key %s: %w", k.ID, err)
			}
			k.Secret = string(secret)
			return k, nil
		})
		return err
	})
	if err != nil {
		return authapi.KeySet{}, fmt.Errorf("store: key set: %w", err)
	}
	return set, nil
}
