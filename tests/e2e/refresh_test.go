package e2e

import (
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/tests/harness"
)

// TestInBandRefreshExtendsTheConnection: a connection whose token expires in
// 2 s lives on past that after a refresh with a longer token; refreshes for
// another client or with a bad token are refused and change nothing.
func TestInBandRefreshExtendsTheConnection(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw := env.Gateway(t, "refresh")
	caps := token.Capabilities{"*": {token.OpJoin}}
	short := env.Token(t, "ada", caps, 2*time.Second)
	exp := time.Now().Add(2 * time.Second)
	c := dialPresence(t, gw.WSURL(), short)
	expired, err := token.Mint(env.Key, "ada", caps, time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		tok  string
		code protocol.Code
	}{
		{env.Token(t, "bob", caps, time.Hour), protocol.CodeForbidden},
		{"not-a-token", protocol.CodeUnauthorized},
		{expired, protocol.CodeUnauthorized},
	} {
		if r := c.try(map[string]any{"op": "refresh", "token": tc.tok}); r.Error == nil || r.Error.Code != tc.code {
			t.Fatalf("refresh with a bad token: %+v, want %s", r, tc.code)
		}
	}
	c.call(map[string]any{"op": "refresh", "token": env.Token(t, "ada", caps, time.Hour)})
	// Past the first token's expiry (and the gateway's leeway) the
	// connection still answers: the refresh replaced the expiry.
	for time.Now().Before(exp.Add(6 * time.Second)) {
		c.call(map[string]any{"op": "join", "room": "still-here"})
		time.Sleep(500 * time.Millisecond)
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		t.Fatal("the connection closed although its token was refreshed")
	}

	// Without a refresh the same short token ends the connection with 4002.
	r, _ := harness.Connect(t, gw.WSURL(), env.Token(t, "ada", caps, 2*time.Second))
	r.ExpectClose(protocol.CloseTokenExpired)
}
