// Command roomcast is the Roomcast command-line tool: it mints client tokens
// for development and subscribes to and publishes into rooms.
//
// Run "roomcast --help" for the commands and "roomcast <command> --help" for
// their flags and environment variables.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
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
