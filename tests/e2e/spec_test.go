package e2e

import (
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
