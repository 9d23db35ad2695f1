package keys

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/testenv"
)

// fakeAuth serves /internal/v1/keys and the JWKS from fields a test sets.
type fakeAuth struct {
	mu       sync.Mutex
	set      authapi.KeySet
	jwks     token.JWKS
	down     bool
	keyGets  atomic.Int64
	notMods  atomic.Int64
	badCreds atomic.Int64
}

func (f *fakeAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	switch r.URL.Path {
	case authapi.PathInternalKeys:
		f.keyGets.Add(1)
		if r.Header.Get("Authorization") != "Bearer service-token-0123456789" {
			f.badCreds.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		tag := `"v` + strconv.FormatInt(f.set.Version, 10) + `"`
		w.Header().Set("ETag", tag)
		if r.Header.Get("If-None-Match") == tag {
			f.notMods.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_ = json.NewEncoder(w).Encode(f.set)
	case authapi.PathJWKS:
		_ = json.NewEncoder(w).Encode(f.jwks)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeAuth) update(fn func(*fakeAuth)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
	f.set.Version++
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestRing(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	fa := &fakeAuth{
		set: authapi.KeySet{Version: 1, Keys: []authapi.InternalKey{
			{App: "demo", ID: "k1", Secret: "remote-secret-0123456789", Caps: token.Capabilities{"chat.*": {token.OpJoin}}},
			{App: "demo", ID: "kold", Revoked: true},
		}},
		jwks: token.JWKS{Keys: []token.JWK{token.PublicJWK("sk1", pub)}},
	}
	srv := httptest.NewServer(fa)
	defer srv.Close()
	static := token.Key{App: "dev", ID: "dev", Secret: []byte("static-secret-0123456789")}
	r := New(Config{
		Static: []token.Key{static}, AuthURL: srv.URL + "/", ServiceToken: "service-token-0123456789",
		Refresh: time.Hour, RefetchMin: 200 * time.Millisecond, // the hourly poll never fires: only kicks and misses refresh
		RedisURL: testenv.RedisURL(), RedisPrefix: prefix,
	}, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sweeps atomic.Int64
	go r.Run(ctx, func() { sweeps.Add(1) })
	testenv.WaitFor(t, 5*time.Second, "first refresh", func() bool { return sweeps.Load() >= 1 })

	if k, ok := r.Lookup("dev"); !ok || k.App != "dev" || k.Caps != nil {
		t.Fatalf("static key: %+v %v", k, ok)
	}
	k, ok := r.Lookup("k1")
	if !ok || string(k.Secret) != "remote-secret-0123456789" || !k.Caps.Allows("chat.x", token.OpJoin) || k.Caps.Allows("x", token.OpJoin) {
		t.Fatalf("remote key: %+v %v", k, ok)
	}
	if k, ok := r.Lookup("sk1"); !ok || !k.Public.Equal(pub) || k.App != "" {
		t.Fatalf("signing key: %+v %v", k, ok)
	}
	if _, ok := r.Lookup("kold"); ok || !r.Revoked("kold") || r.Revoked("k1") || r.Revoked("dev") || r.Revoked("nothing") {
		t.Fatal("revocations are wrong")
	}

	// A key created after the last refresh is found at once: a miss refetches.
	fa.update(func(f *fakeAuth) {
		f.set.Keys = append(f.set.Keys, authapi.InternalKey{App: "demo", ID: "knew", Secret: "new-secret-0123456789", Caps: token.Capabilities{}})
	})
	time.Sleep(250 * time.Millisecond) // let RefetchMin pass since the first refresh
	if _, ok := r.Lookup("knew"); !ok {
		t.Fatal("new key not found")
	}
	// Misses right after do not refetch (rate limit).
	before := fa.keyGets.Load()
	for range 50 {
		r.Lookup("made-up")
	}
	if n := fa.keyGets.Load() - before; n > 1 {
		t.Fatalf("50 misses caused %d fetches", n)
	}

	// A revocation announced on Redis reaches the ring (and its sweep)
	// without waiting for the poll.
	fa.update(func(f *fakeAuth) { f.set.Keys[0] = authapi.InternalKey{App: "demo", ID: "k1", Revoked: true} })
	s0 := sweeps.Load()
	if err := rdb.Publish(ctx, authapi.NotifyChannel(prefix), "changed").Err(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "announced revocation applied", func() bool { return r.Revoked("k1") && sweeps.Load() > s0 })
	if _, ok := r.Lookup("k1"); ok {
		t.Fatal("revoked key still found")
	}

	// An auth service outage keeps what is known.
	fa.mu.Lock()
	fa.down = true
	fa.mu.Unlock()
	s1 := sweeps.Load() // before the announcement: its refresh may count at once
	_ = rdb.Publish(ctx, authapi.NotifyChannel(prefix), "changed")
	testenv.WaitFor(t, 20*time.Second, "refresh attempted during the outage", func() bool { return sweeps.Load() > s1 })
	if _, ok := r.Lookup("knew"); !ok {
		t.Fatal("an outage dropped a key")
	}
}

func TestRingExpiry(t *testing.T) {
	past := time.Now().Add(-time.Second)
	future := time.Now().Add(time.Hour)
	fa := &fakeAuth{set: authapi.KeySet{Version: 1, Keys: []authapi.InternalKey{
		{App: "demo", ID: "kgone", Secret: "grace-secret-0123456789", Caps: token.Capabilities{}, ExpiresAt: &past},
		{App: "demo", ID: "kgrace", Secret: "grace-secret-0123456789", Caps: token.Capabilities{}, ExpiresAt: &future},
	}}}
	srv := httptest.NewServer(fa)
	defer srv.Close()
	r := New(Config{AuthURL: srv.URL, ServiceToken: "service-token-0123456789", Refresh: time.Hour, RefetchMin: time.Hour}, quiet)
	r.fetch(context.Background(), 0)
	if _, ok := r.Lookup("kgone"); ok || !r.Revoked("kgone") {
		t.Fatal("a key past its grace is usable")
	}
	if _, ok := r.Lookup("kgrace"); !ok || r.Revoked("kgrace") {
		t.Fatal("a key within its grace is refused")
	}
	// A conditional refresh of an unchanged set is a 304.
	r.fetch(context.Background(), 0)
	if fa.notMods.Load() != 1 {
		t.Fatalf("304s = %d, want 1", fa.notMods.Load())
	}
	// A wrong service token is an error, not an empty key set.
	bad := New(Config{AuthURL: srv.URL, ServiceToken: "wrong", Refresh: time.Hour}, quiet)
	bad.fetch(context.Background(), 0)
	if fa.badCreds.Load() != 1 || !bad.failing {
		t.Fatal("a refused credential was not reported")
	}
}
