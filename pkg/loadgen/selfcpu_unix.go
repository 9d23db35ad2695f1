//go:build unix

package loadgen

import (
	"syscall"
	"time"
)

// SelfCPU is this process's user+system CPU time from getrusage, with
// microsecond resolution (finer than /proc's clock ticks).
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
