package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/seal"
	"github.com/roomcast/roomcast/services/auth/authtest"
	"github.com/roomcast/roomcast/services/auth/internal/store"
)

const (
	adminToken   = "admin-token-0123456789"
	serviceToken = "service-token-0123456789"
)

type testServer struct {
	url      string
	notified atomic.Int64
	logs     *bytes.Buffer
	store    *store.Store
	pool     *pgxpool.Pool
}

func newServer(t *testing.T) *testServer {
	t.Helper()
	pool := authtest.Pool(t)
	ctx := context.Background()
	sealer, _ := seal.New(bytes.Repeat([]byte{3}, 32))
	ts := &testServer{logs: &bytes.Buffer{}, store: store.New(pool, sealer), pool: pool}
	if _, err := ts.store.RotateSigningKeyIfOlder(ctx, 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	a := New(Config{
		Store:        ts.store,
		AdminToken:   adminToken,
		ServiceToken: serviceToken,
		Notify:       func() { ts.notified.Add(1) },
		Log:          slog.New(slog.NewJSONHandler(ts.logs, nil)),
		Registry:     prometheus.NewRegistry(),

		TokenDefaultTTL:   time.Hour,
		TokenMaxTTL:       24 * time.Hour,
		SigningKeyOverlap: 25 * time.Hour,
	})
	a.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ts.url = srv.URL
	return ts
}

type response struct {
	status int
	raw    []byte
	header http.Header
}

func (r response) code() string {
	var e authapi.Error
	_ = json.Unmarshal(r.raw, &e)
	return string(e.Error.Code)
}

func (ts *testServer) do(t *testing.T, method, path, cred string, body any) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, _ := http.NewRequest(method, ts.url+path, rd)
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNotModified && resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", method, path, resp.Header.Get("Content-Type"))
	}
	return response{status: resp.StatusCode, raw: raw, header: resp.Header}
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	ts := newServer(t)

	// Every admin route wants the admin credential.
	for _, cred := range []string{"", "wrong", serviceToken, adminToken + "x"} {
		if r := ts.do(t, "GET", "/admin/v1/apps", cred, nil); r.status != 401 || r.code() != "unauthorized" {
			t.Errorf("credential %q: %d %s", cred, r.status, r.raw)
		}
	}
	if r := ts.do(t, "POST", "/admin/v1/apps", adminToken, authapi.CreateApp{ID: "demo", Name: "Demo"}); r.status != 201 {
		t.Fatalf("create app: %d %s", r.status, r.raw)
	}
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"duplicate app", "POST", "/admin/v1/apps", authapi.CreateApp{ID: "demo"}, 409, "conflict"},
		{"bad app id", "POST", "/admin/v1/apps", authapi.CreateApp{ID: "a.b"}, 400, "bad_request"},
		{"unknown field", "POST", "/admin/v1/apps", `{"id":"x","nmae":"y"}`, 400, "bad_request"},
		{"not JSON", "POST", "/admin/v1/apps", `{`, 400, "bad_request"},
		{"key for no app", "POST", "/admin/v1/apps/nope/keys", authapi.CreateKey{Caps: token.Capabilities{"*": {token.OpJoin}}}, 404, "not_found"},
		{"key without caps", "POST", "/admin/v1/apps/demo/keys", authapi.CreateKey{}, 400, "bad_request"},
		{"key with a bad op", "POST", "/admin/v1/apps/demo/keys", `{"caps":{"*":["fly"]}}`, 400, "bad_request"},
		{"keys of no app", "GET", "/admin/v1/apps/nope/keys", nil, 404, "not_found"},
		{"revoke no key", "POST", "/admin/v1/apps/demo/keys/knope/revoke", nil, 404, "not_found"},
		{"rotate with a bad grace", "POST", "/admin/v1/apps/demo/keys/knope/rotate", authapi.RotateKey{Grace: "soon"}, 400, "bad_request"},
	}
	for _, c := range cases {
		if r := ts.do(t, c.method, c.path, adminToken, c.body); r.status != c.status || r.code() != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.raw, c.status, c.code)
		}
	}
	if n := ts.notified.Load(); n != 0 {
		t.Fatalf("%d notifications without a key change", n)
	}

	r := ts.do(t, "POST", "/admin/v1/apps/demo/keys", adminToken, authapi.CreateKey{Name: "backend", Caps: token.Capabilities{"chat.*": {token.OpJoin, token.OpAdmin}}})
	var k authapi.Key
	if err := json.Unmarshal(r.raw, &k); r.status != 201 || err != nil || k.APIKey == "" {
		t.Fatalf("create key: %d %s", r.status, r.raw)
	}
	full, err := token.ParseAPIKey(k.APIKey)
	if err != nil {
		t.Fatal(err)
	}
	if ts.notified.Load() != 1 {
		t.Fatal("key creation was not announced")
	}
	r = ts.do(t, "GET", "/admin/v1/apps/demo/keys", adminToken, nil)
	if r.status != 200 || bytes.Contains(r.raw, full.Secret) || !bytes.Contains(r.raw, []byte(k.ID)) {
		t.Fatalf("list keys: %d %s", r.status, r.raw)
	}
	r = ts.do(t, "POST", "/admin/v1/apps/demo/keys/"+k.ID+"/rotate", adminToken, authapi.RotateKey{Grace: "1h"})
	var rotated authapi.Key
	if err := json.Unmarshal(r.raw, &rotated); r.status != 201 || err != nil || rotated.APIKey == "" || rotated.ID == k.ID {
		t.Fatalf("rotate: %d %s", r.status, r.raw)
	}
	if r := ts.do(t, "POST", "/admin/v1/apps/demo/keys/"+k.ID+"/revoke", adminToken, nil); r.status != 200 || !strings.Contains(string(r.raw), `"revoked_at"`) {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	if r := ts.do(t, "POST", "/admin/v1/apps/demo/keys/"+k.ID+"/rotate", adminToken, nil); r.status != 403 || r.code() != "forbidden" {
		t.Fatalf("rotate a revoked key: %d %s", r.status, r.raw)
	}
	if ts.notified.Load() != 3 {
		t.Fatalf("notifications = %d, want 3 (create, rotate, revoke)", ts.notified.Load())
	}
	r = ts.do(t, "GET", "/admin/v1/apps", adminToken, nil)
	var apps authapi.Apps
	if err := json.Unmarshal(r.raw, &apps); err != nil || len(apps.Apps) != 1 || apps.Apps[0].ID != "demo" {
		t.Fatalf("list apps: %s", r.raw)
	}
	if strings.Contains(ts.logs.String(), string(full.Secret)) || strings.Contains(ts.logs.String(), adminToken) {
		t.Fatal("a secret reached the log")
	}
}
