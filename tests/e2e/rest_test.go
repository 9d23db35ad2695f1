package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/tests/harness"
)

type restResponse struct {
	Status int
	Body   map[string]any
	Raw    []byte
}

func post(t *testing.T, url, cred string, body any) restResponse {
	t.Helper()
	var reqBody []byte
	switch b := body.(type) {
	case string:
		reqBody = []byte(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		reqBody = js
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(reqBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := restResponse{Status: resp.StatusCode, Raw: raw}
	if err := json.Unmarshal(raw, &out.Body); err != nil {
		t.Fatalf("%s answered %d with a body that is not JSON: %q", url, resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s answered with Content-Type %q", url, ct)
	}
	checkAgainstSpec(t, http.MethodPost, url, req.Header, reqBody, resp.StatusCode, resp.Header, raw)
	return out
}

func errCode(r restResponse) string {
	e, _ := r.Body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// TestRESTPublish: a backend publishes over HTTP with its API key or with a
// token; members receive the messages; every refusal has its status and
// code.
func TestRESTPublish(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw := env.Gateway(t, "gw-rest", "GATEWAY_MAX_MESSAGE_BYTES=1024", "GATEWAY_REST_MAX_BODY_BYTES=200000")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	caps := token.Capabilities{"*": {token.OpJoin}}
	sub, err := client.Dial(ctx, client.Config{URL: gw.WSURL(), Token: env.Token(t, "member", caps, time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	rec := &recorder{}
	sub.OnAnyMessage(rec.add)
	if _, err := sub.Join(ctx, "news/ünï"); err != nil {
		t.Fatal(err)
	}
	url := gw.HTTPURL() + "/v1/messages"
	key := env.Key.String()

	r := post(t, url, key, map[string]any{"room": "news/ünï", "event": "headline", "data": map[string]any{"title": "hello"}})
	if r.Status != 200 || r.Body["room"] != "news/ünï" || r.Body["offset"] != float64(1) || r.Body["epoch"] == "" {
		t.Fatalf("publish with the API key: %d %s", r.Status, r.Raw)
	}
	pubTok := env.Token(t, "backend", token.Capabilities{"news/*": {token.OpPublish}}, time.Hour)
	if r := post(t, url, pubTok, map[string]any{"room": "news/ünï", "data": 2}); r.Status != 200 || r.Body["offset"] != float64(2) {
		t.Fatalf("publish with a token: %d %s", r.Status, r.Raw)
	}
	testenv.WaitFor(t, 10*time.Second, "both messages delivered", func() bool { return rec.len() == 2 })
	msgs := rec.snapshot()
	if string(msgs[0].Data) != `{"title":"hello"}` || msgs[0].Event != "headline" || msgs[0].From != "" || msgs[1].From != "backend" {
		t.Fatalf("delivered %+v", msgs)
	}

	wrongSecret := token.Key{App: env.Key.App, ID: env.Key.ID, Secret: []byte("not-the-right-secret")}
	cases := []struct {
		name   string
		cred   string
		body   any
		status int
		code   protocol.Code
	}{
		{"no credential", "", map[string]any{"room": "r", "data": 1}, 401, protocol.CodeUnauthorized},
		{"malformed key", "app1.k1:", map[string]any{"room": "r", "data": 1}, 401, protocol.CodeUnauthorized},
		{"wrong secret", wrongSecret.String(), map[string]any{"room": "r", "data": 1}, 401, protocol.CodeUnauthorized},
		{"unknown key id", "app1.nokey:" + string(env.Key.Secret), map[string]any{"room": "r", "data": 1}, 401, protocol.CodeUnauthorized},
		{"garbage token", "a.b.c", map[string]any{"room": "r", "data": 1}, 401, protocol.CodeUnauthorized},
		{"token without publish here", pubTok, map[string]any{"room": "sports", "data": 1}, 403, protocol.CodeForbidden},
		{"invalid JSON", key, `{"room":`, 400, protocol.CodeBadRequest},
		{"unknown field", key, map[string]any{"room": "r", "data": 1, "rom": "x"}, 400, protocol.CodeBadRequest},
		{"no data", key, map[string]any{"room": "r"}, 400, protocol.CodeBadRequest},
		{"empty room", key, map[string]any{"room": "", "data": 1}, 400, protocol.CodeInvalidRoom},
		{"data over the cap", key, map[string]any{"room": "r", "data": strings.Repeat("x", 2000)}, 413, protocol.CodeMessageTooLarge},
		{"body over the cap", key, map[string]any{"room": "r", "data": strings.Repeat("x", 300000)}, 413, protocol.CodeMessageTooLarge},
		{"transient with a key", key, map[string]any{"room": "r", "data": 1, "transient": true, "idempotency_key": "k"}, 400, protocol.CodeBadRequest},
	}
	for _, c := range cases {
		r := post(t, url, c.cred, c.body)
		if r.Status != c.status || errCode(r) != string(c.code) {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.Status, r.Raw, c.status, c.code)
		}
	}
	batchURL := gw.HTTPURL() + "/v1/messages/batch"
	if r := post(t, batchURL, key, map[string]any{"messages": []any{}}); r.Status != 400 {
		t.Errorf("empty batch: %d %s", r.Status, r.Raw)
	}
	if r := post(t, batchURL, key, map[string]any{"messages": make([]map[string]any, 101)}); r.Status != 400 {
		t.Errorf("batch of 101: %d %s", r.Status, r.Raw)
	}
	// Logs never show the key's secret or a token.
	if logs := gw.Logs(); strings.Contains(logs, string(env.Key.Secret)) || strings.Contains(logs, pubTok) {
		t.Error("a secret or token reached the gateway log")
	}
}

// TestRESTBatchExactlyOnce: a batch of 100 messages to 100 rooms reaches
// every member exactly once; repeating it with the same idempotency keys
// delivers nothing new.
func TestRESTBatchExactlyOnce(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw0, gw1 := env.Gateway(t, "gw-batch-0"), env.Gateway(t, "gw-batch-1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	caps := token.Capabilities{"*": {token.OpJoin}}
	const rooms = 100
	var recs []*recorder
	for i, gw := range []*harness.Process{gw0, gw1} { // a member of every room on each node
		c, err := client.Dial(ctx, client.Config{URL: gw.WSURL(), Token: env.Token(t, fmt.Sprintf("m%d", i), caps, time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rec := &recorder{}
		c.OnAnyMessage(rec.add)
		for r := 0; r < rooms; r++ {
			if _, err := c.Join(ctx, fmt.Sprintf("room-%03d", r)); err != nil {
				t.Fatal(err)
			}
		}
		recs = append(recs, rec)
	}
	batch := func(tag string) []map[string]any {
		var msgs []map[string]any
		for r := 0; r < rooms; r++ {
			msgs = append(msgs, map[string]any{"room": fmt.Sprintf("room-%03d", r), "data": map[string]any{"tag": tag, "n": r}, "idempotency_key": fmt.Sprintf("%s-%d", tag, r)})
		}
		return msgs
	}
	url := gw0.HTTPURL() + "/v1/messages/batch"
	r := post(t, url, env.Key.String(), map[string]any{"messages": batch("first")})
	results, _ := r.Body["results"].([]any)
	if r.Status != 200 || len(results) != rooms {
		t.Fatalf("batch: %d %s", r.Status, r.Raw)
	}
	for i, res := range results {
		m := res.(map[string]any)
		if m["error"] != nil || m["offset"] != float64(1) || m["room"] != fmt.Sprintf("room-%03d", i) {
			t.Fatalf("result %d: %v", i, m)
		}
	}
	// The same batch again: the same results, nothing delivered twice.
	again := post(t, url, env.Key.String(), map[string]any{"messages": batch("first")})
	if again.Status != 200 || !bytes.Equal(again.Raw, r.Raw) {
		t.Fatalf("repeated batch answered differently:\n%s\n%s", again.Raw, r.Raw)
	}
	// A marker behind the repeat in every room: once it arrives, anything
	// the repeat could have delivered would have arrived before it.
	if m := post(t, url, env.Key.String(), map[string]any{"messages": batch("marker")}); m.Status != 200 {
		t.Fatalf("marker batch: %d %s", m.Status, m.Raw)
	}
	for i, rec := range recs {
		testenv.WaitFor(t, 15*time.Second, fmt.Sprintf("member %d has both batches", i), func() bool { return rec.len() >= 2*rooms })
		perRoom := map[string][]uint64{}
		for _, m := range rec.snapshot() {
			perRoom[m.Room] = append(perRoom[m.Room], m.Offset)
		}
		for room, offs := range perRoom {
			if len(offs) != 2 || offs[0] != 1 || offs[1] != 2 {
				t.Fatalf("member %d, %s: offsets %v, want [1 2] (first batch once, then the marker)", i, room, offs)
			}
		}
		if len(perRoom) != rooms {
			t.Fatalf("member %d heard from %d rooms, want %d", i, len(perRoom), rooms)
		}
	}
}
