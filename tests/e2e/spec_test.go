package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
)

// loadSpec reads an OpenAPI document of docs/, fails the test unless it
// is a valid document, and returns a validator for requests and answers
// (with opts) and the document.
func loadSpec(t testing.TB, path string, opts ...config.Option) (validator.Validator, libopenapi.Document) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(raw)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	v, errs := validator.NewValidator(doc, opts...)
	if len(errs) > 0 {
		t.Fatalf("%s: %v", path, errs[0])
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("%s: %s", path, e.Message)
		}
		t.FailNow()
	}
	return v, doc
}

// specCall sends method path (body as JSON unless nil, bearer unless
// empty) to base, checks the answer against v, the validator of the
// document named spec, and returns the answer's body.
func specCall(t testing.TB, v validator.Validator, spec, base, method, path, bearer string, body any) []byte {
	t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	respBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	check, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
	check.Header = req.Header.Clone()
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	resp.Request = check
	if ok, verrs := v.ValidateHttpResponse(check, resp); !ok {
		for _, ve := range verrs {
			t.Errorf("%s %s → %d does not match %s: %s (%s)", method, path, resp.StatusCode, spec, ve.Message, ve.Reason)
		}
	}
	return respBody
}
