package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
	"testing"
	"time"
)

var (
	now      = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	keyDemo  = Key{App: "demo", ID: "k1", Secret: []byte("demo-secret-0123456789")}
	keyOther = Key{App: "other", ID: "k2", Secret: []byte("other-secret-0123456789")}
	// keyNoSecret stands for a key that verifies another algorithm (e.g. an
	// EdDSA public key): it must never verify an HS256 token.
	keyNoSecret = Key{App: "demo", ID: "k3"}
	// keyShort has a secret too short to trust.
	keyShort = Key{App: "demo", ID: "k4", Secret: []byte("short")}

	sentinels = []error{ErrMissing, ErrMalformed, ErrExpired, ErrSignature, ErrUnknownKey, ErrInvalidClaims, ErrRevoked, ErrCapsExceeded}
)

func testVerifier() *Verifier {
	return &Verifier{
		Keys: NewStaticKeyring(keyDemo, keyOther, keyNoSecret, keyShort),
		Now:  func() time.Time { return now },
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// rawToken builds a JWT by hand so tests can produce what Mint refuses to:
// header and claims as given, signed with HMAC-h over secret (no signature
// when h is nil).
func rawToken(header, claims map[string]any, h func() hash.Hash, secret []byte) string {
	signing := b64(mustJSON(header)) + "." + b64(mustJSON(claims))
	var sig []byte
	if h != nil {
		mac := hmac.New(h, secret)
		mac.Write([]byte(signing))
		sig = mac.Sum(nil)
	}
	return signing + "." + b64(sig)
}

func hdr(kid string) map[string]any { return map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid} }

func goodClaims() map[string]any {
	return map[string]any{
		"app":  "demo",
		"sub":  "user-1",
		"exp":  now.Add(time.Minute).Unix(),
		"iat":  now.Unix(),
		"jti":  "id-1",
		"caps": map[string]any{"chat.*": []string{"join", "publish"}},
	}
}

// with returns goodClaims changed by kv pairs; a nil value deletes the claim.
func with(kv ...any) map[string]any {
	c := goodClaims()
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func sign(claims map[string]any) string {
	return rawToken(hdr("k1"), claims, sha256.New, keyDemo.Secret)
}

func TestVerify(t *testing.T) {
	minted, err := Mint(keyDemo, "user-1", Capabilities{"chat.*": {OpJoin}}, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	good := sign(goodClaims())
	parts := strings.Split(good, ".")
	tamperedClaims := parts[0] + "." + b64(mustJSON(with("sub", "admin"))) + "." + parts[2]
	tooManyCaps := map[string]any{}
	for i := range MaxPatterns + 1 {
		tooManyCaps[fmt.Sprint("r", i)] = []string{"join"}
	}
	noAlg := hdr("k1")
	delete(noAlg, "alg")
	noKid := hdr("k1")
	delete(noKid, "kid")
	bigPad := strings.Repeat("x", DefaultMaxTokenBytes)

	tests := []struct {
		name  string
		token string
		want  error // nil: valid
	}{
		{"minted", minted, nil},
		{"hand-made", good, nil},
		{"no caps", sign(with("caps", nil)), nil},
		{"expired within leeway", sign(with("exp", now.Add(-3*time.Second).Unix())), nil},
		{"nbf in the past", sign(with("nbf", now.Add(-time.Hour).Unix())), nil},

		{"missing", "", ErrMissing},
		{"garbage", "not a token", ErrMalformed},
		{"two segments", "abc.def", ErrMalformed},
		{"four segments", good + ".x", ErrMalformed},
		{"bad base64", "!!!." + parts[1] + "." + parts[2], ErrMalformed},
		{"header not JSON", b64([]byte("nope")) + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"claims not JSON", parts[0] + "." + b64([]byte("[")) + "." + parts[2], ErrMalformed},
		{"caps wrong type", sign(with("caps", 5)), ErrMalformed},
		{"exp wrong type", sign(with("exp", "tomorrow")), ErrMalformed},
		{"oversized", sign(with("pad", bigPad)), ErrMalformed},

		{"wrong signature", tamperedClaims, ErrSignature},
		{"empty signature", parts[0] + "." + parts[1] + ".", ErrSignature},
		{"another key's secret", rawToken(hdr("k1"), goodClaims(), sha256.New, keyOther.Secret), ErrSignature},
		{"alg none", rawToken(map[string]any{"alg": "none", "kid": "k1"}, goodClaims(), nil, nil), ErrSignature},
		{"alg None", rawToken(map[string]any{"alg": "None", "kid": "k1"}, goodClaims(), nil, nil), ErrSignature},
		{"alg HS512 with the right secret", rawToken(map[string]any{"alg": "HS512", "kid": "k1"}, goodClaims(), sha512.New, keyDemo.Secret), ErrSignature},
		{"alg RS256", rawToken(map[string]any{"alg": "RS256", "kid": "k1"}, goodClaims(), sha256.New, keyDemo.Secret), ErrSignature},
		{"alg EdDSA", rawToken(map[string]any{"alg": "EdDSA", "kid": "k1"}, goodClaims(), sha256.New, keyDemo.Secret), ErrSignature},
		{"alg missing", rawToken(noAlg, goodClaims(), sha256.New, keyDemo.Secret), ErrSignature},
		{"alg confusion: HS256 on a key without secret", rawToken(hdr("k3"), goodClaims(), sha256.New, nil), ErrSignature},
		{"key with a short secret", rawToken(hdr("k4"), goodClaims(), sha256.New, keyShort.Secret), ErrSignature},

		{"unknown kid", rawToken(hdr("k9"), goodClaims(), sha256.New, keyDemo.Secret), ErrUnknownKey},
		{"missing kid", rawToken(noKid, goodClaims(), sha256.New, keyDemo.Secret), ErrMalformed},
		{"empty kid", rawToken(hdr(""), goodClaims(), sha256.New, keyDemo.Secret), ErrMalformed},
		{"kid not a string", rawToken(map[string]any{"alg": "HS256", "kid": 1}, goodClaims(), sha256.New, keyDemo.Secret), ErrMalformed},

		{"expired", sign(with("exp", now.Add(-time.Minute).Unix())), ErrExpired},
		{"not yet valid", sign(with("nbf", now.Add(time.Minute).Unix())), ErrInvalidClaims},
		{"issued in the future", sign(with("iat", now.Add(time.Minute).Unix())), ErrInvalidClaims},
		{"wrong app", sign(with("app", "other")), ErrInvalidClaims},
		{"other app's key with this app's claim", rawToken(hdr("k2"), goodClaims(), sha256.New, keyOther.Secret), ErrInvalidClaims},
		{"missing app", sign(with("app", nil)), ErrInvalidClaims},
		{"missing sub", sign(with("sub", nil)), ErrInvalidClaims},
		{"empty sub", sign(with("sub", "")), ErrInvalidClaims},
		{"sub with control character", sign(with("sub", "a\nb")), ErrInvalidClaims},
		{"sub too long", sign(with("sub", strings.Repeat("u", MaxClientIDBytes+1))), ErrInvalidClaims},
		{"missing exp", sign(with("exp", nil)), ErrInvalidClaims},
		{"caps unknown op", sign(with("caps", map[string]any{"*": []string{"superuser"}})), ErrInvalidClaims},
		{"caps empty pattern", sign(with("caps", map[string]any{"": []string{"join"}})), ErrInvalidClaims},
		{"caps no ops", sign(with("caps", map[string]any{"*": []string{}})), ErrInvalidClaims},
		{"caps too many patterns", sign(with("caps", tooManyCaps)), ErrInvalidClaims},
		// A bad claim beats expiry: refreshing would not fix it.
		{"expired and wrong app", sign(with("exp", now.Add(-time.Minute).Unix(), "app", "other")), ErrInvalidClaims},
		{"expired and not yet valid", sign(with("exp", now.Add(-time.Minute).Unix(), "nbf", now.Add(time.Minute).Unix())), ErrInvalidClaims},
		// Expiry is only reported once the signature is good.
		{"expired with a bad signature", rawToken(hdr("k1"), with("exp", now.Add(-time.Minute).Unix()), sha256.New, keyOther.Secret), ErrSignature},
	}
	v := testVerifier()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims, err := v.Verify(tt.token)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if claims.App != "demo" || claims.ClientID() != "user-1" {
					t.Fatalf("claims = %+v", claims)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify succeeded, want %v", tt.want)
			}
			if claims != nil {
				t.Errorf("Verify returned claims with error %v", err)
			}
			for _, s := range sentinels {
				if got, want := errors.Is(err, s), s == tt.want; got != want {
					t.Errorf("errors.Is(%q, %v) = %v, want %v", err, s, got, want)
				}
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("error reveals the token: %v", err)
			}
			for _, k := range []Key{keyDemo, keyOther} {
				if strings.Contains(err.Error(), string(k.Secret)) {
					t.Errorf("error reveals a secret: %v", err)
				}
			}
		})
	}
}

