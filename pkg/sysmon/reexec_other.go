//go:build !unix

package sysmon

// KeepAwake does nothing where the program cannot re-execute itself.
func KeepAwake() error { return nil }
