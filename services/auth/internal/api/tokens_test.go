package api

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
)

// fetchJWKS returns the signing keys the service publishes.
func (ts *testServer) fetchJWKS(t *testing.T) []token.Key {
	t.Helper()
	r := ts.do(t, "GET", authapi.PathJWKS, "", nil)
	var set token.JWKS
	if err := json.Unmarshal(r.raw, &set); r.status != 200 || err != nil {
		t.Fatalf("jwks: %d %s", r.status, r.raw)
	}
	keys, err := set.SigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func (ts *testServer) createKey(t *testing.T, app string, caps token.Capabilities) (authapi.Key, token.Key) {
	t.Helper()
	r := ts.do(t, "POST", "/admin/v1/apps/"+app+"/keys", adminToken, authapi.CreateKey{Caps: caps})
	var k authapi.Key
	if err := json.Unmarshal(r.raw, &k); r.status != 201 || err != nil {
		t.Fatalf("create key: %d %s", r.status, r.raw)
	}
	full, err := token.ParseAPIKey(k.APIKey)
	if err != nil {
		t.Fatal(err)
	}
	return k, full
}

func TestTokens(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	ts.do(t, "POST", "/admin/v1/apps", adminToken, authapi.CreateApp{ID: "demo"})
	caps := token.Capabilities{"chat.*": {token.OpJoin, token.OpPublish}}
	meta, key := ts.createKey(t, "demo", caps)

	req := authapi.TokenRequest{ClientID: "alice", Caps: token.Capabilities{"chat.lobby": {token.OpJoin}}, TTL: "10m"}
	r := ts.do(t, "POST", authapi.PathTokens, key.String(), req)
	var resp authapi.TokenResponse
	if err := json.Unmarshal(r.raw, &resp); r.status != 200 || err != nil || resp.Token == "" {
		t.Fatalf("token: %d %s", r.status, r.raw)
	}
	if d := time.Until(resp.ExpiresAt); d < 9*time.Minute || d > 11*time.Minute {
		t.Errorf("expires_at %v is not 10 minutes away", resp.ExpiresAt)
	}
	verifier := func() *token.Verifier {
		keys := append(ts.fetchJWKS(t), token.Key{App: "demo", ID: meta.ID, Caps: caps})
		return &token.Verifier{Keys: token.NewStaticKeyring(keys...)}
	}
	claims, err := verifier().Verify(resp.Token)
	if err != nil || claims.App != "demo" || claims.ClientID() != "alice" || claims.APIKey != meta.ID || !claims.Caps.Allows("chat.lobby", token.OpJoin) {
		t.Fatalf("issued token: %+v, %v", claims, err)
	}

	wrong := key
	wrong.Secret = []byte("wrong-secret-0123456789")
	cases := []struct {
		name   string
		cred   string
		body   any
		status int
		code   string
	}{
		{"no credential", "", req, 401, "unauthorized"},
		{"admin token is not an API key", adminToken, req, 401, "unauthorized"},
		{"wrong secret", wrong.String(), req, 401, "unauthorized"},
		{"wider pattern", key.String(), authapi.TokenRequest{ClientID: "a", Caps: token.Capabilities{"*": {token.OpJoin}}}, 403, "capability_exceeded"},
		{"op the key lacks", key.String(), authapi.TokenRequest{ClientID: "a", Caps: token.Capabilities{"chat.x": {token.OpHistory}}}, 403, "capability_exceeded"},
		{"unknown op", key.String(), `{"client_id":"a","caps":{"x":["fly"]}}`, 400, "bad_request"},
		{"ttl over the max", key.String(), authapi.TokenRequest{ClientID: "a", TTL: "48h"}, 400, "bad_request"},
		{"ttl garbage", key.String(), authapi.TokenRequest{ClientID: "a", TTL: "soon"}, 400, "bad_request"},
		{"no client id", key.String(), authapi.TokenRequest{}, 400, "bad_request"},
	}
	for _, c := range cases {
		if r := ts.do(t, "POST", authapi.PathTokens, c.cred, c.body); r.status != c.status || r.code() != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.raw, c.status, c.code)
		}
	}

	// Rotation with an overlap: new tokens get the new kid, old ones still
	// verify. Without overlap the old keys leave the JWKS at once.
	r = ts.do(t, "POST", "/admin/v1/signing-keys/rotate", adminToken, authapi.RotateSigningKey{Overlap: "1h"})
	var sks authapi.SigningKeys
	if err := json.Unmarshal(r.raw, &sks); r.status != 200 || err != nil || len(sks.Keys) != 2 || !sks.Keys[0].Active || sks.Keys[1].Active || sks.Keys[1].RetireAt == nil {
		t.Fatalf("rotate: %d %s", r.status, r.raw)
	}
	r = ts.do(t, "POST", authapi.PathTokens, key.String(), req)
	var resp2 authapi.TokenResponse
	_ = json.Unmarshal(r.raw, &resp2)
	if resp2.KeyID == resp.KeyID || resp2.KeyID != sks.Keys[0].ID {
		t.Fatalf("after rotation the token is signed by %s (was %s)", resp2.KeyID, resp.KeyID)
	}
	v := verifier()
	for _, tok := range []string{resp.Token, resp2.Token} {
		if _, err := v.Verify(tok); err != nil {
			t.Fatalf("during the overlap: %v", err)
		}
	}
	if r := ts.do(t, "POST", "/admin/v1/signing-keys/rotate", adminToken, authapi.RotateSigningKey{Overlap: "0s"}); r.status != 200 {
		t.Fatalf("rotate: %d %s", r.status, r.raw)
	}
	if keys := ts.fetchJWKS(t); len(keys) != 1 || keys[0].ID == resp.KeyID || keys[0].ID == resp2.KeyID {
		t.Fatalf("after rotating without overlap the JWKS holds %d keys", len(keys))
	}
	if _, err := verifier().Verify(resp.Token); !errors.Is(err, token.ErrUnknownKey) {
		t.Fatalf("token of a retired key: %v", err)
	}

	// A revoked key gets no more tokens.
	ts.do(t, "POST", "/admin/v1/apps/demo/keys/"+meta.ID+"/revoke", adminToken, nil)
	if r := ts.do(t, "POST", authapi.PathTokens, key.String(), req); r.status != 403 || r.code() != "forbidden" {
		t.Fatalf("revoked key: %d %s", r.status, r.raw)
	}
	if logs := ts.logs.String(); strings.Contains(logs, string(key.Secret)) || strings.Contains(logs, resp.Token) {
		t.Fatal("a secret or token reached the log")
	}
}