func TestVerifyLeeway(t *testing.T) {
	tok := sign(with("exp", now.Add(-3*time.Second).Unix()))
	v := testVerifier()
	if _, err := v.Verify(tok); err != nil {
		t.Errorf("default leeway: %v", err)
	}
	v.Leeway = -1
	if _, err := v.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Errorf("no leeway: err = %v, want ErrExpired", err)
	}
	v.Leeway = time.Minute
	if _, err := v.Verify(sign(with("exp", now.Add(-30*time.Second).Unix()))); err != nil {
		t.Errorf("one minute leeway: %v", err)
	}
	if _, err := v.Verify(sign(with("nbf", now.Add(30*time.Second).Unix()))); err != nil {
		t.Errorf("one minute leeway on nbf: %v", err)
	}
	if _, err := v.Verify(sign(with("iat", now.Add(30*time.Second).Unix()))); err != nil {
		t.Errorf("one minute leeway on iat: %v", err)
	}
}

func TestVerifyMaxTokenBytes(t *testing.T) {
	tok := sign(with("pad", strings.Repeat("x", DefaultMaxTokenBytes)))
	v := testVerifier()
	if _, err := v.Verify(tok); !errors.Is(err, ErrMalformed) {
		t.Fatalf("default limit: err = %v, want ErrMalformed", err)
	}
	v.MaxTokenBytes = len(tok)
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("raised limit: %v", err)
	}
	v.MaxTokenBytes = 100
	if _, err := v.Verify(sign(goodClaims())); !errors.Is(err, ErrMalformed) {
		t.Fatalf("lowered limit: err = %v, want ErrMalformed", err)
	}
}

