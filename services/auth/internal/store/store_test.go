package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/seal"
	"github.com/roomcast/roomcast/services/auth/authtest"
)

// newStore migrates a fresh database and returns a Store over it.
func newStore(t *testing.T) (*Store, *pgxpool.Pool) {
	t.Helper()
	pool := authtest.Pool(t)
	sealer, err := seal.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return New(pool, sealer), pool
}

func TestKeysLifecycle(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := context.Background()
	if _, err := s.CreateApp(ctx, "demo", "Demo"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateApp(ctx, "demo", "again"); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate app: %v", err)
	}
	if _, err := s.CreateKey(ctx, "nope", "", token.Capabilities{"*": {token.OpJoin}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("key for a missing app: %v", err)
	}
	caps := token.Capabilities{"chat.*": {token.OpJoin, token.OpPublish}}
	k, err := s.CreateKey(ctx, "demo", "backend", caps)
	if err != nil {
		t.Fatal(err)
	}
	full, err := token.ParseAPIKey(k.APIKey)
	if err != nil || full.App != "demo" || full.ID != k.ID {
		t.Fatalf("created key %q does not parse: %v", token.Fingerprint(k.APIKey), err)
	}

	// Stored protected: the table holds neither the secret nor anything
	// that contains it.
	var hash, sealed []byte
	if err := pool.QueryRow(ctx, `SELECT secret_hash, secret_sealed FROM api_keys WHERE id = $1`, k.ID).Scan(&hash, &sealed); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, full.Secret) || bytes.Contains(hash, full.Secret) || !bytes.Equal(hash, seal.Hash(full.Secret)) {
		t.Fatal("the secret is stored in clear or unhashed")
	}

	got, err := s.Authenticate(ctx, full)
	if err != nil || got.ID != k.ID || !got.Caps.Allows("chat.x", token.OpPublish) {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}
	wrong := full
	wrong.Secret = []byte("wrong-secret-wrong-secret")
	otherApp := full
	otherApp.App = "other"
	unknown := full
	unknown.ID = "knope"
	for name, k := range map[string]token.Key{"wrong secret": wrong, "other app": otherApp, "unknown id": unknown} {
		if _, err := s.Authenticate(ctx, k); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: %v, want ErrBadKey", name, err)
		}
	}

	v0, _ := s.KeyVersion(ctx)
	set, err := s.KeySet(ctx)
	if err != nil || len(set.Keys) != 1 || set.Keys[0].Secret != string(full.Secret) || set.Version != v0 || v0 == 0 {
		t.Fatalf("KeySet = %+v (version %d), %v", set.Version, v0, err)
	}

	// Rotation with a grace period: both work, the old one expires.
	rotated, err := s.RotateKey(ctx, "demo", k.ID, time.Hour)
	if err != nil || rotated.ID == k.ID || rotated.Name != "backend" || !rotated.Caps.Within(caps) || rotated.APIKey == "" {
		t.Fatalf("RotateKey = %+v, %v", rotated, err)
	}
	if _, err := s.Authenticate(ctx, full); err != nil {
		t.Fatalf("old key within its grace period: %v", err)
	}
	keys, err := s.ListKeys(ctx, "demo")
	if err != nil || len(keys) != 2 || keys[0].ExpiresAt == nil || keys[1].ExpiresAt != nil {
		t.Fatalf("ListKeys = %+v, %v", keys, err)
	}
	for _, k := range keys {
		if k.APIKey != "" {
			t.Fatal("ListKeys shows a secret")
		}
	}
	v1, _ := s.KeyVersion(ctx)
	if v1 <= v0 {
		t.Fatalf("version did not grow on rotation: %d → %d", v0, v1)
	}

	// Revocation: at once, idempotent, visible in the key set.
	if _, err := s.RevokeKey(ctx, "demo", k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, full); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("revoked key: %v", err)
	}
	if _, err := s.RevokeKey(ctx, "demo", k.ID); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	if _, err := s.RevokeKey(ctx, "other", k.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke through another app: %v", err)
	}
	if _, err := s.RotateKey(ctx, "demo", k.ID, 0); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("rotate a revoked key: %v", err)
	}
	set, err = s.KeySet(ctx)
	if err != nil || len(set.Keys) != 2 {
		t.Fatalf("KeySet = %+v, %v", set, err)
	}
	for _, ik := range set.Keys {
		if ik.ID == k.ID && (!ik.Revoked || ik.Secret != "") {
			t.Errorf("revoked key in the set: %+v", ik)
		}
		if ik.ID == rotated.ID && (ik.Revoked || ik.Secret == "") {
			t.Errorf("live key in the set: revoked=%v", ik.Revoked)
		}
	}

	// Rotation without grace revokes the old key at once.
	again, err := s.RotateKey(ctx, "demo", rotated.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := token.ParseAPIKey(rotated.APIKey)
	if _, err := s.Authenticate(ctx, old); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("key rotated without grace: %v", err)
	}
	newest, _ := token.ParseAPIKey(again.APIKey)
	if _, err := s.Authenticate(ctx, newest); err != nil {
		t.Fatal(err)
	}
}

// TestSealedSecretIsBoundToItsKey: a sealed secret copied onto another key's
// row does not open, so a database writer cannot move secrets around.
func TestSealedSecretIsBoundToItsKey(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := context.Background()
	if _, err := s.CreateApp(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	caps := token.Capabilities{"*": {token.OpJoin}}
	k1, _ := s.CreateKey(ctx, "a", "", caps)
	k2, _ := s.CreateKey(ctx, "a", "", caps)
	if _, err := pool.Exec(ctx, `UPDATE api_keys SET secret_sealed = (SELECT secret_sealed FROM api_keys WHERE id = $1) WHERE id = $2`, k1.ID, k2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KeySet(ctx); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("KeySet with a moved secret: %v, want ErrOpen", err)
	}
}

func TestSigningKeys(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := context.Background()
	if _, err := s.ActiveSigningKey(ctx); !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("before any key: %v", err)
	}
	created, err := s.RotateSigningKeyIfOlder(ctx, time.Hour, time.Hour)
	if err != nil || !created {
		t.Fatalf("first key: %v %v", created, err)
	}
	if created, err := s.RotateSigningKeyIfOlder(ctx, time.Hour, time.Hour); err != nil || created {
		t.Fatalf("young key rotated: %v %v", created, err)
	}
	sk, err := s.ActiveSigningKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sealed []byte
	if err := pool.QueryRow(ctx, `SELECT private_sealed FROM signing_keys WHERE id = $1`, sk.ID).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, sk.Private.Seed()) {
		t.Fatal("the private key is stored in clear")
	}
	// A key older than maxAge is replaced; the old one stays published.
	if created, err := s.RotateSigningKeyIfOlder(ctx, time.Nanosecond, time.Hour); err != nil || !created {
		t.Fatalf("old key not rotated: %v %v", created, err)
	}
	keys, err := s.PublishedSigningKeys(ctx)
	if err != nil || len(keys) != 2 || keys[1].ID != sk.ID || keys[1].Active || !keys[0].Active {
		t.Fatalf("published = %+v, %v", keys, err)
	}
	next, _ := s.ActiveSigningKey(ctx)
	if next.ID == sk.ID || !bytes.Equal(keys[0].Public, next.Private.Public().(ed25519.PublicKey)) {
		t.Fatal("the active key is not the newest published one")
	}
}
