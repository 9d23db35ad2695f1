package e2e

import (
	"strconv"
	"testing"

	"github.com/roomcast/roomcast/tests/harness"
)

// TestGatewayGCPercent: the gateway runs the Go collector at
// GATEWAY_GC_PERCENT (50 by default), and an explicit GOGC wins over it.
func TestGatewayGCPercent(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	for i, tc := range []struct {
		name  string
		extra []string
		want  float64
	}{
		{"default", nil, 50},
		{"GATEWAY_GC_PERCENT", []string{"GATEWAY_GC_PERCENT=80"}, 80},
		{"GOGC wins", []string{"GATEWAY_GC_PERCENT=80", "GOGC=120"}, 120},
	} {
		gw := env.Gateway(t, "gw-gc-"+strconv.Itoa(i), tc.extra...)
		if got := gw.Metric(t, "go_gc_gogc_percent"); got != tc.want {
			t.Errorf("%s: go_gc_gogc_percent = %v, want %v", tc.name, got, tc.want)
		}
	}
}
