// Command roomcast is the Roomcast command-line tool: it mints client tokens
// for development and subscribes to and publishes into rooms.
//
// Run "roomcast --help" for the commands and "roomcast <command> --help" for
// their flags and environment variables.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/roomcast/roomcast/pkg/sysmon"
)

func main() {
	// The load generator and the local platform are network servers and
	// clients under load: keep the runtime's monitor out of deep sleep
	// (package sysmon) — like the gateway, so a bench compares like with
	// like. Other commands are short and start once.
	if len(os.Args) > 1 && (os.Args[1] == "bench" || os.Args[1] == "run") {
		if err := sysmon.KeepAwake(); err != nil {
			fmt.Fprintf(os.Stderr, "roomcast: %v (going on without)\n", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &env{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
		now:    time.Now,
	})
	stop()
	os.Exit(code)
}
