package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/rest"
	"github.com/roomcast/roomcast/tests/harness"
)

// roomcast runs the CLI against the test's auth service.
func (e *usersEnv) roomcast(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(harness.Binary(t, "roomcast"), args...)
	cmd.Env = append(cmd.Environ(), "ROOMCAST_AUTH_URL="+e.auth.HTTPURL(), "ROOMCAST_ADMIN_TOKEN="+e.adminToken)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("roomcast %s: %v: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// TestUsersCLI: `roomcast users policy` turns accounts on for an app,
// `users list` and `users show` see its users, and `users block` ends a
// user's sessions (their refresh token stops working) until `unblock`.
func TestUsersCLI(t *testing.T) {
	t.Parallel()
	e := newUsersEnv(t)
	if _, err := e.roomcast(t, "apps", "create", e.app); err != nil {
		t.Fatal(err)
	}
	out, err := e.roomcast(t, "keys", "create", "--app", e.app, "--cap", "chat.*=join,publish", "--cap", "user.*=join")
	if err != nil {
		t.Fatal(err)
	}
	key, err := token.ParseAPIKey(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("keys create printed no key: %v", err)
	}

	// No policy yet: users are off, and the CLI says so.
	if _, err := e.roomcast(t, "users", "policy", "--app", e.app); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("policy of an app without one: %v", err)
	}
	// Capabilities beyond the key's are refused.
	if _, err := e.roomcast(t, "users", "policy", "--app", e.app, "--key", key.ID, "--cap", "admin.*=publish"); err == nil {
		t.Fatal("a policy wider than its key was accepted")
	}
	out, err = e.roomcast(t, "users", "policy", "--app", e.app, "--key", key.ID, "--cap", "chat.*=join", "--cap", "user.{user}=join",
		"--anonymous", "--access-ttl", "2m", "--redirect-uri", "https://app.example.com/cb")
	if err != nil {
		t.Fatal(err)
	}
	var p authapi.UserPolicy
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("policy output %q: %v", out, err)
	}
	if p.Key != key.ID || !p.Anonymous || p.Signup || p.AccessTTL != "2m0s" && p.AccessTTL != "2m" || len(p.RedirectURIs) != 1 {
		t.Fatalf("policy %+v", p)
	}
	if out, err := e.roomcast(t, "users", "policy", "--app", e.app); err != nil || !strings.Contains(out, `"user.{user}"`) {
		t.Fatalf("policy get: %q, %v", out, err)
	}

	base := authapi.UsersPath(e.app)
	var s authapi.SignInResult
	e.must(t, 200, "POST", base+"/anonymous", "", nil, &s)
	if s.User == nil || s.RefreshToken == "" {
		t.Fatalf("anonymous sign-in: %+v", s)
	}
	uid := s.User.ID

	out, err = e.roomcast(t, "users", "list", "--app", e.app)
	if err != nil || !strings.Contains(out, uid) || !strings.Contains(out, "anonymous") {
		t.Fatalf("users list: %q, %v", out, err)
	}
	out, err = e.roomcast(t, "users", "block", "--app", e.app, uid)
	if err != nil || !strings.Contains(out, `"blocked": true`) {
		t.Fatalf("users block: %q, %v", out, err)
	}
	if st, raw := e.call(t, "POST", base+"/refresh", "", authapi.RefreshRequest{RefreshToken: s.RefreshToken}); st != 401 || !strings.Contains(string(raw), string(authapi.CodeInvalidCredentials)) {
		t.Fatalf("refresh of a blocked user: %d %s", st, raw)
	}
	if out, err := e.roomcast(t, "users", "show", "--app", e.app, uid); err != nil || !strings.Contains(out, `"blocked": true`) {
		t.Fatalf("users show: %q, %v", out, err)
	}
	if out, err := e.roomcast(t, "users", "unblock", "--app", e.app, uid); err != nil || !strings.Contains(out, `"blocked": false`) {
		t.Fatalf("users unblock: %q, %v", out, err)
	}
	if _, err := e.roomcast(t, "users", "show", "--app", e.app, "u-nobody"); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("show of an unknown user: %v", err)
	}

	// The app's backend: the REST SDK with an API key that has admin on *.
	out, err = e.roomcast(t, "keys", "create", "--app", e.app, "--cap", "*=admin")
	if err != nil {
		t.Fatal(err)
	}
	sdk, err := rest.New(rest.Config{AuthURL: e.auth.HTTPURL(), APIKey: strings.TrimSpace(out)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, err := sdk.User(ctx, uid)
	if err != nil || u.ID != uid || u.Online == nil || *u.Online || u.Blocked == nil || *u.Blocked {
		t.Fatalf("rest User: %+v, %v", u, err)
	}
	page, err := sdk.Users(ctx, "", 10)
	if err != nil || len(page.Users) != 1 || page.Users[0].ID != uid {
		t.Fatalf("rest Users: %+v, %v", page, err)
	}
	if u, err := sdk.BlockUser(ctx, uid); err != nil || u.Blocked == nil || !*u.Blocked {
		t.Fatalf("rest BlockUser: %+v, %v", u, err)
	}
	if u, err := sdk.UnblockUser(ctx, uid); err != nil || u.Blocked == nil || *u.Blocked {
		t.Fatalf("rest UnblockUser: %+v, %v", u, err)
	}
	// The key of the first part has no admin: refused.
	narrow, _ := rest.New(rest.Config{AuthURL: e.auth.HTTPURL(), APIKey: key.String()})
	var re *rest.Error
	if _, err := narrow.User(ctx, uid); !errors.As(err, &re) || re.Code != string(protocol.CodeForbidden) {
		t.Fatalf("rest User with a key without admin: %v", err)
	}
}
