package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func TestOAuthProviders(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := context.Background()
	if _, err := s.CreateApp(ctx, "demo", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutOAuthProvider(ctx, OAuthProvider{App: "nope", Name: "corp", Kind: "oidc", ClientID: "c"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("provider of a missing app: %v", err)
	}
	p := OAuthProvider{App: "demo", Name: "corp", Kind: "oidc", Issuer: "https://id.example.com", ClientID: "c1",
		ClientSecret: []byte("secret-one"), Scopes: []string{"openid", "email"}}
	got, created, err := s.PutOAuthProvider(ctx, p)
	if err != nil || !created || !got.HasClientSecret || got.ClientSecret != nil {
		t.Fatalf("create: %+v %v %v", got, created, err)
	}
	// The secret is sealed at rest, bound to its provider.
	var sealed []byte
	if err := pool.QueryRow(ctx, `SELECT client_secret_sealed FROM oauth_providers WHERE app_id = 'demo' AND name = 'corp'`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret-one")) {
		t.Fatal("client secret stored in clear")
	}
	// An update without a secret keeps the stored one.
	p.ClientSecret, p.ClientID = nil, "c2"
	if _, created, err := s.PutOAuthProvider(ctx, p); err != nil || created {
		t.Fatalf("update: %v %v", created, err)
	}
	full, err := s.OAuthProvider(ctx, "demo", "corp")
	if err != nil || string(full.ClientSecret) != "secret-one" || full.ClientID != "c2" || len(full.Scopes) != 2 {
		t.Fatalf("get: %+v %v", full, err)
	}
	if _, _, err := s.PutOAuthProvider(ctx, OAuthProvider{App: "demo", Name: "gh", Kind: "github", ClientID: "g"}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListOAuthProviders(ctx, "demo")
	if err != nil || len(list) != 2 || list[0].Name != "corp" || list[0].ClientSecret != nil || !list[0].HasClientSecret || list[1].HasClientSecret {
		t.Fatalf("list: %+v %v", list, err)
	}
	if _, err := s.ListOAuthProviders(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("list of a missing app: %v", err)
	}
	if err := s.DeleteOAuthProvider(ctx, "demo", "gh"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOAuthProvider(ctx, "demo", "gh"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := s.OAuthProvider(ctx, "demo", "gh"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted provider: %v", err)
	}
}
