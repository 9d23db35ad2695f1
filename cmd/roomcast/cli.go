package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed (connection refused, closed, error reply)
	exitUsage = 2 // the command line is wrong
)

// env is what a command may touch of the outside world, so tests can run
// commands in-process.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	now    func() time.Time
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, e *env) int
}

var commands = []command{
	{name: "run", summary: "run the platform in one process for local development", run: runRun},
	{name: "token", summary: "mint a client token (JWT) with an API key", run: runToken},
	{name: "sub", summary: "join rooms and print every message as a JSON line", run: runSub},
	{name: "pub", summary: "publish one message to a room", run: runPub},
	{name: "apps", summary: "create or list apps on the auth service", run: runApps},
	{name: "keys", summary: "create, list, rotate or revoke API keys on the auth service", run: runKeys},
	{name: "users", summary: "set an app's end-user policy; list, show, block or unblock its users", run: runUsers},
	{name: "webhooks", summary: "create, list, delete webhook endpoints or replay their dead deliveries", run: runWebhooks},
	{name: "stats", summary: "print an app's or a room's usage from the metrics service", run: runStats},
	{name: "bench", summary: "load-test gateways: connections, fan-out, latency, CPU per delivery", run: runBench},
	{name: "version", summary: "print the version", run: runVersion},
}

// run executes the command line args (without the program name) and
// returns the process exit code.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		topUsage(e.stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		topUsage(e.stdout)
		return exitOK
	case "help":
		if len(args) == 1 {
			topUsage(e.stdout)
			return exitOK
		}
		// "roomcast help sub" is "roomcast sub --help".
		name, args = args[1], []string{args[1], "--help"}
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, args[1:], e)
		}
	}
	fmt.Fprintf(e.stderr, "roomcast: unknown command %q\n\n", name)
	topUsage(e.stderr)
	return exitUsage
}

func topUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString("Usage: roomcast <command> [flags] [args]\n\n")
	b.WriteString("Roomcast command-line tool.\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'roomcast <command> --help' for a command's flags and environment variables.\n")
	b.WriteString("Every flag is written -flag or --flag; a flag given on the command line beats its\nenvironment variable.\n")
	_, _ = io.WriteString(w, b.String())
}

// flagSet is a flag.FlagSet whose flags may default from environment
// variables. Environment values are applied after parsing and never appear
// in --help output (they may be secrets).
type flagSet struct {
	*flag.FlagSet
	name    string
	envVars map[string]string // flag name → environment variable
	fromEnv map[string]bool   // flags whose value came from the environment
	out     bytes.Buffer      // usage and parse errors, routed after Parse
}

// newFlagSet creates the flags of subcommand name; synopsis and about head
// its usage text.
func newFlagSet(name, synopsis, about string) *flagSet {
	fs := &flagSet{
		FlagSet: flag.NewFlagSet("roomcast "+name, flag.ContinueOnError),
		name:    name,
		envVars: make(map[string]string),
		fromEnv: make(map[string]bool),
	}
	fs.SetOutput(&fs.out)
	fs.Usage = func() {
		fmt.Fprintf(&fs.out, "Usage: %s\n\n%s\n\nFlags:\n", synopsis, about)
		fs.PrintDefaults()
	}
	return fs
}

// env binds flag name to an environment variable.
func (fs *flagSet) env(name, envVar string) {
	fs.envVars[name] = envVar
}

// parse parses args, then fills unset flags from their environment
// variables. ok is false when the command must return code: 0 after
// --help, exitUsage after a flag error (usage written to stderr).
func (fs *flagSet) parse(args []string, e *env) (code int, ok bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = e.stdout.Write(fs.out.Bytes())
		return exitOK, false
	case err != nil:
		_, _ = e.stderr.Write(fs.out.Bytes())
		return exitUsage, false
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, envVar := range fs.envVars {
		v := e.getenv(envVar)
		if set[name] || v == "" {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return fs.usageError(e, "%s: invalid value for --%s: %v", envVar, name, err), false
		}
		fs.fromEnv[name] = true
	}
	return 0, true
}

// usageError reports a command-line mistake with the usage text and
// returns exitUsage.
func (fs *flagSet) usageError(e *env, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "roomcast %s: %s\n\n", fs.name, fmt.Sprintf(format, args...))
	fs.out.Reset()
	fs.Usage()
	_, _ = e.stderr.Write(fs.out.Bytes())
	return exitUsage
}

// explicit reports whether flag name was given on the command line.
func (fs *flagSet) explicit(name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found && !fs.fromEnv[name]
}

// fail reports a runtime failure of command name and returns exitError.
func fail(e *env, name string, err error) int {
	fmt.Fprintf(e.stderr, "roomcast %s: %s\n", name, strings.TrimPrefix(err.Error(), "roomcast: "))
	return exitError
}
