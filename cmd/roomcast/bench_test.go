package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/pkg/loadgen"
)

func TestBenchHelp(t *testing.T) {
	e, stdout, _ := testEnv("", nil)
	if code := run(context.Background(), []string{"bench", "--help"}, e); code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	for _, want := range []string{"-url", "-key", "-token", "-connections", "-connect-rate", "-rooms", "-room-count",
		"-publishers", "-rate", "-duration", "-payload", "-transient", "-codec", "-pids", "-procs", "-publisher-procs", "-no-floor", "-paced-floor", "-json",
		"ROOMCAST_URL", "ROOMCAST_KEY", "ROOMCAST_TOKEN", "ROOMCAST_BENCH_PIDS", "bench floor"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("bench --help lacks %q", want)
		}
	}
	e, stdout, _ = testEnv("", nil)
	if code := run(context.Background(), []string{"bench", "floor", "--help"}, e); code != exitOK {
		t.Fatalf("floor --help exit code %d", code)
	}
	for _, want := range []string{"-sockets", "-messages", "-coalesce", "-frame-bytes", "-rate", "-burst"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("bench floor --help lacks %q", want)
		}
	}
}

func TestBenchUsageErrors(t *testing.T) {
	key := "app1.k1:0123456789abcdef"
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"no credentials", []string{"bench"}, nil, "--key or --token is required"},
		{"both credentials", []string{"bench", "--key", key, "--token", "t"}, nil, "not both"},
		{"bad rooms", []string{"bench", "--key", key, "--rooms", "few"}, nil, "--rooms must be"},
		{"bad codec", []string{"bench", "--key", key, "--codec", "cbor"}, nil, "--codec must be"},
		{"zero procs", []string{"bench", "--key", key, "--procs", "0"}, nil, "--procs"},
		{"more publisher procs than publishers", []string{"bench", "--key", key, "--publishers", "2", "--publisher-procs", "3"}, nil, "--publisher-procs"},
		{"publisher procs when idle", []string{"bench", "--key", key, "--idle", "--publisher-procs", "1"}, nil, "--publisher-procs"},
		{"bad pid", []string{"bench", "--key", key, "--pids", "12,x"}, nil, "not a process id"},
		{"bad pid from env", []string{"bench", "--key", key}, map[string]string{"ROOMCAST_BENCH_PIDS": "-3"}, "ROOMCAST_BENCH_PIDS"},
		{"argument", []string{"bench", "--key", key, "extra"}, nil, "unexpected argument"},
		{"floor frame size", []string{"bench", "floor", "--frame-bytes", "500"}, nil, "--frame-bytes"},
		{"floor burst without rate", []string{"bench", "floor", "--burst", "5"}, nil, "--burst needs --rate"},
		{"negative paced floor", []string{"bench", "--key", key, "--paced-floor", "-1"}, nil, "--paced-floor"},
		{"bad paced floor", []string{"bench", "--key", key, "--paced-floor", "fast"}, nil, "--paced-floor must be auto"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, stderr := testEnv("", tt.vars)
			if code := run(context.Background(), tt.args, e); code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q lacks %q", stderr, tt.want)
			}
			if strings.Contains(stderr.String(), "0123456789abcdef") {
				t.Error("the key's secret appears on stderr")
			}
		})
	}
}

// TestBenchFloorCommand runs a small floor through the CLI and reads its
// JSON.
func TestBenchFloorCommand(t *testing.T) {
	e, stdout, stderr := testEnv("", nil)
	code := run(context.Background(), []string{"bench", "floor", "--sockets", "10", "--messages", "1000", "--coalesce", "20", "--json"}, e)
	if code != exitOK {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	var r loadgen.FloorReport
	if err := json.Unmarshal([]byte(stdout.String()), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if r.Sockets != 10 || r.Coalesce != 20 || r.Deliveries != 1000 || r.Writes != 50 || r.CPUSeconds <= 0 {
		t.Errorf("floor report %+v", r)
	}
	e, stdout, _ = testEnv("", nil)
	if code := run(context.Background(), []string{"bench", "floor", "--sockets", "5", "--messages", "100"}, e); code != exitOK {
		t.Fatalf("table: exit code %d", code)
	}
	if !strings.Contains(stdout.String(), "CPU-s per 1M deliveries") {
		t.Errorf("floor table %q", stdout)
	}
	e, stdout, _ = testEnv("", nil)
	if code := run(context.Background(), []string{"bench", "floor", "--sockets", "4", "--messages", "40", "--rate", "4000", "--burst", "2"}, e); code != exitOK {
		t.Fatalf("paced: exit code %d", code)
	}
	if !strings.Contains(stdout.String(), "paced at 4000/s in bursts of 2") {
		t.Errorf("paced floor table %q", stdout)
	}
}

// TestBenchConnectionRefused runs a whole (tiny) bench against a gateway
// URL nobody serves: it completes and reports the failed connections.
func TestBenchConnectionRefused(t *testing.T) {
	e, stdout, stderr := testEnv("", map[string]string{"ROOMCAST_KEY": "app1.k1:0123456789abcdef"})
	code := run(context.Background(), []string{"bench", "--url", "ws://127.0.0.1:1/v1/connect", "--connections", "3",
		"--duration", "100ms", "--drain-timeout", "100ms", "--no-floor", "--json", "--quiet"}, e)
	if code != exitOK {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	var r loadgen.Report
	if err := json.Unmarshal([]byte(stdout.String()), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if r.Connections.Failed != 3 || r.Connections.PublishersFailed != 1 || r.Errors["dial:connection_refused"] != 4 || r.Raw != nil {
		t.Errorf("report %+v", r)
	}
}
