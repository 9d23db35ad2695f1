package main

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
)

func TestTopLevelUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdoutHas  string
		stderrHas  string
		stdoutNone bool
	}{
		{
			name:      "help flag",
			args:      []string{"--help"},
			code:      exitOK,
			stdoutHas: "Commands:",
		},
		{
			name:      "help command",
			args:      []string{"help"},
			code:      exitOK,
			stdoutHas: "roomcast <command> --help",
		},
		{
			name:      "help for a command",
			args:      []string{"help", "pub"},
			code:      exitOK,
			stdoutHas: "--idempotency-key",
		},
		{
			name:       "no arguments",
			args:       nil,
			code:       exitUsage,
			stderrHas:  "Commands:",
			stdoutNone: true,
		},
		{
			name:       "unknown command",
			args:       []string{"frobnicate"},
			code:       exitUsage,
			stderrHas:  `unknown command "frobnicate"`,
			stdoutNone: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, stdout, stderr := testEnv("", nil)
			if code := run(context.Background(), tt.args, e); code != tt.code {
				t.Errorf("exit code = %d, want %d", code, tt.code)
			}
			if !strings.Contains(stdout.String(), tt.stdoutHas) {
				t.Errorf("stdout = %q, want it to contain %q", stdout, tt.stdoutHas)
			}
			if !strings.Contains(stderr.String(), tt.stderrHas) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.stderrHas)
			}
			if tt.stdoutNone && stdout.String() != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

// TestCommandHelpDocumentsFlags checks that each command's --help goes to
// stdout, exits 0, and names every flag and its environment variable.
func TestCommandHelpDocumentsFlags(t *testing.T) {
	conn := []string{"-url", "-token", "-key", "-client", "-ttl", "-timeout", "ROOMCAST_URL", "ROOMCAST_TOKEN", "ROOMCAST_KEY", "ROOMCAST_CLIENT_ID"}
	tests := map[string][]string{
		"token": {"-key", "-client", "-cap", "-ttl", "ROOMCAST_KEY", "ROOMCAST_CLIENT_ID"},
		"sub":   conn,
		"pub":   append(slices.Clone(conn), "-event", "-transient", "-idempotency-key"),
	}
	for cmd, want := range tests {
		t.Run(cmd, func(t *testing.T) {
			// Environment values must not leak into the help text.
			e, stdout, stderr := testEnv("", map[string]string{"ROOMCAST_KEY": testAPIKey, "ROOMCAST_URL": "ws://secret-host/"})
			if code := run(context.Background(), []string{cmd, "--help"}, e); code != exitOK {
				t.Fatalf("exit code = %d, want 0; stderr: %s", code, stderr)
			}
			for _, w := range want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("help does not mention %s:\n%s", w, stdout)
				}
			}
			if strings.Contains(stdout.String(), "s3cr3t") || strings.Contains(stdout.String(), "secret-host") {
				t.Errorf("help shows environment values:\n%s", stdout)
			}
		})
	}
}

func TestTokenMintsVerifiableToken(t *testing.T) {
	e, stdout, stderr := testEnv("", nil)
	code := run(context.Background(), []string{"token", "--key", testAPIKey, "--client", "alice",
		"--cap", "chat:*=join,publish", "--cap", "presence:lobby=presence", "--cap", "chat:*=history", "--ttl", "30m"}, e)
	if code != exitOK {
		t.Fatalf("exit code = %d; stderr: %s", code, stderr)
	}
	tok := strings.TrimSuffix(stdout.String(), "\n")
	if strings.Contains(tok, "\n") || tok == "" {
		t.Fatalf("stdout = %q, want one token line", stdout)
	}
	v := &token.Verifier{Keys: token.NewStaticKeyring(testKey(t)), Now: func() time.Time { return testNow }}
	claims, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if claims.ClientID() != "alice" || claims.App != "app1" {
		t.Errorf("claims sub=%q app=%q, want alice, app1", claims.ClientID(), claims.App)
	}
	wantCaps := token.Capabilities{
		"chat:*":         {token.OpJoin, token.OpPublish, token.OpHistory},
		"presence:lobby": {token.OpPresence},
	}
	if !reflect.DeepEqual(claims.Caps, wantCaps) {
		t.Errorf("caps = %v, want %v", claims.Caps, wantCaps)
	}
	if got := claims.ExpiresAt.Sub(testNow); got != 30*time.Minute {
		t.Errorf("ttl = %v, want 30m", got)
	}
	// Past its lifetime the token is expired.
	late := &token.Verifier{Keys: v.Keys, Now: func() time.Time { return testNow.Add(time.Hour) }}
	if _, err := late.Verify(tok); err == nil {
		t.Error("token still valid an hour later")
	}
}

