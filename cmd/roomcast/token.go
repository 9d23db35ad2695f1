package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
)

var allOps = token.Ops

// capsFlag collects repeated --cap 'pattern=op,op' flags into Capabilities.
type capsFlag struct{ caps token.Capabilities }

func (f *capsFlag) String() string {
	if f == nil || len(f.caps) == 0 {
		return ""
	}
	patterns := make([]string, 0, len(f.caps))
	for p := range f.caps {
		patterns = append(patterns, p)
	}
	sort.Strings(patterns)
	parts := make([]string, 0, len(patterns))
	for _, p := range patterns {
		ops := make([]string, len(f.caps[p]))
		for i, op := range f.caps[p] {
			ops[i] = string(op)
		}
		parts = append(parts, p+"="+strings.Join(ops, ","))
	}
	return strings.Join(parts, " ")
}

// Set parses "pattern=op,op". The last '=' separates pattern from
// operations, so a pattern may itself contain '='.
func (f *capsFlag) Set(s string) error {
	i := strings.LastIndexByte(s, '=')
	if i <= 0 {
		return fmt.Errorf("want 'pattern=op[,op...]', e.g. 'chat:*=join,publish'")
	}
	pattern, list := s[:i], s[i+1:]
	if f.caps == nil {
		f.caps = make(token.Capabilities)
	}
	for _, name := range strings.Split(list, ",") {
		op := token.Op(strings.TrimSpace(name))
		if !op.Valid() {
			return fmt.Errorf("unknown operation %q (known: %s)", op, opNames())
		}
		if !slices.Contains(f.caps[pattern], op) {
			f.caps[pattern] = append(f.caps[pattern], op)
		}
	}
	return nil
}

func opNames() string {
	names := make([]string, len(allOps))
	for i, op := range allOps {
		names[i] = string(op)
	}
	return strings.Join(names, ", ")
}

// parseKey parses an API key flag after flag parsing: a flag.Value would
// have the flag package quote the rejected value, secret included, in its
// error message.
func parseKey(fs *flagSet, e *env, s string) (token.Key, int, bool) {
	if s == "" {
		return token.Key{}, fs.usageError(e, "--key (or ROOMCAST_KEY) is required"), false
	}
	k, err := token.ParseAPIKey(s)
	if err != nil {
		return token.Key{}, fs.usageError(e, "--key: %v", err), false
	}
	return k, 0, true
}

func runToken(_ context.Context, args []string, e *env) int {
	fs := newFlagSet("token",
		"roomcast token --key <app>.<keyId>:<secret> --client <id> --cap 'pattern=op[,op...]' [--cap ...] [--ttl 1h]",
		"Prints a client token (an HS256 JWT) signed with an API key, for development and\n"+
			"scripts. Room patterns use '*' as a wildcard (e.g. 'chat:*'); operations are\n"+
			opNames()+".")
	var caps capsFlag
	key := fs.String("key", "", "API key `<app>.<keyId>:<secret>` that signs the token (env ROOMCAST_KEY); required")
	fs.env("key", "ROOMCAST_KEY")
	client := fs.String("client", "", "client `id` the token is issued to (its \"sub\"; env ROOMCAST_CLIENT_ID); required")
	fs.env("client", "ROOMCAST_CLIENT_ID")
	fs.Var(&caps, "cap", "capability `'pattern=op,op'`; repeat for more patterns; at least one")
	ttl := fs.Duration("ttl", time.Hour, "token lifetime")
	if code, ok := fs.parse(args, e); !ok {
		return code
	}
	switch {
	case fs.NArg() > 0:
		return fs.usageError(e, "unexpected argument %q", fs.Arg(0))
	case *client == "":
		return fs.usageError(e, "--client (or ROOMCAST_CLIENT_ID) is required")
	case len(caps.caps) == 0:
		return fs.usageError(e, "at least one --cap is required")
	}
	k, code, ok := parseKey(fs, e, *key)
	if !ok {
		return code
	}
	tok, err := token.Mint(k, *client, caps.caps, *ttl, e.now())
	if err != nil {
		return fs.usageError(e, "%v", err)
	}
	fmt.Fprintln(e.stdout, tok)
	return exitOK
}
