// Package sysmon keeps the Go runtime's system monitor thread (sysmon) out
// of its deep sleep, which costs a busy network server a fifth of its CPU
// on a virtual machine.
//
// When every processor of the runtime goes idle, sysmon sleeps until the
// next timer; the first system call after that wakes it, and it restarts
// from its shortest period (20 µs). A server that answers a message and
// goes idle, a thousand times a second, pays each time for that wake-up and
// a few context switches of the sysmon thread: 20 % of the gateway's CPU
// in a publish-heavy load on 2 virtual cores (docs/benchmarks.md). With
// scheduler tracing on, sysmon never deep-sleeps: when there is nothing to
// do its period grows to 10 ms and stays there, about 100 wake-ups a
// second. GODEBUG=schedtrace=N turns tracing on with one line of scheduler
// state on standard error every N milliseconds; Setting asks for the
// longest period (24.8 days), so the line appears at most that often (and
// on a fatal error, where it helps).
//
// The runtime reads GODEBUG once, at start, and this setting cannot be
// made with a //go:debug directive: KeepAwake re-executes the program with
// it when the environment lacks it. Images set it in their environment
// (deploy/Dockerfile) and start once.
package sysmon

import (
	"strings"
)

// Setting is the GODEBUG setting that keeps sysmon out of deep sleep.
const Setting = "schedtrace=2147483647"

// Env returns environ with Setting added to GODEBUG, and whether it
// changed anything: not when GODEBUG already names schedtrace (an operator
// tracing the scheduler, or schedtrace=0 to keep the runtime's default).
func Env(environ []string) ([]string, bool) {
	out := make([]string, 0, len(environ)+1)
	found := false
	for _, kv := range environ {
		v, ok := strings.CutPrefix(kv, "GODEBUG=")
		if !ok {
			out = append(out, kv)
			continue
		}
		if found {
			continue // a duplicate: the runtime reads the first
		}
		found = true
		for _, s := range strings.Split(v, ",") {
			if name, _, _ := strings.Cut(s, "="); strings.TrimSpace(name) == "schedtrace" {
				return environ, false
			}
		}
		if v == "" {
			kv = "GODEBUG=" + Setting
		} else {
			kv = "GODEBUG=" + v + "," + Setting
		}
		out = append(out, kv)
	}
	if !found {
		out = append(out, "GODEBUG="+Setting)
	}
	return out, true
}
