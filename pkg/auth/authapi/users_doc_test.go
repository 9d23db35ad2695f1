package authapi

import (
	"os"
	"strings"
	"testing"
)

// TestUsersDocListsEveryUserCode keeps docs/users-api.md's error table in
// step with UserCodes.
func TestUsersDocListsEveryUserCode(t *testing.T) {
	b, err := os.ReadFile("../../../docs/users-api.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range append(UserCodes, CodeOAuthFailed) {
		if !strings.Contains(string(b), "| `"+string(c)+"` |") {
			t.Errorf("docs/users-api.md has no error-code row for %s", c)
		}
	}
}
