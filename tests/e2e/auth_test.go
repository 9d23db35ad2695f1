package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/pkg/sdk/rest"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/services/auth/authtest"
	"github.com/roomcast/roomcast/tests/harness"
)

func init() {
	harness.Binaries["auth"] = "github.com/roomcast/roomcast/services/auth"
}

// authEnv is a test's platform with an auth service: its own PostgreSQL
// database, Redis prefix and vhost, gateways that follow the auth service.
type authEnv struct {
	*harness.Env
	auth         *harness.Process
	gateways     []*harness.Process
	adminToken   string
	serviceToken string
	masterKey    string
	mu           sync.Mutex
	secrets      []string // every secret and full token the test handled
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newAuthEnv(t *testing.T, gateways int) *authEnv {
	t.Helper()
	e := &authEnv{
		Env:          harness.NewEnv(t),
		adminToken:   "admin-" + randomHex(16),
		serviceToken: "service-" + randomHex(16),
		masterKey:    randomHex(32),
	}
	e.remember(e.adminToken, e.serviceToken, e.masterKey, string(e.Key.Secret))
	e.auth = harness.Start(t, harness.Binary(t, "auth"), []string{
		"AUTH_ADDR=127.0.0.1:0",
		"AUTH_DATABASE_URL=" + authtest.Database(t),
		"AUTH_ADMIN_TOKEN=" + e.adminToken,
		"AUTH_MASTER_KEY=" + e.masterKey,
		"ROOMCAST_SERVICE_TOKEN=" + e.serviceToken,
		"ROOMCAST_REDIS_URL=" + testenv.RedisURL(),
		"ROOMCAST_REDIS_PREFIX=" + e.RedisPrefix,
		"ROOMCAST_LOG_LEVEL=debug",
	})
	for i := range gateways {
		e.gateways = append(e.gateways, e.Gateway(t, fmt.Sprintf("gw-auth-%d", i),
			"ROOMCAST_AUTH_URL="+e.auth.HTTPURL(),
			"ROOMCAST_SERVICE_TOKEN="+e.serviceToken,
		))
	}
	// No secret or full token may reach any process's log.
	t.Cleanup(func() {
		procs := append([]*harness.Process{e.auth}, e.gateways...)
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, p := range procs {
			logs := p.Logs()
			for _, s := range e.secrets {
				if strings.Contains(logs, s) {
					t.Errorf("a secret or token (fingerprint %s) appears in the log of pid %d", token.Fingerprint(s), p.Pid())
				}
			}
		}
	})
	return e
}

// remember records secrets and tokens for the log check.
func (e *authEnv) remember(s ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, s...)
}

