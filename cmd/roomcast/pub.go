package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/sdk/client"
)

// maxStdinData caps data read from stdin; the gateway's own limit is far
// lower, so this only guards against piping a huge file by mistake.
const maxStdinData = 64 << 20

// publishLine is how pub prints the reply.
type publishLine struct {
	Room   string `json:"room"`
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

func runPub(ctx context.Context, args []string, e *env) int {
	fs := newFlagSet("pub",
		"roomcast pub [--url URL] [--token T | --key K [--client ID]] [--event E] [--transient] [--idempotency-key K] room 'json-data'",
		"Publishes one message to a room and prints where it was stored as JSON:\n"+
			`  {"room":..,"offset":..,"epoch":..}`+"\n"+
			"(offset 0 and an empty epoch for --transient). The data is one JSON value;\n"+
			"'-' reads it from stdin. With --key it mints its own token allowing publish\n"+
			"on exactly this room.")
	cf := addConnFlags(fs, time.Minute)
	event := fs.String("event", "", "application-defined event `name` of the message")
	transient := fs.Bool("transient", false, "publish best effort: no offset, no recovery, no history")
	idemKey := fs.String("idempotency-key", "", "`key` that makes the publish safe to retry: a repeat is not delivered twice")
	if code, ok := fs.parse(args, e); !ok {
		return code
	}
	if fs.NArg() != 2 {
		return fs.usageError(e, "want exactly two arguments, room and data; got %d", fs.NArg())
	}
	room, data := fs.Arg(0), []byte(fs.Arg(1))
	if fs.Arg(1) == "-" {
		var err error
		data, err = io.ReadAll(io.LimitReader(e.stdin, maxStdinData+1))
		if err != nil {
			return fail(e, "pub", fmt.Errorf("read stdin: %w", err))
		}
		if len(data) > maxStdinData {
			return fs.usageError(e, "data on stdin is larger than %d bytes", maxStdinData)
		}
		data = bytes.TrimSpace(data)
	}
	if !json.Valid(data) {
		return fs.usageError(e, "data is not one valid JSON value (quote strings: '\"hello\"')")
	}
	cfg, code, ok := cf.config(fs, e, token.OpPublish, []string{room})
	if !ok {
		return code
	}

	c, err := cf.dial(ctx, cfg)
	if err != nil {
		return fail(e, "pub", err)
	}
	defer func() { _ = c.Close() }()

	var opts []client.PublishOption
	if *event != "" {
		opts = append(opts, client.WithEvent(*event))
	}
	if *transient {
		opts = append(opts, client.Transient())
	}
	if *idemKey != "" {
		opts = append(opts, client.WithIdempotencyKey(*idemKey))
	}
	rctx, cancel := context.WithTimeout(ctx, *cf.timeout)
	defer cancel()
	pos, err := c.Publish(rctx, room, data, opts...)
	if err != nil {
		return fail(e, "pub", fmt.Errorf("publish to %q: %w", room, err))
	}
	out, err := json.Marshal(publishLine{Room: room, Offset: pos.Offset, Epoch: pos.Epoch})
	if err != nil {
		return fail(e, "pub", err)
	}
	if _, err := fmt.Fprintf(e.stdout, "%s\n", out); err != nil {
		return fail(e, "pub", fmt.Errorf("write stdout: %w", err))
	}
	return exitOK
}
