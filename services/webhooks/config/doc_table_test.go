package config

import (
	"testing"

	"github.com/roomcast/roomcast/pkg/config/configdoc"
)

// TestOperationsDocListsEveryVariable keeps the webhooks table of
// docs/operations.md equal to what the service reads.
func TestOperationsDocListsEveryVariable(t *testing.T) {
	for _, err := range configdoc.Check("../../../docs/operations.md", "webhooks-env", Config{}) {
		t.Error(err)
	}
}
