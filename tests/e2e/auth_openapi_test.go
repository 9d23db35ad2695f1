package e2e

import (
	"testing"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
)

// checkAuthSpec exercises the auth service's endpoints and checks every
// answer against docs/auth-openapi.yaml.
func checkAuthSpec(t *testing.T, e *authEnv) {
	t.Helper()
	v, _ := loadSpec(t, "../../docs/auth-openapi.yaml")
	key := e.newKey(t, "spec", "chat.*=join")
	exchange := func(method, path, cred string, body any) {
		t.Helper()
		specCall(t, v, "docs/auth-openapi.yaml", e.auth.HTTPURL(), method, path, cred, body)
	}
	caps := token.Capabilities{"chat.x": {token.OpJoin}}
	exchange("POST", "/admin/v1/apps", e.adminToken, authapi.CreateApp{ID: "spec2", Name: "Spec"})
	exchange("POST", "/admin/v1/apps", e.adminToken, authapi.CreateApp{ID: "spec2"})
	exchange("GET", "/admin/v1/apps", e.adminToken, nil)
	exchange("GET", "/admin/v1/apps", "", nil)
	exchange("POST", "/admin/v1/apps/spec2/keys", e.adminToken, authapi.CreateKey{Caps: caps})
	exchange("GET", "/admin/v1/apps/spec/keys", e.adminToken, nil)
	exchange("GET", "/admin/v1/apps/nope/keys", e.adminToken, nil)
	exchange("POST", "/admin/v1/apps/spec/keys/"+key.ID+"/rotate", e.adminToken, authapi.RotateKey{Grace: "1m"})
	exchange("POST", "/admin/v1/apps/spec/keys/"+key.ID+"/revoke", e.adminToken, nil)
	exchange("GET", "/admin/v1/signing-keys", e.adminToken, nil)
	exchange("POST", "/admin/v1/signing-keys/rotate", e.adminToken, authapi.RotateSigningKey{Overlap: "1h"})
	exchange("POST", "/v1/tokens", key.String(), authapi.TokenRequest{ClientID: "a", Caps: caps})
	fresh := e.newKey(t, "spec", "chat.*=join")
	exchange("POST", "/v1/tokens", fresh.String(), authapi.TokenRequest{ClientID: "a", Caps: caps})
	exchange("POST", "/v1/tokens", fresh.String(), authapi.TokenRequest{ClientID: "a", Caps: token.Capabilities{"*": {token.OpJoin}}})
	exchange("GET", "/.well-known/jwks.json", "", nil)
	exchange("GET", "/internal/v1/keys", e.serviceToken, nil)
	exchange("GET", "/internal/v1/keys", e.adminToken, nil)
	exchange("GET", "/healthz", "", nil)
	exchange("GET", "/readyz", "", nil)
}
