package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
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
}
