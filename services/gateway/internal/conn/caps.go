package conn

import (
	"runtime"
	"slices"
	"strconv"
	"sync"
	"weak"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomcast/roomcast/pkg/auth/token"
)

// A connection keeps its token's claims for its whole life. Two things
// there are worth trimming for idle connections:
//
//   - the capability map: a Go map of even one pattern takes ~390 bytes,
//     and often every client of an app holds the same capabilities. Each
//     distinct set is kept once, shared by the connections that hold it
//     (read-only: capabilities are never changed after verification);
//   - the registered claims the gateway never reads again (iat, nbf, jti,
//     iss, aud).

// capsBox holds a shared capability set; connections point at it, and it
// leaves the cache when the last of them is gone.
type capsBox struct{ caps token.Capabilities }

var capsCache = struct {
	mu sync.Mutex
	m  map[string]weak.Pointer[capsBox]
}{m: make(map[string]weak.Pointer[capsBox])}

// shareCaps returns the shared box for a capability set equal to caps.
func shareCaps(caps token.Capabilities) *capsBox {
	key := capsKey(caps)
	capsCache.mu.Lock()
	defer capsCache.mu.Unlock()
	if b := capsCache.m[key].Value(); b != nil {
		return b
	}
	b := &capsBox{caps: caps}
	capsCache.m[key] = weak.Make(b)
	runtime.AddCleanup(b, dropCaps, key)
	return b
}

func dropCaps(key string) {
	capsCache.mu.Lock()
	if capsCache.m[key].Value() == nil {
		delete(capsCache.m, key)
	}
	capsCache.mu.Unlock()
}

// capsKey is a canonical encoding of caps: patterns in order, each with
// its length, then its operations.
func capsKey(caps token.Capabilities) string {
	patterns := make([]string, 0, len(caps))
	for p := range caps {
		patterns = append(patterns, p)
	}
	slices.Sort(patterns)
	var b []byte
	for _, p := range patterns {
		b = strconv.AppendInt(b, int64(len(p)), 10)
		b = append(b, ':')
		b = append(b, p...)
		for _, op := range caps[p] {
			b = append(b, ',')
			b = append(b, op...)
		}
		b = append(b, ';')
	}
	return string(b)
}

// keepClaims returns the part of verified claims that the connection
// keeps, with shared capabilities, and the box that keeps them shared.
func keepClaims(cl *token.Claims) (*token.Claims, *capsBox) {
	box := shareCaps(cl.Caps)
	return &token.Claims{
		App:    cl.App,
		Caps:   box.caps,
		APIKey: cl.APIKey,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   cl.Subject,
			ExpiresAt: cl.ExpiresAt,
		},
	}, box
}