func TestVerifyUsesRealClockByDefault(t *testing.T) {
	v := &Verifier{Keys: NewStaticKeyring(keyDemo)}
	old, err := Mint(keyDemo, "u", nil, time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(old); !errors.Is(err, ErrExpired) {
		t.Errorf("token minted an hour ago: err = %v, want ErrExpired", err)
	}
	fresh, err := Mint(keyDemo, "u", nil, time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(fresh); err != nil {
		t.Errorf("fresh token: %v", err)
	}
}

func TestVerifyWithoutKeyring(t *testing.T) {
	v := &Verifier{}
	if _, err := v.Verify(sign(goodClaims())); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("err = %v, want ErrUnknownKey", err)
	}
}

func TestMintVerifyRoundTrip(t *testing.T) {
	caps := Capabilities{
		"chat.*":   {OpJoin, OpPublish, OpPresence},
		"日本/*":     {OpHistory},
		"*":        {OpMetrics},
		"a:b/c#d*": {OpJoin},
	}
	tok, err := Mint(keyOther, "client:42/é", caps, 90*time.Second, now)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := testVerifier().Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if claims.App != "other" || claims.ClientID() != "client:42/é" {
		t.Errorf("app/client = %q/%q", claims.App, claims.ClientID())
	}
	if !claims.ExpiresAt.Time.Equal(now.Add(90*time.Second)) || !claims.IssuedAt.Time.Equal(now) {
		t.Errorf("exp/iat = %v/%v", claims.ExpiresAt, claims.IssuedAt)
	}
	if claims.ID == "" {
		t.Error("no token id")
	}
	if fmt.Sprint(claims.Caps) != fmt.Sprint(caps) {
		t.Errorf("caps = %v, want %v", claims.Caps, caps)
	}
	if !claims.Caps.Allows("chat.x", OpPublish) || claims.Caps.Allows("chat.x", OpHistory) {
		t.Error("round-tripped caps allow the wrong things")
	}

	// The kid header names the key.
	header, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(header, &h); err != nil {
		t.Fatal(err)
	}
	if h["kid"] != "k2" || h["alg"] != "HS256" {
		t.Errorf("header = %v", h)
	}

	// Token ids are unique.
	tok2, _ := Mint(keyOther, "client:42/é", caps, 90*time.Second, now)
	claims2, err := testVerifier().Verify(tok2)
	if err != nil {
		t.Fatal(err)
	}
	if claims2.ID == claims.ID {
		t.Error("two tokens share an id")
	}

	// It expires when it says.
	v := testVerifier()
	v.Leeway = -1
	v.Now = func() time.Time { return now.Add(90 * time.Second) }
	if _, err := v.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Errorf("at exp: err = %v, want ErrExpired", err)
	}
}

