package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// revokingKeyring is a static keyring that also knows revoked ids.
type revokingKeyring struct {
	StaticKeyring
	revoked map[string]bool
}

func (r revokingKeyring) Revoked(kid string) bool { return r.revoked[kid] }

func newSigningKey(t *testing.T, id string) (SigningKey, Key) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return SigningKey{ID: id, Private: priv}, Key{ID: id, Public: pub}
}

func TestVerifyEdDSA(t *testing.T) {
	sk, skPub := newSigningKey(t, "sk1")
	otherSK, _ := newSigningKey(t, "sk9") // not in the keyring
	bounded := Key{App: "demo", ID: "kb", Secret: []byte("bounded-secret-0123456789"), Caps: Capabilities{"chat.*": {OpJoin, OpPublish}}}
	other := Key{App: "other", ID: "ko", Secret: []byte("other-secret-0123456789")}
	ring := revokingKeyring{
		StaticKeyring: NewStaticKeyring(skPub, bounded, other, keyDemo),
		revoked:       map[string]bool{"kr": true},
	}
	v := &Verifier{Keys: ring, Now: func() time.Time { return now }}
	mint := func(sk SigningKey, k Key, caps Capabilities) string {
		tok, err := MintEdDSA(sk, k, "alice", caps, time.Minute, now)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	narrow := Capabilities{"chat.lobby": {OpJoin}}
	good := mint(sk, bounded, narrow)
	claims, err := v.Verify(good)
	if err != nil || claims.App != "demo" || claims.APIKey != "kb" || claims.ClientID() != "alice" {
		t.Fatalf("Verify = %+v, %v", claims, err)
	}

	parts := strings.Split(good, ".")
	forged := rawToken(map[string]any{"alg": "EdDSA", "kid": "sk1"}, goodClaims(), nil, nil)
	var hc map[string]any
	_ = json.Unmarshal(mustJSON(goodClaims()), &hc)
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"wider than the key", mint(sk, bounded, Capabilities{"*": {OpJoin}}), ErrCapsExceeded},
		{"op the key lacks", mint(sk, bounded, Capabilities{"chat.*": {OpAdmin}}), ErrCapsExceeded},
		{"revoked API key", mint(sk, Key{App: "demo", ID: "kr"}, narrow), ErrRevoked},
		{"unknown API key", mint(sk, Key{App: "demo", ID: "knone"}, narrow), ErrUnknownKey},
		{"API key of another app", mint(sk, Key{App: "demo", ID: "ko"}, narrow), ErrInvalidClaims},
		{"akid names a signing key", mint(sk, Key{App: "demo", ID: "sk1"}, narrow), ErrInvalidClaims},
		{"unknown signing key", mint(otherSK, bounded, narrow), ErrUnknownKey},
		{"tampered claims", parts[0] + "." + b64(mustJSON(with("app", "demo", "akid", "kb", "sub", "mallory"))) + "." + parts[2], ErrSignature},
		{"no signature", forged, ErrSignature},
		// alg confusion both ways: an HMAC over the public key bytes, and
		// an EdDSA header on an API key.
		{"HS256 with a signing key's kid", rawToken(hdr("sk1"), goodClaims(), sha256.New, skPub.Public), ErrSignature},
		{"EdDSA with an API key's kid", strings.Replace(good, parts[0], b64(mustJSON(map[string]any{"alg": "EdDSA", "kid": "k1", "typ": "JWT"})), 1), ErrSignature},
		{"HS256 with akid of another key", sign(with("akid", "kb")), ErrInvalidClaims},
	}
	for _, tt := range tests {
		_, err := v.Verify(tt.token)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}

	// An HS256 token of a bounded key is bounded too; its akid is the kid.
	hs, err := Mint(bounded, "bob", Capabilities{"chat.x": {OpPublish}}, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.Verify(hs); err != nil || c.APIKey != "kb" {
		t.Fatalf("HS256 within bounds: %+v, %v", c, err)
	}
	wide, _ := Mint(bounded, "bob", Capabilities{"news": {OpJoin}}, time.Minute, now)
	if _, err := v.Verify(wide); !errors.Is(err, ErrCapsExceeded) {
		t.Fatalf("HS256 wider than its key: %v", err)
	}
	revokedHS := rawToken(hdr("kr"), goodClaims(), sha256.New, keyDemo.Secret)
	if _, err := v.Verify(revokedHS); !errors.Is(err, ErrRevoked) {
		t.Fatalf("HS256 of a revoked key: %v", err)
	}
}

func TestJWKSRoundTrip(t *testing.T) {
	_, pub := newSigningKey(t, "sk1")
	set := JWKS{Keys: []JWK{PublicJWK("sk1", pub.Public), {Kty: "RSA", Kid: "rsa1"}, {Kty: "OKP", Crv: "X25519", Kid: "x1"}}}
	raw, _ := json.Marshal(set)
	var back JWKS
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	keys, err := back.SigningKeys()
	if err != nil || len(keys) != 1 || keys[0].ID != "sk1" || !keys[0].Public.Equal(pub.Public) || keys[0].App != "" {
		t.Fatalf("SigningKeys = %+v, %v", keys, err)
	}
	bad := JWKS{Keys: []JWK{{Kty: "OKP", Crv: "Ed25519", Kid: "sk2", X: "AAAA"}}}
	if _, err := bad.SigningKeys(); err == nil {
		t.Fatal("short x accepted")
	}
}

func TestMintEdDSARejects(t *testing.T) {
	sk, _ := newSigningKey(t, "sk1")
	k := Key{App: "demo", ID: "k1"}
	if _, err := MintEdDSA(SigningKey{ID: "sk1"}, k, "u", nil, time.Minute, now); err == nil {
		t.Error("no private key accepted")
	}
	if _, err := MintEdDSA(sk, Key{ID: "k1"}, "u", nil, time.Minute, now); err == nil {
		t.Error("no app accepted")
	}
	if _, err := MintEdDSA(sk, k, "", nil, time.Minute, now); err == nil {
		t.Error("no client accepted")
	}
	if _, err := MintEdDSA(sk, k, "u", nil, 0, now); err == nil {
		t.Error("zero ttl accepted")
	}
}
