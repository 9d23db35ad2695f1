package e2e

import (
	"bytes"
	"os"
	"strconv"
	"testing"

	"github.com/roomcast/roomcast/pkg/sysmon"
	"github.com/roomcast/roomcast/tests/harness"
)

// TestGatewayKeepsSysmonAwake: a gateway started without the setting runs
// with it (it re-executed itself, keeping its other GODEBUG settings), and
// an operator's own schedtrace wins.
func TestGatewayKeepsSysmonAwake(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	for i, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"default", nil, "GODEBUG=" + sysmon.Setting},
		{"other settings kept", []string{"GODEBUG=gctrace=0"}, "GODEBUG=gctrace=0," + sysmon.Setting},
		{"opted out", []string{"GODEBUG=schedtrace=0"}, "GODEBUG=schedtrace=0"},
	} {
		gw := env.Gateway(t, "gw-sysmon-"+strconv.Itoa(i), tc.extra...)
		environ, err := os.ReadFile("/proc/" + strconv.Itoa(gw.Pid()) + "/environ")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for kv := range bytes.SplitSeq(environ, []byte{0}) {
			if bytes.HasPrefix(kv, []byte("GODEBUG=")) {
				got = append(got, string(kv))
			}
		}
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s: the running gateway's GODEBUG is %q, want %q", tc.name, got, tc.want)
		}
	}
}
