//go:build unix

package sysmon

import (
	"fmt"
	"os"
	"syscall"
)

// KeepAwake re-executes the running program, with the same arguments and
// the environment plus Setting, unless the environment already has it
// (see Env). Call it first thing in main, before any goroutine or file is
// opened: on success it does not return. It returns nil when no re-exec
// was needed, and an error when one failed (the program can go on, with
// the runtime's default).
func KeepAwake() error {
	env, changed := Env(os.Environ())
	if !changed {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("sysmon: find the executable: %w", err)
	}
	if err := syscall.Exec(exe, os.Args, env); err != nil {
		return fmt.Errorf("sysmon: re-execute %s: %w", exe, err)
	}
	return nil // not reached
}
