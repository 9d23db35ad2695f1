package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/services/auth/authtest"
	"github.com/roomcast/roomcast/tests/harness"
)

// TestRoomcastRunWithCLI is the README's quick start as a test: `roomcast
// run` starts the platform and prints a dev key, `roomcast sub` and
// `roomcast pub` use it end to end, and SIGINT stops everything within 10 s.
func TestRoomcastRunWithCLI(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	bin := harness.Binary(t, "roomcast")
	keyFile := filepath.Join(t.TempDir(), "dev-key")
	run := harness.Start(t, bin, []string{
		"ROOMCAST_AMQP_URL=" + env.AMQPURL,
		"ROOMCAST_REDIS_URL=" + testenv.RedisURL(),
		"ROOMCAST_REDIS_PREFIX=" + env.RedisPrefix,
		"ROOMCAST_KEYS=",
		"ROOMCAST_DEV_KEY_FILE=" + keyFile,
		"ROOMCAST_LOG_FORMAT=json",
		"GATEWAY_ADDR=127.0.0.1:0",
		"AUTH_ADDR=127.0.0.1:0",
		"AUTH_DATABASE_URL=" + authtest.Database(t),
		"HISTORY_DATABASE_URL=" + testenv.Postgres(t),
		"WEBHOOKS_DATABASE_URL=" + testenv.Postgres(t),
		"WEBHOOKS_ADDR=127.0.0.1:0",
		"METRICS_DATABASE_URL=" + testenv.Postgres(t),
		"METRICS_ADDR=127.0.0.1:0",
	}, "run")

	var key, url string
	testenv.WaitFor(t, 10*time.Second, "banner with the dev key", func() bool {
		logs := run.Logs()
		k := regexp.MustCompile(`Dev key:\s+(\S+)`).FindStringSubmatch(logs)
		u := regexp.MustCompile(`WebSocket:\s+(\S+)`).FindStringSubmatch(logs)
		if k == nil || u == nil {
			return false
		}
		key, url = k[1], u[1]
		return true
	})
	// The dev key is an ordinary key of app "dev" in the auth service,
	// which the banner names with its admin credential.
	am := regexp.MustCompile(`Auth:\s+(\S+)\s+\(admin credential: (\S+)\)`).FindStringSubmatch(run.Logs())
	if am == nil {
		t.Fatalf("banner has no auth service line:\n%s", run.Logs())
	}
	devKey, err := token.ParseAPIKey(key)
	if err != nil || devKey.App != "dev" {
		t.Fatalf("dev key %q: %v", key, err)
	}
	listed, err := exec.Command(bin, "keys", "list", "--app", "dev", "--auth-url", am[1], "--admin-token", am[2]).CombinedOutput()
	if err != nil || !strings.Contains(string(listed), devKey.ID) {
		t.Fatalf("roomcast keys list: %v\n%s", err, listed)
	}
	stored, err := os.ReadFile(keyFile)
	if err != nil || strings.TrimSpace(string(stored)) != key {
		t.Fatalf("dev key file holds %q (%v), banner printed %q", stored, err, key)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	subOut := &harness.SyncBuffer{}
	sub := exec.CommandContext(ctx, bin, "sub", "--url", url, "--key", key, "--client", "reader", "cli.room")
	sub.Stdout = subOut
	subErr := &harness.SyncBuffer{}
	sub.Stderr = subErr
	sub.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Process.Kill(); _ = sub.Wait() })

	// sub prints nothing until a message arrives, so publish until it does.
	var pubOut []byte
	testenv.WaitFor(t, 20*time.Second, "sub prints the published message", func() bool {
		if subOut.String() != "" {
			return true
		}
		out, err := exec.CommandContext(ctx, bin, "pub", "--url", url, "--key", key, "--client", "writer", "--event", "greeting", "cli.room", `{"hello":"world"}`).CombinedOutput()
		if err != nil {
			t.Fatalf("roomcast pub: %v\n%s", err, out)
		}
		pubOut = out
		time.Sleep(100 * time.Millisecond)
		return subOut.String() != ""
	})
	var reply struct {
		Room   string `json:"room"`
		Offset uint64 `json:"offset"`
		Epoch  string `json:"epoch"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(pubOut), &reply); err != nil || reply.Room != "cli.room" || reply.Offset == 0 || reply.Epoch == "" {
		t.Fatalf("pub printed %q (%v)", pubOut, err)
	}
	line := strings.SplitN(subOut.String(), "\n", 2)[0]
	var msg struct {
		Room  string          `json:"room"`
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
		From  string          `json:"from"`
	}
	if err := json.Unmarshal([]byte(line), &msg); err != nil {
		t.Fatalf("sub line %q: %v", line, err)
	}
	if msg.Room != "cli.room" || msg.Event != "greeting" || string(msg.Data) != `{"hello":"world"}` || msg.From != "writer" {
		t.Fatalf("sub printed %s", line)
	}

	// A backend publishes over REST with the same dev key, on the same
	// port; the WebSocket subscriber gets it next, in offset order.
	base := "http://" + strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/v1/connect")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/messages",
		strings.NewReader(`{"room":"cli.room","event":"rest","data":{"from":"backend"}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	var restReply struct {
		Room   string `json:"room"`
		Offset uint64 `json:"offset"`
		Epoch  string `json:"epoch"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &restReply) != nil || restReply.Room != "cli.room" || restReply.Offset <= reply.Offset || restReply.Epoch != reply.Epoch {
		t.Fatalf("REST publish: %s %s (WebSocket publish had offset %d, epoch %s)", resp.Status, body, reply.Offset, reply.Epoch)
	}
	testenv.WaitFor(t, 10*time.Second, "sub prints the REST message", func() bool {
		return strings.Contains(subOut.String(), `"event":"rest"`)
	})
	for _, l := range strings.Split(strings.TrimSpace(subOut.String()), "\n") {
		var m struct {
			Event  string          `json:"event"`
			Offset uint64          `json:"offset"`
			Data   json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("sub line %q: %v", l, err)
		}
		if m.Event == "rest" && (m.Offset != restReply.Offset || string(m.Data) != `{"from":"backend"}`) {
			t.Fatalf("sub printed %s, REST reply was offset %d", l, restReply.Offset)
		}
	}

	// History runs in the same process: both messages read back at once,
	// in order (the read merges the recovery stream with the archive).
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/rooms/cli.room/messages", nil)
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Authorization", "Bearer "+key)
	hresp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	hbody, _ := io.ReadAll(hresp.Body)
	_ = hresp.Body.Close()
	var page struct {
		Messages []struct {
			Offset uint64 `json:"offset"`
			Event  string `json:"event"`
		} `json:"messages"`
	}
	if hresp.StatusCode != http.StatusOK || json.Unmarshal(hbody, &page) != nil || len(page.Messages) < 2 ||
		page.Messages[len(page.Messages)-1].Offset != restReply.Offset || page.Messages[len(page.Messages)-1].Event != "rest" {
		t.Fatalf("history read: %s %s (REST publish had offset %d)", hresp.Status, hbody, restReply.Offset)
	}

	// Webhooks runs in the same process, with the dev key.
	wm := regexp.MustCompile(`Webhooks:\s+(\S+)`).FindStringSubmatch(run.Logs())
	if wm == nil {
		t.Fatal("banner has no webhooks line")
	}
	wreq, err := http.NewRequestWithContext(ctx, http.MethodGet, wm[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	wreq.Header.Set("Authorization", "Bearer "+key)
	wresp, err := http.DefaultClient.Do(wreq)
	if err != nil {
		t.Fatal(err)
	}
	wbody, _ := io.ReadAll(wresp.Body)
	_ = wresp.Body.Close()
	if wresp.StatusCode != http.StatusOK {
		t.Fatalf("webhooks list with the dev key: %s %s", wresp.Status, wbody)
	}

	// Presence runs in the same process: a client that enters is seen by
	// a subscriber and counted.
	tok, err := token.Mint(devKey, "ada", presenceCaps(), time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ada, err := client.Dial(ctx, client.Config{URL: url, Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer ada.Close()
	seen := make(chan protocol.PresenceEvent, 1)
	ada.OnPresence("cli.room", func(e protocol.PresenceEvent) { seen <- e })
	if _, err := ada.Join(ctx, "cli.room"); err != nil {
		t.Fatal(err)
	}
	if _, err := ada.SubscribePresence(ctx, "cli.room"); err != nil {
		t.Fatal(err)
	}
	if err := ada.EnterPresence(ctx, "cli.room", []byte(`{"name":"Ada"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-seen:
		if e.Action != protocol.PresenceJoin || e.Member.ClientID != "ada" {
			t.Fatalf("presence event %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no presence event from roomcast run")
	}
	if n, err := ada.PresenceCount(ctx, "cli.room"); err != nil || n.Connections != 1 {
		t.Fatalf("presence count %+v, %v", n, err)
	}

	start := time.Now()
	if err := run.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code, err := run.Wait(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("roomcast run exited %d after SIGINT, want 0", code)
	}
	t.Logf("roomcast run stopped %s after SIGINT", time.Since(start).Round(time.Millisecond))
	// Its subscriber was told to reconnect elsewhere (4000) and keeps
	// trying; SIGINT ends it cleanly.
	testenv.WaitFor(t, 10*time.Second, "sub reports reconnecting after 4000", func() bool {
		return strings.Contains(subErr.String(), "reconnecting") && strings.Contains(subErr.String(), "4000")
	})
	if err := sub.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("sub after SIGINT: %v\nstderr: %s", err, subErr.String())
	}
}
