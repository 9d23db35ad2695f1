package loadgen

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ProcSample is one reading of a process's CPU time and resident memory
// from /proc. CPU is user+system time; its resolution is one clock tick
// (usually 10 ms), fine over windows of seconds.
type ProcSample struct {
	PID      int           `json:"pid"`
	CPU      time.Duration `json:"cpu_ns"`
	RSSBytes int64         `json:"rss_bytes"`
}

// ReadProc samples process pid from /proc/<pid>/stat and /proc/<pid>/status.
func ReadProc(pid int) (ProcSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("read cpu of pid %d: %w", pid, err)
	}
	cpu, err := parseStatCPU(stat, clockTicks())
	if err != nil {
		return ProcSample{}, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	rss, err := parseStatusRSS(status)
	if err != nil {
		return ProcSample{}, fmt.Errorf("parse /proc/%d/status: %w", pid, err)
	}
	return ProcSample{PID: pid, CPU: cpu, RSSBytes: rss}, nil
}

// ReadProcs samples every pid.
func ReadProcs(pids []int) ([]ProcSample, error) {
	out := make([]ProcSample, 0, len(pids))
	for _, pid := range pids {
		s, err := ReadProc(pid)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// parseStatCPU returns utime+stime (fields 14 and 15 of /proc/<pid>/stat)
// converted from clock ticks. The command name (field 2) is in parentheses
// and may itself contain spaces and parentheses, so fields are counted from
// the last ')'.
func parseStatCPU(stat []byte, ticksPerSecond int64) (time.Duration, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	// After ')' come field 3 (state) onwards; utime is field 14, i.e. the
	// 12th field after the name.
	fields := strings.Fields(string(stat[end+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(fields))
	}
	utime, err := strconv.ParseInt(fields[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseInt(fields[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	if ticksPerSecond <= 0 {
		return 0, fmt.Errorf("clock ticks per second is %d", ticksPerSecond)
	}
	ticks := utime + stime
	return time.Duration(ticks) * time.Second / time.Duration(ticksPerSecond), nil
}

// parseStatusRSS returns VmRSS from /proc/<pid>/status in bytes.
func parseStatusRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS line %q: want <n> kB", sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return kb * 1024, nil
	}
	return 0, errors.New("no VmRSS line (a kernel thread or a zombie?)")
}

// atClkTck is AT_CLKTCK, the auxiliary vector entry with the kernel's
// USER_HZ (the unit of utime and stime in /proc/<pid>/stat).
const atClkTck = 17

// clockTicks returns USER_HZ from /proc/self/auxv, or 100, its value on
// every mainstream Linux architecture, if auxv cannot be read.
func clockTicks() int64 {
	auxv, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	if t := parseAuxvClkTck(auxv); t > 0 {
		return t
	}
	return 100
}

// parseAuxvClkTck finds AT_CLKTCK in a 64-bit little-endian auxiliary
// vector (pairs of uint64 type and value); 0 if it is absent.
func parseAuxvClkTck(auxv []byte) int64 {
	for i := 0; i+16 <= len(auxv); i += 16 {
		typ := binary.LittleEndian.Uint64(auxv[i:])
		val := binary.LittleEndian.Uint64(auxv[i+8:])
		if typ == atClkTck {
			return int64(val)
		}
		if typ == 0 { // AT_NULL ends the vector
			break
		}
	}
	return 0
}

// machineTimes is the first line of /proc/stat: clock ticks all CPUs spent
// busy (user, nice, system, irq, softirq, steal) and in total.
type machineTimes struct {
	busy, total int64
}

// readMachine reads /proc/stat.
func readMachine() (machineTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineTimes{}, fmt.Errorf("read machine cpu: %w", err)
	}
	return parseMachineStat(b)
}

// parseMachineStat parses the aggregate "cpu" line of /proc/stat.
func parseMachineStat(b []byte) (machineTimes, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return machineTimes{}, fmt.Errorf("/proc/stat starts with %q, want the cpu line", line)
	}
	var t machineTimes
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return machineTimes{}, fmt.Errorf("/proc/stat cpu field %d: %w", i+1, err)
		}
		t.total += n
		if i != 3 && i != 4 { // idle, iowait
			t.busy += n
		}
	}
	return t, nil
}
