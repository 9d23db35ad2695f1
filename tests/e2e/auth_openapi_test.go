package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
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
		var b []byte
		if body != nil {
			b, _ = json.Marshal(body)
		}
		req, _ := http.NewRequest(method, e.auth.HTTPURL()+path, bytes.NewReader(b))
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if cred != "" {
			req.Header.Set("Authorization", "Bearer "+cred)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		respBody, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		check, _ := http.NewRequest(method, e.auth.HTTPURL()+path, bytes.NewReader(b))
		check.Header = req.Header.Clone()
		resp.Body = io.NopCloser(bytes.NewReader(respBody))
		resp.Request = check
		if ok, errs := v.ValidateHttpResponse(check, resp); !ok {
			for _, ve := range errs {
				t.Errorf("%s %s → %d does not match docs/auth-openapi.yaml: %s (%s)", method, path, resp.StatusCode, ve.Message, ve.Reason)
			}
		}
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
