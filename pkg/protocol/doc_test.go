package protocol_test

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// TestProtocolDocMatchesTheCode keeps docs/protocol.md's error-code and
// close-code tables in step with the constants SDKs switch on.
func TestProtocolDocMatchesTheCode(t *testing.T) {
	b, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	seen := map[protocol.Code]bool{}
	for _, c := range protocol.Codes {
		if seen[c] {
			t.Errorf("code %s listed twice in protocol.Codes", c)
		}
		seen[c] = true
		if !strings.Contains(doc, "| `"+string(c)+"`") && !strings.Contains(doc, "`"+string(c)+"`, `") && !strings.Contains(doc, ", `"+string(c)+"` |") {
			t.Errorf("docs/protocol.md has no error-code row for %s", c)
		}
	}
	for _, ci := range protocol.CloseCodes {
		row := regexp.MustCompile(fmt.Sprintf("(?m)^\\| %d \\| `%s` \\|", ci.Code, regexp.QuoteMeta(ci.Name)))
		if !row.MatchString(doc) {
			t.Errorf("docs/protocol.md has no close-code row \"| %d | `%s` |\"", ci.Code, ci.Name)
		}
	}
}

// TestOpenAPIErrorCodesMatchTheCode keeps the error-code enum in
// docs/openapi.yaml equal to protocol.Codes.
func TestOpenAPIErrorCodesMatchTheCode(t *testing.T) {
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)enum: \[([^\]]*)\]`).FindSubmatch(b)
	if m == nil {
		t.Fatal("docs/openapi.yaml has no error-code enum")
	}
	inSpec := map[string]bool{}
	for _, f := range strings.Split(string(m[1]), ",") {
		inSpec[strings.TrimSpace(f)] = true
	}
	for _, c := range protocol.Codes {
		if !inSpec[string(c)] {
			t.Errorf("docs/openapi.yaml error enum lacks %s", c)
		}
		delete(inSpec, string(c))
	}
	for c := range inSpec {
		t.Errorf("docs/openapi.yaml lists %s, which is not a protocol code", c)
	}
}
