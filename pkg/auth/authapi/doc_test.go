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
