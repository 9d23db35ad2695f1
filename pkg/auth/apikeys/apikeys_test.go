package apikeys

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
)

// feed is an auth service's key feed whose keys the test adds.
type feed struct {
	mu    sync.Mutex
	keys  []authapi.InternalKey
	loads atomic.Int32
}

func (f *feed) add(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	secret := strings.Repeat("s", 32) + id
	f.keys = append(f.keys, authapi.InternalKey{App: "app1", ID: id, Secret: secret, Caps: token.Capabilities{"*": {token.OpAdmin}}})
	return "app1." + id + ":" + secret
}

func (f *feed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.loads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = json.NewEncoder(w).Encode(authapi.KeySet{Keys: f.keys})
}

// TestKeysCreatedMomentsApartBothVerify: a key created right after the
// ring loaded for another new key is not refused; the ring waits for its
// next allowed load (one a second) instead.
func TestKeysCreatedMomentsApartBothVerify(t *testing.T) {
	f := &feed{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	r := New(nil, srv.URL, "service-token-0123456789", slog.New(slog.DiscardHandler))
	ctx := context.Background()

	first := f.add("k1")
	if _, ok := r.Verify(ctx, first); !ok {
		t.Fatal("a new key was refused")
	}
	second := f.add("k2") // within the second after that load
	start := time.Now()
	if k, ok := r.Verify(ctx, second); !ok || k.ID != "k2" {
		t.Fatal("a key created a moment after the last load was refused")
	}
	if waited := time.Since(start); waited > 2*refetchMin {
		t.Errorf("waited %s for the next load", waited)
	}
	// Made-up ids cost at most one load a second, however many arrive.
	before := f.loads.Load()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Go(func() { r.Verify(ctx, "app1.knope:"+strings.Repeat("x", 40)) })
	}
	wg.Wait()
	if n := f.loads.Load() - before; n > 2 {
		t.Errorf("20 unknown keys at once made %d loads", n)
	}
	// A wrong secret of a known key is refused without a load.
	before = f.loads.Load()
	if _, ok := r.Verify(ctx, "app1.k1:"+strings.Repeat("y", 40)); ok {
		t.Fatal("a wrong secret was accepted")
	}
	if f.loads.Load() != before {
		t.Error("a known key id made the ring load")
	}
}
