package main

import (
	"context"
	"fmt"
)

// version is stamped in at build time (deploy/Dockerfile passes
// -ldflags "-X main.version=..."); "dev" means an unstamped build.
var version = "dev"

func runVersion(_ context.Context, args []string, e *env) int {
	fs := newFlagSet("version", "roomcast version", "Print the version this binary was built as.")
	if code, ok := fs.parse(args, e); !ok {
		return code
	}
	if fs.NArg() != 0 {
		return fs.usageError(e, "version takes no arguments")
	}
	fmt.Fprintln(e.stdout, version)
	return exitOK
}
