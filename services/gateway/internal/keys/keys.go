// Package keys is the gateway's keyring: the static API keys of
// ROOMCAST_KEYS plus, when ROOMCAST_AUTH_URL is set, the auth service's API
// keys (GET /internal/v1/keys, for HS256 secrets, capability bounds and
// revocations) and signing keys (the JWKS, for EdDSA tokens).
//
// The remote keys are cached in memory and refreshed three ways: at once
// when the auth service announces a change on Redis (<prefix>auth:keys);
// every GATEWAY_KEYS_REFRESH as a backstop (a conditional GET: 304 while
// nothing changed); and when a token names a key id the cache does not
// know, at most once per GATEWAY_KEYS_REFETCH_MIN, so a key created a moment
// ago works at once and a flood of made-up ids cannot hammer the service.
package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
)

// Config configures a Ring.
type Config struct {
	// Static keys (ROOMCAST_KEYS) are always known and never revoked.
	Static []token.Key
	// AuthURL is the auth service's base URL; empty: static keys only.
	AuthURL string
	// ServiceToken authenticates the gateway to /internal/v1/keys.
	ServiceToken string
	// Refresh is the backstop polling interval; RefetchMin the least time
	// between two fetches caused by unknown key ids.
	Refresh    time.Duration
	RefetchMin time.Duration
	// RedisURL and RedisPrefix locate the change announcements.
	RedisURL    string
	RedisPrefix string
	// HTTP is the client for the auth service; nil: a client with a 5 s
	// timeout.
	HTTP *http.Client
}

// remoteKey is an API key as the auth service last described it.
type remoteKey struct {
	key     token.Key
	expires time.Time // zero: none
	revoked bool
}

func (k remoteKey) live(now time.Time) bool {
	return !k.revoked && (k.expires.IsZero() || now.Before(k.expires))
}

// snapshot is one immutable view of the remote keys.
type snapshot struct {
	keys    map[string]remoteKey
	signing map[string]token.Key
	keysTag string // ETag of the key set
	jwks    string // the JWKS as fetched, to notice changes
}

// Ring implements token.Keyring and token.Revocations. It is safe for
// concurrent use.
type Ring struct {
	cfg    Config
	log    *slog.Logger
	static token.StaticKeyring
	snap   atomic.Pointer[snapshot]

	fetchMu   sync.Mutex // one fetch at a time
	lastFetch time.Time  // guarded by fetchMu
	failing   bool       // guarded by fetchMu: the last fetch failed (log once)
	now       func() time.Time
}

// New creates a Ring. Start its refreshing with Run.
func New(cfg Config, log *slog.Logger) *Ring {
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 5 * time.Second}
	}
	cfg.AuthURL = strings.TrimRight(cfg.AuthURL, "/")
	r := &Ring{cfg: cfg, log: log, static: token.NewStaticKeyring(cfg.Static...), now: time.Now}
	r.snap.Store(&snapshot{})
	return r
}

// Remote reports whether the ring follows an auth service.
func (r *Ring) Remote() bool { return r.cfg.AuthURL != "" }

// Lookup implements token.Keyring: a static key, a signing key of the
// auth service, or a live API key of the auth service. A miss on a remote
// ring refetches once (rate-limited) before giving up.
func (r *Ring) Lookup(kid string) (token.Key, bool) {
	if k, ok := r.lookup(kid); ok {
		return k, true
	}
	if !r.Remote() || r.Revoked(kid) {
		return token.Key{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.HTTP.Timeout)
	defer cancel()
	r.fetch(ctx, r.cfg.RefetchMin)
	return r.lookup(kid)
}

func (r *Ring) lookup(kid string) (token.Key, bool) {
	if k, ok := r.static[kid]; ok {
		return k, true
	}
	s := r.snap.Load()
	if k, ok := s.signing[kid]; ok {
		return k, true
	}
	if k, ok := s.keys[kid]; ok && k.live(r.now()) {
		return k.key, true
	}
	return token.Key{}, false
}

// Revoked implements token.Revocations: the auth service revoked the key,
// or its rotation grace period is over.
func (r *Ring) Revoked(kid string) bool {
	if _, ok := r.static[kid]; ok {
		return false
	}
	k, ok := r.snap.Load().keys[kid]
	return ok && !k.live(r.now())
}

// Run keeps the remote keys fresh until ctx ends, calling changed after
// every refresh attempt (so the caller can close connections of keys that
// were revoked or ran out of grace). It returns at once for a static ring.
func (r *Ring) Run(ctx context.Context, changed func()) {
	if !r.Remote() {
		return
	}
	kick := make(chan struct{}, 1)
	if r.cfg.RedisURL != "" {
		go r.subscribe(ctx, kick)
	}
	t := time.NewTicker(r.cfg.Refresh)
	defer t.Stop()
	for {
		r.fetch(ctx, 0)
		changed()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
	}
}

// subscribe forwards the auth service's change announcements to kick.
// go-redis resubscribes by itself after a lost connection; announcements
// missed meanwhile are caught by the backstop poll.
func (r *Ring) subscribe(ctx context.Context, kick chan<- struct{}) {
	opts, err := redis.ParseURL(r.cfg.RedisURL)
	if err != nil {
		r.log.Warn("keys: no change announcements (bad ROOMCAST_REDIS_URL); polling only")
		return
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	sub := rdb.Subscribe(ctx, authapi.NotifyChannel(r.cfg.RedisPrefix))
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-sub.Channel():
			if !ok {
				return
			}
			select {
			case kick <- struct{}{}:
			default: // a refresh is already pending
			}
		}
	}
}

