package main

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/testenv"
)

// drainingGateway is a fake gateway whose first connection is told to move
// on (4000 server_shutdown) right after its first join.
func drainingGateway(t *testing.T) *fakeGateway {
	g := newFakeGateway(t)
	var joins atomic.Int32
	g.afterJoin = func(fc *fakeConn, room string) {
		if joins.Add(1) == 1 {
			fc.send(protocol.ServerFrame{Message: &protocol.Message{Room: room, Offset: 11, Epoch: "e1", Data: []byte(`1`)}})
			fc.close(protocol.CloseServerShutdown, "draining")
		}
	}
	return g
}

func TestSubReconnectsAndReportsIt(t *testing.T) {
	g := drainingGateway(t)
	stdout, stderr := newLineBuffer(), &syncBuffer{}
	e := &env{stdout: stdout, stderr: stderr, getenv: func(string) string { return "" }, now: func() time.Time { return testNow }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	codec := runAsync(ctx, []string{"sub", "--url", g.URL(), "--key", testAPIKey, "lobby"}, e)

	if got := recv(t, stdout.lines, "the message line"); !strings.Contains(got, `"offset":11`) {
		t.Fatalf("line = %s", got)
	}
	recv(t, g.claims, "the first connection")
	recv(t, g.claims, "the second connection")
	// The re-join asks for what came after the last message printed.
	for {
		cmd := recv(t, g.cmds, "the re-join")
		if cmd.Op != protocol.OpJoin {
			continue
		}
		if cmd.Since == nil {
			continue // the first join
		}
		if *cmd.Since != (protocol.Position{Offset: 11, Epoch: "e1"}) {
			t.Fatalf("re-join since %+v, want e1:11", cmd.Since)
		}
		break
	}
	testenv.WaitFor(t, waitLimit, "the resume reported on stderr", func() bool {
		return strings.Contains(stderr.String(), "resumed recovered=false")
	})
	out := stderr.String()
	for _, want := range []string{
		"roomcast sub: reconnecting (attempt 1 in ",
		"4000 server_shutdown: draining",
		`roomcast sub: room "lobby" not recovered: messages may be missing`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr = %q, want %q", out, want)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "roomcast sub: ") {
			t.Errorf("stderr line %q is not one report per line", line)
		}
	}
	cancel() // SIGINT
	if code := recv(t, codec, "sub to exit"); code != exitOK {
		t.Fatalf("exit code = %d, want 0; stderr: %s", code, stderr)
	}
}

func TestSubNoReconnectExitsOnClose(t *testing.T) {
	g := drainingGateway(t)
	stdout, stderr := newLineBuffer(), &syncBuffer{}
	e := &env{stdout: stdout, stderr: stderr, getenv: func(string) string { return "" }, now: func() time.Time { return testNow }}
	codec := runAsync(context.Background(), []string{"sub", "--no-reconnect", "--url", g.URL(), "--key", testAPIKey, "lobby"}, e)
	if code := recv(t, codec, "sub to exit"); code != exitError {
		t.Fatalf("exit code = %d, want %d; stderr: %s", code, exitError, stderr)
	}
	if !strings.Contains(stderr.String(), "4000 server_shutdown") || strings.Contains(stderr.String(), "reconnecting") {
		t.Errorf("stderr = %q, want the close code reported and no reconnect", stderr)
	}
	recv(t, g.claims, "the connection")
	select {
	case <-g.claims:
		t.Error("sub --no-reconnect connected again")
	default:
	}
}
