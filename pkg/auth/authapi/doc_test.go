package authapi

import (
	"os"
	"strings"
	"testing"
)

// TestAuthAPIDocListsEveryCode keeps docs/auth-api.md's error table in step
// with Codes.
func TestAuthAPIDocListsEveryCode(t *testing.T) {
	b, err := os.ReadFile("../../../docs/auth-api.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range Codes {
		if seen[string(c)] {
			t.Errorf("%s listed twice in Codes", c)
		}
		seen[string(c)] = true
		if !strings.Contains(string(b), "| `"+string(c)+"` |") {
			t.Errorf("docs/auth-api.md has no error-code row for %s", c)
		}
	}
}

// TestAuthOpenAPIErrorCodes keeps the error enum of docs/auth-openapi.yaml
// equal to Codes.
func TestAuthOpenAPIErrorCodes(t *testing.T) {
	b, err := os.ReadFile("../../../docs/auth-openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "enum: [bad_request")
	if !ok {
		t.Fatal("docs/auth-openapi.yaml has no error-code enum")
	}
	list, _, _ := strings.Cut("bad_request"+rest, "]")
	var want []string
	for _, c := range Codes {
		want = append(want, string(c))
	}
	if got := strings.ReplaceAll(list, " ", ""); got != strings.Join(want, ",") {
		t.Errorf("docs/auth-openapi.yaml error enum is [%s], Codes are %v", list, want)
	}
}
