package api

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
)

func (ts *testServer) keySet(t *testing.T, etag string) (response, authapi.KeySet) {
	t.Helper()
	req, _ := http.NewRequest("GET", ts.url+authapi.PathInternalKeys, nil)
	req.Header.Set("Authorization", "Bearer "+serviceToken)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set authapi.KeySet
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
			t.Fatal(err)
		}
	}
	return response{status: resp.StatusCode, header: resp.Header}, set
}

func TestInternalKeys(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	for _, cred := range []string{"", adminToken, "wrong"} {
		if r := ts.do(t, "GET", authapi.PathInternalKeys, cred, nil); r.status != 401 || r.code() != "unauthorized" {
			t.Errorf("credential %q: %d %s", cred, r.status, r.raw)
		}
	}
	r, set := ts.keySet(t, "")
	if r.status != 200 || len(set.Keys) != 0 || r.header.Get("ETag") == "" {
		t.Fatalf("empty set: %d %+v", r.status, set)
	}
	empty := r.header.Get("ETag")
	ts.do(t, "POST", "/admin/v1/apps", adminToken, authapi.CreateApp{ID: "demo"})
	meta, key := ts.createKey(t, "demo", token.Capabilities{"*": {token.OpJoin}})
	r, set = ts.keySet(t, empty)
	if r.status != 200 || len(set.Keys) != 1 || set.Keys[0].Secret != string(key.Secret) || set.Keys[0].ID != meta.ID {
		t.Fatalf("after create: %d %+v", r.status, set.Version)
	}
	tag := r.header.Get("ETag")
	if r, _ := ts.keySet(t, tag); r.status != 304 {
		t.Fatalf("unchanged set: %d, want 304", r.status)
	}
	ts.do(t, "POST", "/admin/v1/apps/demo/keys/"+meta.ID+"/revoke", adminToken, nil)
	r, set = ts.keySet(t, tag)
	if r.status != 200 || len(set.Keys) != 1 || !set.Keys[0].Revoked || set.Keys[0].Secret != "" {
		t.Fatalf("after revoke: %d %+v", r.status, set)
	}
}