// fetch refreshes the snapshot unless the last fetch is younger than
// minAge. Failures keep the previous snapshot: an unreachable auth service
// must not lock everyone out, nor revoke anything.
func (r *Ring) fetch(ctx context.Context, minAge time.Duration) {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	if minAge > 0 && r.now().Sub(r.lastFetch) < minAge {
		return
	}
	r.lastFetch = r.now()
	old := r.snap.Load()
	next, err := r.load(ctx, old)
	if err != nil {
		if !r.failing {
			r.log.Warn("keys: cannot refresh from the auth service; keeping the keys known so far", "err", err)
		}
		r.failing = true
		return
	}
	if r.failing {
		r.log.Info("keys: auth service reachable again")
	}
	r.failing = false
	if next != old {
		r.snap.Store(next)
		r.log.Debug("keys: refreshed", "api_keys", len(next.keys), "signing_keys", len(next.signing))
	}
}

// load fetches the key set (conditionally) and the JWKS; it returns old
// itself when neither changed.
func (r *Ring) load(ctx context.Context, old *snapshot) (*snapshot, error) {
	next := *old
	changed := false

	status, body, tag, err := r.get(ctx, authapi.PathInternalKeys, old.keysTag, true)
	if err != nil {
		return nil, err
	}
	if status == http.StatusOK {
		var set authapi.KeySet
		if err := json.Unmarshal(body, &set); err != nil {
			return nil, fmt.Errorf("key set: %w", err)
		}
		next.keys = make(map[string]remoteKey, len(set.Keys))
		for _, k := range set.Keys {
			rk := remoteKey{key: token.Key{App: k.App, ID: k.ID, Secret: []byte(k.Secret), Caps: k.Caps}, revoked: k.Revoked}
			if k.Caps == nil {
				rk.key.Caps = token.Capabilities{} // a remote key is always bounded
			}
			if k.ExpiresAt != nil {
				rk.expires = *k.ExpiresAt
			}
			if !rk.revoked && len(rk.key.Secret) < token.MinSecretBytes {
				rk.revoked = true // cannot happen; never trust a key without a secret
			}
			next.keys[k.ID] = rk
		}
		next.keysTag = tag
		changed = true
	}

	_, body, _, err = r.get(ctx, authapi.PathJWKS, "", false)
	if err != nil {
		return nil, err
	}
	if string(body) != old.jwks {
		var set token.JWKS
		if err := json.Unmarshal(body, &set); err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
		sks, err := set.SigningKeys()
		if err != nil {
			return nil, err
		}
		next.signing = make(map[string]token.Key, len(sks))
		for _, k := range sks {
			next.signing[k.ID] = k
		}
		next.jwks = string(body)
		changed = true
	}
	if !changed {
		return old, nil
	}
	return &next, nil
}

// get fetches path from the auth service, conditionally on etag.
func (r *Ring) get(ctx context.Context, path, etag string, auth bool) (status int, body []byte, tag string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.cfg.AuthURL+path, nil)
	if err != nil {
		return 0, nil, "", err
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+r.cfg.ServiceToken)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := r.cfg.HTTP.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, "", err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNotModified:
		return resp.StatusCode, body, resp.Header.Get("ETag"), nil
	case http.StatusUnauthorized:
		return 0, nil, "", errors.New(path + ": 401: ROOMCAST_SERVICE_TOKEN is not the auth service's")
	}
	return 0, nil, "", fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
}
