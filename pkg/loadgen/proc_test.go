package loadgen

import (
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// Fields after the name: state ppid pgrp session tty tpgid flags
	// minflt cminflt majflt cmajflt utime stime ...
	rest := " S 1 2 3 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 1234 5678 90"
	tests := []struct {
		name  string
		stat  string
		ticks int64
		want  time.Duration
	}{
		{"plain name", "4242 (gw)" + rest, 100, 3250 * time.Millisecond},
		{"name with spaces and parens", "4242 (my (weird) gw) x)" + rest, 100, 3250 * time.Millisecond},
		{"other tick rate", "4242 (gw)" + rest, 250, 1300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.stat), tt.ticks)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("cpu = %v, want %v", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "4242 gw S 1", "4242 (gw) S 1 2 3", "4242 (gw) S 1 2 3 0 -1 4 1 0 0 0 x 75 0"} {
		if _, err := parseStatCPU([]byte(bad), 100); err == nil {
			t.Errorf("parseStatCPU(%q) succeeded, want an error", bad)
		}
	}
	if _, err := parseStatCPU([]byte("1 (gw)"+rest), 0); err == nil {
		t.Error("zero ticks per second accepted")
	}
}

func TestParseStatusRSS(t *testing.T) {
	status := "Name:\tgw\nVmPeak:\t  900000 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 1 kB\n"
	got, err := parseStatusRSS([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if got != 12345*1024 {
		t.Errorf("rss = %d, want %d", got, 12345*1024)
	}
	for _, bad := range []string{"Name:\tkthreadd\n", "VmRSS:\t12 MB\n", "VmRSS:\tlots kB\n"} {
		if _, err := parseStatusRSS([]byte(bad)); err == nil {
			t.Errorf("parseStatusRSS(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseAuxvClkTck(t *testing.T) {
	auxv := func(pairs ...uint64) []byte {
		b := make([]byte, 8*len(pairs))
		for i, v := range pairs {
			binary.LittleEndian.PutUint64(b[8*i:], v)
		}
		return b
	}
	if got := parseAuxvClkTck(auxv(6, 4096, atClkTck, 100, 0, 0)); got != 100 {
		t.Errorf("clock ticks = %d, want 100", got)
	}
	if got := parseAuxvClkTck(auxv(6, 4096, 0, 0, atClkTck, 250)); got != 0 {
		t.Errorf("clock ticks after AT_NULL = %d, want 0", got)
	}
	if got := parseAuxvClkTck(nil); got != 0 {
		t.Errorf("clock ticks of empty auxv = %d, want 0", got)
	}
}

// TestReadProcSelf reads this very process: its RSS is above zero and its
// CPU time grows with work.
func TestReadProcSelf(t *testing.T) {
	before, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if before.RSSBytes <= 0 {
		t.Errorf("rss = %d, want > 0", before.RSSBytes)
	}
	// Burn CPU until /proc (10 ms resolution) and getrusage see it.
	cpu0 := SelfCPU()
	var after ProcSample
	for x := 0; ; x++ {
		_ = strings.Repeat("x", x%1000)
		if x%100000 != 0 {
			continue
		}
		if after, err = ReadProc(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if after.CPU > before.CPU && SelfCPU() > cpu0 {
			break
		}
	}
	if _, err := ReadProcs([]int{os.Getpid(), 1 << 30}); err == nil {
		t.Error("ReadProcs of a pid that does not exist succeeded")
	}
}

func TestParseMachineStat(t *testing.T) {
	stat := "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\nintr 1\n"
	got, err := parseMachineStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := (machineTimes{busy: 100 + 5 + 50 + 3 + 2 + 1, total: 1181}); got != want {
		t.Errorf("machine times = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8\n", "cpu 1 2 3\n", "cpu 1 2 x 4 5 6 7 8\n"} {
		if _, err := parseMachineStat([]byte(bad)); err == nil {
			t.Errorf("parseMachineStat(%q) succeeded, want an error", bad)
		}
	}
	if _, err := readMachine(); err != nil {
		t.Errorf("this machine's /proc/stat: %v", err)
	}
}
