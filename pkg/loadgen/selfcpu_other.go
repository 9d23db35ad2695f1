//go:build !unix

package loadgen

import "time"

// SelfCPU is zero where getrusage does not exist: the report then shows no
// load generator CPU (the CLI still builds there for its other commands).
func SelfCPU() time.Duration { return 0 }
