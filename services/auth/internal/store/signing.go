package store

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
)

// signingLock serializes signing key rotations across instances.
const signingLock = 0x726f6f6d63736b79 // "roomcsky"

// ErrNoSigningKey means no signing key is active (EnsureSigningKey was not
// run, or every key was retired without a replacement).
var ErrNoSigningKey = errors.New("store: no active signing key")

func signingContext(id string) string { return "signing-key:" + id }

// PublishedKey is a signing key's public half and schedule.
type PublishedKey struct {
	authapi.SigningKey
	Public ed25519.PublicKey
}

// insertSigningKey creates a new active signing key.
func (s *Store) insertSigningKey(ctx context.Context, tx pgx.Tx) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := "sk" + hex.EncodeToString(b[:])
	_, err = tx.Exec(ctx, `INSERT INTO signing_keys (id, public_key, private_sealed) VALUES ($1, $2, $3)`,
		id, []byte(pub), s.sealer.Seal(priv.Seed(), signingContext(id)))
	return id, err
}

// withSigningLock runs fn in a transaction holding the rotation lock.
func (s *Store) withSigningLock(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(signingLock)); err != nil {
			return err
		}
		return fn(tx)
	})
}

// activeAge returns the age of the active key, or false if there is none.
func activeAge(ctx context.Context, tx pgx.Tx) (time.Duration, bool, error) {
	var age time.Duration
	err := tx.QueryRow(ctx, `SELECT clock_timestamp() - created_at FROM signing_keys WHERE retire_at IS NULL ORDER BY created_at DESC LIMIT 1`).Scan(&age)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	return age, err == nil, err
}

// rotate retires every active key after overlap (keys already retiring
// retire no later than that) and creates a new active key.
func (s *Store) rotate(ctx context.Context, tx pgx.Tx, overlap time.Duration) (string, error) {
	if _, err := tx.Exec(ctx, `
		UPDATE signing_keys SET retire_at = least(coalesce(retire_at, 'infinity'), clock_timestamp() + $1::interval)
		WHERE retire_at IS NULL OR retire_at > clock_timestamp()`, overlap.String()); err != nil {
		return "", err
	}
	return s.insertSigningKey(ctx, tx)
}

// RotateSigningKeyIfOlder makes sure a signing key is active, and replaces
// it when it is older than maxAge (0: never); replaced keys stay published
// for overlap. It reports whether it created a key.
func (s *Store) RotateSigningKeyIfOlder(ctx context.Context, maxAge, overlap time.Duration) (bool, error) {
	created := false
	err := s.withSigningLock(ctx, func(tx pgx.Tx) error {
		age, ok, err := activeAge(ctx, tx)
		if err != nil {
			return err
		}
		if ok && (maxAge <= 0 || age < maxAge) {
			return nil
		}
		created = true
		_, err = s.rotate(ctx, tx, overlap)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: signing key rotation: %w", err)
	}
	return created, nil
}

// RotateSigningKey replaces the active signing key now; the replaced keys
// stay published for overlap (0: retired at once). It returns the new key
// id.
func (s *Store) RotateSigningKey(ctx context.Context, overlap time.Duration) (string, error) {
	var id string
	err := s.withSigningLock(ctx, func(tx pgx.Tx) error {
		var err error
		id, err = s.rotate(ctx, tx, overlap)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("store: signing key rotation: %w", err)
	}
	return id, nil
}

// ActiveSigningKey returns the key that signs new tokens.
func (s *Store) ActiveSigningKey(ctx context.Context) (token.SigningKey, error) {
	var (
		id     string
		sealed []byte
	)
	err := s.db.QueryRow(ctx, `SELECT id, private_sealed FROM signing_keys WHERE retire_at IS NULL ORDER BY created_at DESC LIMIT 1`).Scan(&id, &sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return token.SigningKey{}, ErrNoSigningKey
	}
	if err != nil {
		return token.SigningKey{}, fmt.Errorf("store: active signing key: %w", err)
	}
	seed, err := s.sealer.Open(sealed, signingContext(id))
	if err != nil || len(seed) != ed25519.SeedSize {
		return token.SigningKey{}, fmt.Errorf("store: signing key %s: %w", id, err)
	}
	return token.SigningKey{ID: id, Private: ed25519.NewKeyFromSeed(seed)}, nil
}

// PublishedSigningKeys lists the keys whose tokens verify: the active one
// and those not retired yet, newest first.
func (s *Store) PublishedSigningKeys(ctx context.Context) ([]PublishedKey, error) {
	rows, err := s.db.Query(ctx, `
		SELECT id, public_key, created_at, retire_at FROM signing_keys
		WHERE retire_at IS NULL OR retire_at > clock_timestamp() ORDER BY created_at DESC`)
	if err != nil {
		return nil, fmt.Errorf("store: signing keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PublishedKey, error) {
		var k PublishedKey
		var pub []byte
		err := r.Scan(&k.ID, &pub, &k.CreatedAt, &k.RetireAt)
		k.Public, k.Active = pub, k.RetireAt == nil
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: signing keys: %w", err)
	}
	return keys, nil
}
