package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/roomcast/roomcast/tests/harness"
)

var (
	specOnce      sync.Once
	specValidator validator.Validator
	specErr       error
)

// openAPI returns a validator for docs/openapi.yaml, checking the document
// itself on first use.
func openAPI(t testing.TB) validator.Validator {
	t.Helper()
	specOnce.Do(func() {
		raw, err := os.ReadFile("../../docs/openapi.yaml")
		if err != nil {
			specErr = err
			return
		}
		doc, err := libopenapi.NewDocument(raw)
		if err != nil {
			specErr = err
			return
		}
		v, errs := validator.NewValidator(doc)
		if len(errs) > 0 {
			specErr = errs[0]
			return
		}
		if ok, verrs := v.ValidateDocument(); !ok {
			for _, e := range verrs {
				t.Logf("openapi.yaml: %s", e.Message)
			}
			specErr = io.ErrUnexpectedEOF
			return
		}
		specValidator = v
	})
	if specErr != nil {
		t.Fatalf("docs/openapi.yaml: %v", specErr)
	}
	return specValidator
}

// checkAgainstSpec fails the test if the exchange does not match
// docs/openapi.yaml: the documentation is checked against real responses.
func checkAgainstSpec(t testing.TB, method, url string, header http.Header, reqBody []byte, status int, respHeader http.Header, respBody []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(reqBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	resp := &http.Response{StatusCode: status, Header: respHeader, Body: io.NopCloser(bytes.NewReader(respBody)), Request: req}
	if ok, errs := openAPI(t).ValidateHttpResponse(req, resp); !ok {
		for _, e := range errs {
			t.Errorf("%s %s → %d does not match docs/openapi.yaml: %s (%s)", method, req.URL.Path, status, e.Message, e.Reason)
		}
	}
}

func TestOpenAPIDescribesHealthEndpoints(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw := env.Gateway(t, "gw-openapi")
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(gw.HTTPURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		checkAgainstSpec(t, http.MethodGet, gw.HTTPURL()+path, http.Header{}, nil, resp.StatusCode, resp.Header, body)
	}
}
