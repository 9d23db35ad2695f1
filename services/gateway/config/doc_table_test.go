package config

import (
	"testing"

	"github.com/roomcast/roomcast/pkg/config/configdoc"
)

// TestOperationsDocListsEveryVariable keeps docs/operations.md true: every
// variable the gateway reads appears in its table with its default, and
// the table lists no variable the gateway does not read.
func TestOperationsDocListsEveryVariable(t *testing.T) {
	for _, err := range configdoc.Check("../../../docs/operations.md", "gateway-env", Config{}) {
		t.Error(err)
	}
}