func TestMintRejects(t *testing.T) {
	caps := Capabilities{"*": {OpJoin}}
	tests := []struct {
		name   string
		key    Key
		client string
		caps   Capabilities
		ttl    time.Duration
	}{
		{"key without secret", keyNoSecret, "u", caps, time.Minute},
		{"key with short secret", keyShort, "u", caps, time.Minute},
		{"key with bad app", Key{App: "a.b", ID: "k", Secret: keyDemo.Secret}, "u", caps, time.Minute},
		{"key with bad id", Key{App: "a", ID: "k:1", Secret: keyDemo.Secret}, "u", caps, time.Minute},
		{"empty client id", keyDemo, "", caps, time.Minute},
		{"client id with control character", keyDemo, "a\x00", caps, time.Minute},
		{"bad caps", keyDemo, "u", Capabilities{"*": {"superuser"}}, time.Minute},
		{"zero ttl", keyDemo, "u", caps, 0},
		{"negative ttl", keyDemo, "u", caps, -time.Minute},
		{"sub-second ttl", keyDemo, "u", caps, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		tok, err := Mint(tt.key, tt.client, tt.caps, tt.ttl, now)
		if err == nil {
			t.Errorf("%s: Mint succeeded: %s", tt.name, Fingerprint(tok))
			continue
		}
		if len(tt.key.Secret) > 0 && strings.Contains(err.Error(), string(tt.key.Secret)) {
			t.Errorf("%s: error reveals the secret: %v", tt.name, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	minted, err := Mint(keyDemo, "user-1", Capabilities{"chat.*": {OpJoin}}, time.Minute, now)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(minted)
	f.Add(sign(goodClaims()))
	f.Add(sign(with("exp", now.Add(-time.Minute).Unix())))
	f.Add(sign(with("caps", map[string]any{"*": []string{"superuser"}})))
	f.Add(rawToken(map[string]any{"alg": "none", "kid": "k1"}, goodClaims(), nil, nil))
	f.Add(rawToken(hdr("k3"), goodClaims(), sha256.New, nil))
	f.Add("")
	f.Add("..")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")
	v := testVerifier()
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(token)
		if err != nil {
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %q wraps %d sentinels, want exactly 1", err, n)
			}
			return
		}
		// Whatever the fuzzer made, an accepted token satisfies every rule.
		k, ok := v.Keys.Lookup(claimsKid(t, token))
		if !ok || claims.App != k.App || claims.ClientID() == "" || claims.ExpiresAt == nil || claims.Caps.Validate() != nil {
			t.Fatalf("accepted token with bad claims %+v", claims)
		}
	})
}

func claimsKid(t *testing.T, token string) string {
	header, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatalf("accepted token has an undecodable header: %v", err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(header, &h); err != nil {
		t.Fatalf("accepted token has a bad header: %v", err)
	}
	return h.Kid
}

var claimsSink *Claims

func BenchmarkVerify(b *testing.B) {
	tok, err := Mint(keyDemo, "user-1", Capabilities{"chat.*": {OpJoin, OpPublish}, "presence/*": {OpPresence}}, time.Minute, now)
	if err != nil {
		b.Fatal(err)
	}
	v := testVerifier()
	b.ReportAllocs()
	for b.Loop() {
		c, err := v.Verify(tok)
		if err != nil {
			b.Fatal(err)
		}
		claimsSink = c
	}
}

func TestVerifyErrorsAreBounded(t *testing.T) {
	long := strings.Repeat("z", 4000)
	_, err := testVerifier().Verify(sign(with("exp", long)))
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	if len(err.Error()) > 300 {
		t.Errorf("error message is %d bytes long, want it bounded", len(err.Error()))
	}
}
