package config

import (
	"testing"

	"github.com/roomcast/roomcast/pkg/config/configdoc"
)

// TestOperationsDocListsEveryVariable keeps the presence table of
// docs/operations.md equal to what the service reads.
func TestOperationsDocListsEveryVariable(t *testing.T) {
	for _, err := range configdoc.Check("../../../docs/operations.md", "presence-env", Config{}) {
		t.Error(err)
	}
}
