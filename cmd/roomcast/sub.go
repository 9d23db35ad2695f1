package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
)

// lockedWriter serializes writes from the delivery goroutine (state
// changes) and the main one.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// messageLine is how sub prints one message: one JSON object per line.
type messageLine struct {
	Room   string          `json:"room"`
	Offset uint64          `json:"offset"`
	Epoch  string          `json:"epoch"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	// Encoding is "base64" when Data is a base64 string of a binary
	// payload, as in the protocol's JSON encoding.
	Encoding  string `json:"encoding,omitempty"`
	From      string `json:"from"`
	TS        int64  `json:"ts"`
	Transient bool   `json:"transient,omitempty"`
}

func runSub(ctx context.Context, args []string, e *env) int {
	fs := newFlagSet("sub",
		"roomcast sub [--url URL] [--token T | --key K [--client ID]] room [room...]",
		"Connects to a gateway, joins each room and prints every delivered message on\n"+
			"stdout as one JSON line:\n"+
			`  {"room":..,"offset":..,"epoch":..,"event":..,"data":<json>,"from":..,"ts":..}`+"\n"+
			"(transient messages add \"transient\":true and have offset 0; binary payloads\n"+
			"print as a base64 string with \"encoding\":\"base64\"). Runs until\n"+
			"interrupted (SIGINT/SIGTERM: exit 0). A lost connection is resumed on any\n"+
			"node, without losing messages where the server still has them; each\n"+
			"reconnect and its outcome is reported on stderr. A close code that forbids\n"+
			"reconnecting (e.g. invalid token) ends it with exit 1 and the code on stderr.\n"+
			"With --key it mints its own token allowing join on exactly the given rooms.")
	cf := addConnFlags(fs, time.Hour)
	noReconnect := fs.Bool("no-reconnect", false, "exit (1) when the connection ends instead of reconnecting")
	if code, ok := fs.parse(args, e); !ok {
		return code
	}
	rooms := fs.Args()
	if len(rooms) == 0 {
		return fs.usageError(e, "at least one room is required")
	}
	cfg, code, ok := cf.config(fs, e, token.OpJoin, rooms)
	if !ok {
		return code
	}
	stderr := &lockedWriter{w: e.stderr}
	cfg.DisableReconnect = *noReconnect
	cfg.OnStateChange = func(sc client.StateChange) {
		switch sc.State {
		case client.StateReconnecting:
			fmt.Fprintf(stderr, "roomcast sub: reconnecting (attempt %d in %s): %v\n", sc.Attempt, sc.Delay.Round(time.Millisecond), sc.Err)
		case client.StateResumed:
			fmt.Fprintf(stderr, "roomcast sub: resumed recovered=%t\n", sc.Recovered)
			for _, r := range sc.Rooms {
				switch {
				case r.Err != nil:
					fmt.Fprintf(stderr, "roomcast sub: room %q not re-joined: %v\n", r.Room, r.Err)
				case r.EpochChanged:
					fmt.Fprintf(stderr, "roomcast sub: room %q not recovered (its epoch changed): messages may be missing\n", r.Room)
				case !r.Recovered:
					fmt.Fprintf(stderr, "roomcast sub: room %q not recovered: messages may be missing\n", r.Room)
				}
			}
		}
	}
	cfg.OnEpochChange = func(ec client.EpochChange) {
		fmt.Fprintf(stderr, "roomcast sub: room %q epoch changed from %q to %q: messages may be missing\n", ec.Room, ec.Old.Epoch, ec.New.Epoch)
	}

	c, err := cf.dial(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return exitOK // interrupted while connecting
		}
		return fail(e, "sub", err)
	}
	defer func() { _ = c.Close() }()

	var (
		outMu  sync.Mutex
		outErr error
	)
	enc := json.NewEncoder(e.stdout)
	enc.SetEscapeHTML(false)
	c.OnAnyMessage(func(m protocol.Message) {
		line := messageLine{
			Room: m.Room, Offset: m.Offset, Epoch: m.Epoch, Event: m.Event,
			Data: m.Data, From: m.From, TS: m.Timestamp, Transient: m.Transient,
		}
		if m.Binary {
			// Bytes are not a JSON value: print them as the JSON encoding
			// carries them.
			b, _ := json.Marshal(base64.StdEncoding.EncodeToString(m.Data))
			line.Data, line.Encoding = b, protocol.EncodingBase64
		}
		err := enc.Encode(line)
		if err != nil {
			outMu.Lock()
			outErr = err
			outMu.Unlock()
			_ = c.Close()
		}
	})
	for _, room := range rooms {
		rctx, cancel := context.WithTimeout(ctx, *cf.timeout)
		pos, err := c.Join(rctx, room)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return exitOK
			}
			return fail(e, "sub", fmt.Errorf("join %q: %w", room, err))
		}
		fmt.Fprintf(stderr, "roomcast sub: joined %q at offset %d (epoch %q)\n", room, pos.Offset, pos.Epoch)
	}

	select {
	case <-ctx.Done():
		_ = c.Close()
		<-c.Done()
		return exitOK
	case <-c.Done():
	}
	outMu.Lock()
	defer outMu.Unlock()
	if outErr != nil {
		return fail(e, "sub", fmt.Errorf("write stdout: %w", outErr))
	}
	return fail(e, "sub", c.Err())
}
