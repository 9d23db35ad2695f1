package protocol_test

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
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

// TestProtocolDocFramesRoundTrip: every server frame docs/protocol.md
// shows as JSON decodes with the codec and encodes back to the same JSON,
// so the examples SDK authors copy are what gateways send.
func TestProtocolDocFramesRoundTrip(t *testing.T) {
	b, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, `{"type":"`) {
			continue
		}
		var want any
		if json.Unmarshal([]byte(line), &want) != nil {
			continue // an abridged example ("…")
		}
		n++
		f, err := protocol.JSON.DecodeServerFrame([]byte(line))
		if err != nil {
			t.Errorf("%s: %v", line, err)
			continue
		}
		out, err := protocol.JSON.AppendServerFrame(nil, &f)
		if err != nil {
			t.Errorf("%s: encode: %v", line, err)
			continue
		}
		var got any
		if err := json.Unmarshal(out, &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("docs/protocol.md frame\n  %s\nencodes back as\n  %s", line, out)
		}
	}
	if n < 5 {
		t.Fatalf("only %d frame examples found in docs/protocol.md", n)
	}
}