func TestTokenFromEnvironment(t *testing.T) {
	e, stdout, stderr := testEnv("", map[string]string{"ROOMCAST_KEY": testAPIKey, "ROOMCAST_CLIENT_ID": "bob"})
	if code := run(context.Background(), []string{"token", "--cap", "r=join"}, e); code != exitOK {
		t.Fatalf("exit code = %d; stderr: %s", code, stderr)
	}
	v := &token.Verifier{Keys: token.NewStaticKeyring(testKey(t)), Now: func() time.Time { return testNow }}
	claims, err := v.Verify(strings.TrimSpace(stdout.String()))
	if err != nil || claims.ClientID() != "bob" {
		t.Fatalf("Verify: %v, %+v; want a token for bob", err, claims)
	}
}

func TestTokenUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "unknown flag",
			args: []string{"token", "--nope"},
			want: "flag provided but not defined",
		},
		{
			name: "missing key",
			args: []string{"token", "--client", "a", "--cap", "r=join"},
			want: "--key (or ROOMCAST_KEY) is required",
		},
		{
			name: "malformed key",
			args: []string{"token", "--key", "app1.k1-s3cr3t-s3cr3t-s3cr3t-0123", "--client", "a", "--cap", "r=join"},
			want: "--key: api key",
		},
		{
			name: "missing client",
			args: []string{"token", "--key", testAPIKey, "--cap", "r=join"},
			want: "--client (or ROOMCAST_CLIENT_ID) is required",
		},
		{
			name: "no capability",
			args: []string{"token", "--key", testAPIKey, "--client", "a"},
			want: "at least one --cap",
		},
		{
			name: "unknown operation",
			args: []string{"token", "--key", testAPIKey, "--client", "a", "--cap", "r=join,fly"},
			want: `unknown operation "fly"`,
		},
		{
			name: "capability without operations",
			args: []string{"token", "--key", testAPIKey, "--client", "a", "--cap", "r"},
			want: "want 'pattern=op",
		},
		{
			name: "ttl under a second",
			args: []string{"token", "--key", testAPIKey, "--client", "a", "--cap", "r=join", "--ttl", "10ms"},
			want: "shorter than a second",
		},
		{
			name: "stray argument",
			args: []string{"token", "--key", testAPIKey, "--client", "a", "--cap", "r=join", "extra"},
			want: `unexpected argument "extra"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, stdout, stderr := testEnv("", nil)
			if code := run(context.Background(), tt.args, e); code != exitUsage {
				t.Errorf("exit code = %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.want)
			}
			if !strings.Contains(stderr.String(), "Usage: roomcast token") {
				t.Errorf("stderr has no usage:\n%s", stderr)
			}
			if strings.Contains(stderr.String(), "s3cr3t") {
				t.Errorf("stderr shows the key's secret:\n%s", stderr)
			}
			if stdout.String() != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestSubPrintsMessagesAndExitsOnSignal(t *testing.T) {
	g := newFakeGateway(t)
	g.afterJoin = func(fc *fakeConn, room string) {
		fc.send(protocol.ServerFrame{Message: &protocol.Message{Room: room, Offset: 11, Epoch: "e1", Event: "chat", Data: []byte(`{"text":"hi <b>"}`), From: "bob", Timestamp: 1700000000123}})
		fc.send(protocol.ServerFrame{Message: &protocol.Message{Room: room, Event: "cursor", Data: []byte(`[1,2]`), From: "carol", Timestamp: 1700000000456, Transient: true}})
		fc.send(protocol.ServerFrame{Message: &protocol.Message{Room: room, Offset: 12, Epoch: "e1", Event: "state", Data: []byte{0, 0xff, 0xc3, 0x28}, Binary: true, From: "dan", Timestamp: 1700000000789}})
	}
	stdout, stderr := newLineBuffer(), &syncBuffer{}
	e := &env{stdout: stdout, stderr: stderr, getenv: func(string) string { return "" }, now: func() time.Time { return testNow }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	codec := runAsync(ctx, []string{"sub", "--url", g.URL(), "--key", testAPIKey, "--client", "watcher", "lobby", "news"}, e)

	claims := recv(t, g.claims, "the connection")
	wantCaps := token.Capabilities{"lobby": {token.OpJoin}, "news": {token.OpJoin}}
	if claims.ClientID() != "watcher" || !reflect.DeepEqual(claims.Caps, wantCaps) {
		t.Errorf("minted token: sub=%q caps=%v, want watcher with %v", claims.ClientID(), claims.Caps, wantCaps)
	}
	want := []string{
		`{"room":"lobby","offset":11,"epoch":"e1","event":"chat","data":{"text":"hi <b>"},"from":"bob","ts":1700000000123}`,
		`{"room":"lobby","offset":0,"epoch":"","event":"cursor","data":[1,2],"from":"carol","ts":1700000000456,"transient":true}`,
		`{"room":"lobby","offset":12,"epoch":"e1","event":"state","data":"AP/DKA==","encoding":"base64","from":"dan","ts":1700000000789}`,
		`{"room":"news","offset":11,"epoch":"e1","event":"chat","data":{"text":"hi <b>"},"from":"bob","ts":1700000000123}`,
		`{"room":"news","offset":0,"epoch":"","event":"cursor","data":[1,2],"from":"carol","ts":1700000000456,"transient":true}`,
		`{"room":"news","offset":12,"epoch":"e1","event":"state","data":"AP/DKA==","encoding":"base64","from":"dan","ts":1700000000789}`,
	}
	for i, w := range want {
		if got := recv(t, stdout.lines, "a message line"); got != w {
			t.Errorf("line %d = %s\nwant      %s", i, got, w)
		}
	}
	cancel() // what SIGINT/SIGTERM do through signal.NotifyContext
	if code := recv(t, codec, "sub to exit"); code != exitOK {
		t.Fatalf("exit code = %d, want 0; stderr: %s", code, stderr)
	}
}

func TestSubReportsServerClose(t *testing.T) {
	g := newFakeGateway(t)
	g.afterJoin = func(fc *fakeConn, room string) {
		fc.send(protocol.ServerFrame{Message: &protocol.Message{Room: room, Offset: 11, Epoch: "e1", Data: []byte(`1`)}})
		fc.close(protocol.CloseKicked, "removed by operator")
	}
	stdout, stderr := newLineBuffer(), &syncBuffer{}
	e := &env{stdout: stdout, stderr: stderr, getenv: func(string) string { return "" }, now: func() time.Time { return testNow }}
	codec := runAsync(context.Background(), []string{"sub", "--url", g.URL(), "--key", testAPIKey, "lobby"}, e)
	if code := recv(t, codec, "sub to exit"); code != exitError {
		t.Fatalf("exit code = %d, want %d", code, exitError)
	}
	// The message before the close is printed, then the close is reported.
	if got := recv(t, stdout.lines, "the message line"); !strings.Contains(got, `"offset":11`) {
		t.Errorf("line = %s", got)
	}
	if !strings.Contains(stderr.String(), "4005 kicked: removed by operator") {
		t.Errorf("stderr = %q, want the close code, its name and reason", stderr)
	}
}

func TestSubReportsRejectedToken(t *testing.T) {
	g := newFakeGateway(t)
	e, stdout, stderr := testEnv("", map[string]string{"ROOMCAST_URL": g.URL()})
	code := run(context.Background(), []string{"sub", "--token", "not.a.jwt", "lobby"}, e)
	if code != exitError {
		t.Fatalf("exit code = %d, want %d", code, exitError)
	}
	if !strings.Contains(stderr.String(), "4001 invalid_token") {
		t.Errorf("stderr = %q, want 4001 invalid_token", stderr)
	}
	if stdout.String() != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
}

func TestSubUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "no room",
			args: []string{"sub", "--token", "t"},
			want: "at least one room",
		},
		{
			name: "no credentials",
			args: []string{"sub", "lobby"},
			want: "--token or --key is required",
		},
		{
			name: "token and key",
			args: []string{"sub", "--token", "t", "--key", testAPIKey, "lobby"},
			want: "not both",
		},
		{
			name: "bad duration",
			args: []string{"sub", "--timeout", "soon", "lobby"},
			want: "invalid value",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, stderr := testEnv("", nil)
			if code := run(context.Background(), tt.args, e); code != exitUsage {
				t.Errorf("exit code = %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), tt.want) || !strings.Contains(stderr.String(), "Usage: roomcast sub") {
				t.Errorf("stderr = %q, want %q and the usage", stderr, tt.want)
			}
		})
	}
}

func TestCommandLineBeatsEnvironment(t *testing.T) {
	g := newFakeGateway(t)
	// ROOMCAST_TOKEN is stale; --key on the command line wins over it.
	e, stdout, stderr := testEnv("", map[string]string{"ROOMCAST_URL": g.URL(), "ROOMCAST_TOKEN": "stale.token.value"})
	code := run(context.Background(), []string{"pub", "--key", testAPIKey, "--client", "cli", "lobby", `1`}, e)
	if code != exitOK {
		t.Fatalf("exit code = %d; stderr: %s", code, stderr)
	}
	if claims := recv(t, g.claims, "the connection"); claims.ClientID() != "cli" {
		t.Errorf("connected as %q, want cli", claims.ClientID())
	}
	if !strings.Contains(stdout.String(), `"offset":42`) {
		t.Errorf("stdout = %q", stdout)
	}
}

func TestPubPublishesAndPrintsReply(t *testing.T) {
	g := newFakeGateway(t)
	e, stdout, stderr := testEnv("", nil)
	code := run(context.Background(), []string{"pub", "--url", g.URL(), "--key", testAPIKey, "--client", "bot",
		"--event", "chat", "--idempotency-key", "msg-1", "lobby", `{"text":"hello"}`}, e)
	if code != exitOK {
		t.Fatalf("exit code = %d; stderr: %s", code, stderr)
	}
	if got, want := stdout.String(), `{"room":"lobby","offset":42,"epoch":"e1"}`+"\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	claims := recv(t, g.claims, "the connection")
	if want := (token.Capabilities{"lobby": {token.OpPublish}}); !reflect.DeepEqual(claims.Caps, want) {
		t.Errorf("minted caps = %v, want %v", claims.Caps, want)
	}
	cmd := recv(t, g.cmds, "the publish")
	want := protocol.Command{ID: cmd.ID, Op: protocol.OpPublish, Room: "lobby", Event: "chat", Data: []byte(`{"text":"hello"}`), IdempotencyKey: "msg-1"}
	if !reflect.DeepEqual(cmd, want) {
		t.Errorf("command = %+v, want %+v", cmd, want)
	}
}

func TestPubTransientFromStdin(t *testing.T) {
	g := newFakeGateway(t)
	tok, err := token.Mint(testKey(t), "bot", token.Capabilities{"*": {token.OpPublish}}, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	e, stdout, stderr := testEnv("  [1, 2, 3]\n", map[string]string{"ROOMCAST_URL": g.URL(), "ROOMCAST_TOKEN": tok})
	if code := run(context.Background(), []string{"pub", "--transient", "cursors", "-"}, e); code != exitOK {
		t.Fatalf("exit code = %d; stderr: %s", code, stderr)
	}
	if got, want := stdout.String(), `{"room":"cursors","offset":0,"epoch":""}`+"\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	cmd := recv(t, g.cmds, "the publish")
	if !cmd.Transient || string(cmd.Data) != "[1,2,3]" {
		t.Errorf("command = %+v, want transient with the stdin data", cmd)
	}
}

func TestPubReportsErrorReply(t *testing.T) {
	g := newFakeGateway(t)
	e, stdout, stderr := testEnv("", nil)
	code := run(context.Background(), []string{"pub", "--url", g.URL(), "--key", testAPIKey, "forbidden", `1`}, e)
	if code != exitError {
		t.Fatalf("exit code = %d, want %d", code, exitError)
	}
	if !strings.Contains(stderr.String(), "forbidden: no publish capability") {
		t.Errorf("stderr = %q, want the error code and message", stderr)
	}
	if stdout.String() != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
}

func TestPubUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "missing data",
			args: []string{"pub", "--token", "t", "lobby"},
			want: "want exactly two arguments",
		},
		{
			name: "invalid json",
			args: []string{"pub", "--token", "t", "lobby", "hello"},
			want: "not one valid JSON value",
		},
		{
			name: "unknown flag",
			args: []string{"pub", "--evnt", "x", "lobby", "1"},
			want: "flag provided but not defined",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, stderr := testEnv("", nil)
			if code := run(context.Background(), tt.args, e); code != exitUsage {
				t.Errorf("exit code = %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), tt.want) || !strings.Contains(stderr.String(), "Usage: roomcast pub") {
				t.Errorf("stderr = %q, want %q and the usage", stderr, tt.want)
			}
		})
	}
}

// The JSON lines sub prints must parse back into the documented fields.
func TestMessageLineShape(t *testing.T) {
	line, err := json.Marshal(messageLine{Room: "r", Data: nil})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"room", "offset", "epoch", "event", "data", "from", "ts"} {
		if _, ok := m[k]; !ok {
			t.Errorf("line %s lacks %q", line, k)
		}
	}
}
