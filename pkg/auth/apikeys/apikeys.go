// Package apikeys verifies API keys ("<app>.<keyId>:<secret>") for the
// services whose HTTP APIs take them (metrics, webhooks), as the gateway's
// REST API does: the static keys of ROOMCAST_KEYS,
// and with ROOMCAST_AUTH_URL the auth service's API keys from its internal
// key feed (GET /internal/v1/keys with ROOMCAST_SERVICE_TOKEN), refreshed
// every interval given to Run and when an unknown key id is presented (at
// most once a second: a request with a key created a moment after the
// last load waits for the next one). Revoked and expired keys are refused.
package apikeys

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
)

type remote struct {
	key     token.Key
	expires time.Time
	revoked bool
}

// Ring verifies API keys. It is safe for concurrent use.
type Ring struct {
	static       token.StaticKeyring
	authURL      string
	serviceToken string
	http         *http.Client
	log          *slog.Logger

	keys      atomic.Pointer[map[string]remote]
	fetchMu   sync.Mutex
	lastFetch time.Time
	etag      string
}

// New creates a Ring; with authURL set, call Run to keep it fresh.
func New(static []token.Key, authURL, serviceToken string, log *slog.Logger) *Ring {
	r := &Ring{static: token.NewStaticKeyring(static...), authURL: strings.TrimRight(authURL, "/"), serviceToken: serviceToken,
		http: &http.Client{Timeout: 5 * time.Second}, log: log}
	r.keys.Store(&map[string]remote{})
	return r
}

// Verify checks an API key "<app>.<keyId>:<secret>" in constant time and
// returns the key as stored (its app and capabilities).
func (r *Ring) Verify(ctx context.Context, cred string) (token.Key, bool) {
	k, err := token.ParseAPIKey(cred)
	if err != nil {
		return token.Key{}, false
	}
	stored, found := r.lookup(k.ID)
	if !found && r.authURL != "" {
		r.fetchAfter(ctx, time.Now(), refetchMin)
		stored, found = r.lookup(k.ID)
	}
	if !found {
		stored = token.Key{Secret: []byte("no such key, compared anyway")}
	}
	if subtle.ConstantTimeCompare(stored.Secret, k.Secret) != 1 || !found || stored.App != k.App {
		return token.Key{}, false
	}
	return stored, true
}

func (r *Ring) lookup(id string) (token.Key, bool) {
	if k, ok := r.static[id]; ok {
		return k, true
	}
	k, ok := (*r.keys.Load())[id]
	if !ok || k.revoked || (!k.expires.IsZero() && time.Now().After(k.expires)) {
		return token.Key{}, false
	}
	return k.key, true
}

// Run refreshes the remote keys every interval until ctx ends.
func (r *Ring) Run(ctx context.Context, interval time.Duration) {
	if r.authURL == "" {
		return
	}
	r.fetch(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.fetch(ctx)
		}
	}
}

// refetchMin is the least time between two loads for unknown key ids: a
// stream of made-up ids costs the auth service one request a second.
const refetchMin = time.Second

// fetchAfter makes sure the key feed was loaded after asked, the moment an
// unknown key id was presented: by a load that began later, or by one it
// makes — no sooner than minAge after the previous load, waiting for that
// (bounded by ctx) rather than refusing a key created a moment ago.
func (r *Ring) fetchAfter(ctx context.Context, asked time.Time, minAge time.Duration) {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	if r.lastFetch.After(asked) {
		return // a load that began after we asked: the lookup can use it
	}
	if wait := minAge - time.Since(r.lastFetch); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
	r.loadNow(ctx)
}

// fetch loads the key feed.
func (r *Ring) fetch(ctx context.Context) {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	r.loadNow(ctx)
}

// loadNow loads the key feed; the caller holds fetchMu.
func (r *Ring) loadNow(ctx context.Context) {
	r.lastFetch = time.Now()
	if err := r.load(ctx); err != nil && ctx.Err() == nil {
		r.log.Warn("auth key feed not loaded; keeping the keys known so far", "err", err)
	}
}

func (r *Ring) load(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.authURL+authapi.PathInternalKeys, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.serviceToken)
	if r.etag != "" {
		req.Header.Set("If-None-Match", r.etag)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil
	case http.StatusOK:
	default:
		return fmt.Errorf("%s: HTTP %d", authapi.PathInternalKeys, resp.StatusCode)
	}
	var set authapi.KeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("key set: %w", err)
	}
	m := make(map[string]remote, len(set.Keys))
	for _, k := range set.Keys {
		rk := remote{key: token.Key{App: k.App, ID: k.ID, Secret: []byte(k.Secret), Caps: k.Caps}, revoked: k.Revoked}
		if rk.key.Caps == nil {
			rk.key.Caps = token.Capabilities{}
		}
		if k.ExpiresAt != nil {
			rk.expires = *k.ExpiresAt
		}
		if len(rk.key.Secret) < token.MinSecretBytes {
			rk.revoked = true
		}
		m[k.ID] = rk
	}
	r.keys.Store(&m)
	r.etag = resp.Header.Get("ETag")
	return nil
}
