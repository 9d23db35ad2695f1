package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/nodelease"
)

// TestAppBackendSeesItsUsers: an app's backend reads its users (online
// status included) and blocks them with its own API key, given "admin" on
// "*"; keys without it, of another app, or no key at all are refused.
func TestAppBackendSeesItsUsers(t *testing.T) {
	us := newUsersServer(t, roomy, authapi.UserPolicy{Anonymous: true})
	s := session(t, us.do(t, "POST", up+"/anonymous", "", nil))
	uid := s.User.ID

	newKey := func(app string, caps token.Capabilities) string {
		t.Helper()
		var k authapi.Key
		r := us.do(t, "POST", "/admin/v1/apps/"+app+"/keys", adminToken, authapi.CreateKey{Caps: caps})
		if r.status != 201 || json.Unmarshal(r.raw, &k) != nil {
			t.Fatalf("create key: %d %s", r.status, r.raw)
		}
		return k.APIKey
	}
	backend := newKey("shop", token.Capabilities{"*": {token.OpAdmin, token.OpJoin}})
	narrow := newKey("shop", token.Capabilities{"chat.*": {token.OpJoin}})
	if r := us.do(t, "POST", "/admin/v1/apps", adminToken, authapi.CreateApp{ID: "other"}); r.status != 201 {
		t.Fatalf("create app: %d %s", r.status, r.raw)
	}
	foreign := newKey("other", token.Capabilities{"*": {token.OpAdmin}})

	var u authapi.User
	r := us.do(t, "GET", "/v1/apps/shop/users/"+uid, backend, nil)
	if r.status != 200 || json.Unmarshal(r.raw, &u) != nil || u.ID != uid || u.Online == nil || *u.Online || u.Blocked == nil || *u.Blocked {
		t.Fatalf("get user: %d %s", r.status, r.raw)
	}
	// A connection on a gateway that holds its lease.
	if err := us.rdb.Set(t.Context(), nodelease.Key(us.prefix, "gw1"), "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := us.online.Opened(t.Context(), "shop", uid, "c1", "gw1", time.Now()); err != nil {
		t.Fatal(err)
	}
	r = us.do(t, "GET", "/v1/apps/shop/users/"+uid, backend, nil)
	if r.status != 200 || json.Unmarshal(r.raw, &u) != nil || u.Online == nil || !*u.Online {
		t.Fatalf("online user: %d %s", r.status, r.raw)
	}
	var list authapi.Users
	r = us.do(t, "GET", "/v1/apps/shop/users?limit=10", backend, nil)
	if r.status != 200 || json.Unmarshal(r.raw, &list) != nil || len(list.Users) != 1 || list.Users[0].ID != uid {
		t.Fatalf("list users: %d %s", r.status, r.raw)
	}
	r = us.do(t, "POST", "/v1/apps/shop/users/"+uid+"/block", backend, nil)
	if r.status != 200 || json.Unmarshal(r.raw, &u) != nil || u.Blocked == nil || !*u.Blocked {
		t.Fatalf("block: %d %s", r.status, r.raw)
	}
	want(t, "refresh of a user the app blocked", us.do(t, "POST", up+"/refresh", "", authapi.RefreshRequest{RefreshToken: s.RefreshToken}), 401, "invalid_credentials")
	want(t, "unblock", us.do(t, "POST", "/v1/apps/shop/users/"+uid+"/unblock", backend, nil), 200, "")

	want(t, "no key", us.do(t, "GET", "/v1/apps/shop/users/"+uid, "", nil), 401, "unauthorized")
	want(t, "the admin token is not an API key", us.do(t, "GET", "/v1/apps/shop/users/"+uid, adminToken, nil), 401, "unauthorized")
	want(t, "wrong secret", us.do(t, "GET", "/v1/apps/shop/users/"+uid, backend[:len(backend)-2]+"xx", nil), 401, "unauthorized")
	want(t, "key without admin", us.do(t, "GET", "/v1/apps/shop/users/"+uid, narrow, nil), 403, "forbidden")
	want(t, "another app's key", us.do(t, "GET", "/v1/apps/shop/users/"+uid, foreign, nil), 403, "forbidden")
	want(t, "unknown user", us.do(t, "GET", "/v1/apps/shop/users/u-nobody", backend, nil), 404, "not_found")
}