// cli runs the roomcast CLI against the auth service and returns stdout.
func (e *authEnv) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(harness.Binary(t, "roomcast"), args...)
	cmd.Env = append(cmd.Environ(), "ROOMCAST_AUTH_URL="+e.auth.HTTPURL(), "ROOMCAST_ADMIN_TOKEN="+e.adminToken)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("roomcast %s: %v: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// newKey creates app (if needed) and a key with caps through the CLI.
func (e *authEnv) newKey(t *testing.T, app string, caps ...string) token.Key {
	t.Helper()
	if _, err := e.cli(t, "apps", "create", app); err != nil && !strings.Contains(err.Error(), "conflict") {
		t.Fatal(err)
	}
	args := []string{"keys", "create", "--app", app}
	for _, c := range caps {
		args = append(args, "--cap", c)
	}
	out, err := e.cli(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	k, err := token.ParseAPIKey(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("keys create printed no API key: %v", err)
	}
	e.remember(string(k.Secret), k.String())
	return k
}

func (e *authEnv) sdk(t *testing.T, k token.Key, gw *harness.Process) *rest.Client {
	t.Helper()
	c, err := rest.New(rest.Config{GatewayURL: gw.HTTPURL(), AuthURL: e.auth.HTTPURL(), APIKey: k.String()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dial connects with tok without reconnecting, so a close is final.
func dial(ctx context.Context, gw *harness.Process, tok string) (*client.Client, error) {
	return client.Dial(ctx, client.Config{URL: gw.WSURL(), Token: tok, DisableReconnect: true})
}

// closeCode is the close code err carries, or 0.
func closeCode(err error) protocol.CloseCode {
	var ce *client.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

// TestAuthEndToEnd: roomcast apps create → keys create → a token minted by
// the SDK (and one from POST /v1/tokens) → a client joins → the backend
// publishes through the REST SDK → the client receives it.
func TestAuthEndToEnd(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, 1)
	gw := e.gateways[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := e.newKey(t, "shop", "chat.*=join,publish")
	sdk := e.sdk(t, key, gw)

	if out, err := e.cli(t, "apps", "list"); err != nil || !strings.Contains(out, "shop") {
		t.Fatalf("apps list: %q %v", out, err)
	}
	if out, err := e.cli(t, "keys", "list", "--app", "shop"); err != nil || !strings.Contains(out, key.ID) || strings.Contains(out, string(key.Secret)) {
		t.Fatalf("keys list: %q %v", out, err)
	}

	local, err := sdk.CreateToken("alice", token.Capabilities{"chat.*": {token.OpJoin}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := sdk.RequestToken(ctx, rest.TokenRequest{ClientID: "bob", Caps: token.Capabilities{"chat.lobby": {token.OpJoin}}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.remember(local, issued.Token)
	for i, tok := range []string{local, issued.Token} {
		c, err := dial(ctx, gw, tok)
		if err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		defer c.Close()
		rec := &recorder{}
		c.OnAnyMessage(rec.add)
		if _, err := c.Join(ctx, "chat.lobby"); err != nil {
			t.Fatalf("token %d: join: %v", i, err)
		}
		res, err := sdk.Publish(ctx, rest.Message{Room: "chat.lobby", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), IdempotencyKey: fmt.Sprint("m-", i)})
		if err != nil || res.Offset == 0 {
			t.Fatalf("publish %d: %+v %v", i, res, err)
		}
		testenv.WaitFor(t, 10*time.Second, "the client receives the backend's message", func() bool {
			for _, m := range rec.snapshot() {
				if m.Offset == res.Offset && string(m.Data) == fmt.Sprintf(`{"n":%d}`, i) {
					return true
				}
			}
			return false
		})
	}
	// The key's capabilities bound its REST publishes too.
	_, err = sdk.Publish(ctx, rest.Message{Room: "news", Data: json.RawMessage(`1`)})
	var re *rest.Error
	if !errors.As(err, &re) || re.Status != 403 || re.Code != "forbidden" {
		t.Fatalf("publish outside the key's rooms: %v", err)
	}
	checkAuthSpec(t, e)
}

// TestRevocationClosesConnectionsOnEveryNode: revoking a key refuses new
// connections at once and closes live ones (HS256 and EdDSA tokens) within
// 5 s on two gateways, with 4003; another key's connections stay.
func TestRevocationClosesConnectionsOnEveryNode(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := e.newKey(t, "shop", "*=join")
	other := e.newKey(t, "shop", "*=join")
	sdk := e.sdk(t, key, e.gateways[0])
	caps := token.Capabilities{"room": {token.OpJoin}}
	hs, _ := sdk.CreateToken("hs", caps, time.Hour)
	ed, err := sdk.RequestToken(ctx, rest.TokenRequest{ClientID: "ed", Caps: caps})
	if err != nil {
		t.Fatal(err)
	}
	otherTok, _ := e.sdk(t, other, e.gateways[0]).CreateToken("other", caps, time.Hour)
	e.remember(hs, ed.Token, otherTok)

	var doomed, spared []*client.Client
	for _, gw := range e.gateways {
		for _, tok := range []string{hs, ed.Token} {
			c, err := dial(ctx, gw, tok)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Join(ctx, "room"); err != nil {
				t.Fatal(err)
			}
			doomed = append(doomed, c)
		}
		c, err := dial(ctx, gw, otherTok)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		spared = append(spared, c)
	}

	if _, err := e.cli(t, "keys", "revoke", "--app", "shop", key.ID); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	for i, c := range doomed {
		select {
		case <-c.Done():
		case <-time.After(5*time.Second - time.Since(revokedAt)):
			t.Fatalf("connection %d still open 5 s after the revocation", i)
		}
		if code := closeCode(c.Err()); code != protocol.CloseForbidden {
			t.Errorf("connection %d closed with %v (%v), want 4003", i, code, c.Err())
		}
	}
	t.Logf("all %d connections closed %s after the revocation", len(doomed), time.Since(revokedAt))
	for _, gw := range e.gateways {
		for _, tok := range []string{hs, ed.Token} {
			if _, err := dial(ctx, gw, tok); closeCode(err) != protocol.CloseForbidden {
				t.Errorf("new connection with a revoked key: %v, want close 4003", err)
			}
		}
	}
	for i, c := range spared {
		select {
		case <-c.Done():
			t.Fatalf("connection %d of another key was closed: %v", i, c.Err())
		default:
		}
	}
	if _, err := sdk.RequestToken(ctx, rest.TokenRequest{ClientID: "x", Caps: caps}); !isRESTCode(err, 403, "forbidden") {
		t.Errorf("token for a revoked key: %v", err)
	}
	if _, err := sdk.Publish(ctx, rest.Message{Room: "room", Data: json.RawMessage(`1`)}); !isRESTCode(err, 401, "unauthorized") {
		t.Errorf("publish with a revoked key: %v", err)
	}
}

func isRESTCode(err error, status int, code string) bool {
	var re *rest.Error
	return errors.As(err, &re) && re.Status == status && re.Code == code
}

// TestTokenRejections: each bad token is refused with its documented code.
func TestTokenRejections(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, 1)
	gw := e.gateways[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := e.newKey(t, "shop", "chat.*=join")
	otherApp := e.newKey(t, "blog", "*=join")
	sdk := e.sdk(t, key, gw)
	caps := token.Capabilities{"chat.x": {token.OpJoin}}

	// Asking the auth service for more than the key allows: refused there.
	if _, err := sdk.RequestToken(ctx, rest.TokenRequest{ClientID: "a", Caps: token.Capabilities{"*": {token.OpJoin}}}); !isRESTCode(err, 403, string(authapi.CodeCapabilityExceeded)) {
		t.Errorf("RequestToken wider than the key: %v", err)
	}
	wide, _ := sdk.CreateToken("a", token.Capabilities{"*": {token.OpJoin}}, time.Hour)
	good, _ := sdk.CreateToken("a", caps, time.Hour)
	parts := strings.Split(good, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(bytes.Replace(claims, []byte(`"sub":"a"`), []byte(`"sub":"b"`), 1)) + "." + parts[2]
	// Signed with this key's secret but claiming the other app's key id and app.
	forApp := token.Key{App: "blog", ID: otherApp.ID, Secret: key.Secret}
	otherAppTok, _ := token.Mint(forApp, "a", caps, time.Hour, time.Now())
	// Signed with the other app's key, claiming this app.
	crossApp, _ := token.Mint(token.Key{App: "shop", ID: otherApp.ID, Secret: otherApp.Secret}, "a", caps, time.Hour, time.Now())
	expired, _ := token.Mint(key, "a", caps, time.Minute, time.Now().Add(-time.Hour))
	e.remember(wide, good, tampered, otherAppTok, crossApp, expired)
	cases := []struct {
		name string
		tok  string
		want protocol.CloseCode
	}{
		{"wider than its key", wide, protocol.CloseForbidden},
		{"tampered", tampered, protocol.CloseInvalidToken},
		{"signed with a key of this app, for another app's key", otherAppTok, protocol.CloseInvalidToken},
		{"another app's key claiming this app", crossApp, protocol.CloseInvalidToken},
		{"expired", expired, protocol.CloseTokenExpired},
	}
	for _, c := range cases {
		if _, err := dial(ctx, gw, c.tok); closeCode(err) != c.want {
			t.Errorf("%s: %v, want close %d", c.name, err, c.want)
		}
	}
	if c, err := dial(ctx, gw, good); err != nil {
		t.Fatalf("the good token: %v", err)
	} else {
		c.Close()
	}

	// A JWKS key rotated out: its tokens stop working.
	issued, err := sdk.RequestToken(ctx, rest.TokenRequest{ClientID: "a", Caps: caps})
	if err != nil {
		t.Fatal(err)
	}
	e.remember(issued.Token)
	c, err := dial(ctx, gw, issued.Token)
	if err != nil {
		t.Fatalf("issued token before rotation: %v", err)
	}
	c.Close()
	if code := e.admin(t, "POST", "/admin/v1/signing-keys/rotate", authapi.RotateSigningKey{Overlap: "0s"}); code != 200 {
		t.Fatalf("rotate: %d", code)
	}
	testenv.WaitFor(t, 10*time.Second, "the rotated-out key's token refused with 4001", func() bool {
		c, err := dial(ctx, gw, issued.Token)
		if err == nil {
			c.Close()
		}
		return closeCode(err) == protocol.CloseInvalidToken
	})
	fresh, err := sdk.RequestToken(ctx, rest.TokenRequest{ClientID: "a", Caps: caps})
	if err != nil || fresh.KeyID == issued.KeyID {
		t.Fatalf("token after rotation: %+v %v", fresh, err)
	}
	e.remember(fresh.Token)
	if c, err := dial(ctx, gw, fresh.Token); err != nil {
		t.Fatalf("token of the new signing key: %v", err)
	} else {
		c.Close()
	}
}

// admin calls the admin API and returns the status.
func (e *authEnv) admin(t *testing.T, method, path string, body any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, e.auth.HTTPURL()+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+e.adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSDKBatchExactlyOnce: 100 messages to 100 rooms through the SDK, with
// a key from the auth service, reach every member once; the same batch
// again delivers nothing new.
func TestSDKBatchExactlyOnce(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key := e.newKey(t, "shop", "room-*=join,publish")
	sdk := e.sdk(t, key, e.gateways[0])
	const rooms = 100
	var recs []*recorder
	for i, gw := range e.gateways {
		tok, _ := sdk.CreateToken(fmt.Sprint("m", i), token.Capabilities{"room-*": {token.OpJoin}}, time.Hour)
		e.remember(tok)
		c, err := dial(ctx, gw, tok)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rec := &recorder{}
		c.OnAnyMessage(rec.add)
		for r := range rooms {
			if _, err := c.Join(ctx, fmt.Sprintf("room-%03d", r)); err != nil {
				t.Fatal(err)
			}
		}
		recs = append(recs, rec)
	}
	batch := func(tag string) []rest.Message {
		var msgs []rest.Message
		for r := range rooms {
			msgs = append(msgs, rest.Message{Room: fmt.Sprintf("room-%03d", r), Data: json.RawMessage(fmt.Sprintf(`{"tag":%q}`, tag)), IdempotencyKey: fmt.Sprintf("%s-%d", tag, r)})
		}
		return msgs
	}
	first, err := sdk.PublishBatch(ctx, batch("first"))
	if err != nil || len(first) != rooms {
		t.Fatalf("batch: %d results, %v", len(first), err)
	}
	again, err := sdk.PublishBatch(ctx, batch("first"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if first[i].Err != nil || first[i].Offset != 1 || again[i] != first[i] {
			t.Fatalf("result %d: %+v then %+v", i, first[i], again[i])
		}
	}
	if _, err := sdk.PublishBatch(ctx, batch("marker")); err != nil {
		t.Fatal(err)
	}
	for i, rec := range recs {
		testenv.WaitFor(t, 15*time.Second, fmt.Sprintf("member %d has both batches", i), func() bool { return rec.len() >= 2*rooms })
		perRoom := map[string][]uint64{}
		for _, m := range rec.snapshot() {
			perRoom[m.Room] = append(perRoom[m.Room], m.Offset)
		}
		for room, offs := range perRoom {
			if len(offs) != 2 || offs[0] != 1 || offs[1] != 2 {
				t.Fatalf("member %d, %s: offsets %v, want [1 2]", i, room, offs)
			}
		}
		if len(perRoom) != rooms {
			t.Fatalf("member %d heard from %d rooms", i, len(perRoom))
		}
	}
}
