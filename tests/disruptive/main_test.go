//go:build disruptive

// Package disruptive holds tests that stop or restart the shared servers
// (RabbitMQ, Redis). `make test` runs them last, alone (-p 1), so they
// never pull a server out from under other tests.
package disruptive

import (
	"os"
	"testing"

	"github.com/roomcast/roomcast/tests/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
