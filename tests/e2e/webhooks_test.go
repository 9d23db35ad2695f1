package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/pkg/sdk/rest"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/pkg/webhooks"
	"github.com/roomcast/roomcast/services/auth/authtest"
	"github.com/roomcast/roomcast/tests/harness"
)

// receiver is a real HTTP endpoint (httptest, port 0) that verifies and
// records every webhook it gets; fail decides the status of each request.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	reqs   []received
	fail   func(n int) int // status for the n-th request (1-based); nil: 200
	bad    int             // requests that failed verification
}

type received struct {
	id     string
	body   []byte
	events []webhooks.Event
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := rest.VerifyWebhook(body, req.Header, []string{r.secret}, 0); err != nil {
			r.bad++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rec := received{id: req.Header.Get("webhook-id"), body: body}
		var b webhooks.Batch
		if json.Unmarshal(body, &b) == nil && b.Type == "batch" {
			rec.events = b.Events
		} else {
			var ev webhooks.Event
			_ = json.Unmarshal(body, &ev)
			rec.events = []webhooks.Event{ev}
		}
		r.reqs = append(r.reqs, rec)
		if r.fail != nil {
			if s := r.fail(len(r.reqs)); s != 0 && s != 200 {
				w.WriteHeader(s)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func (r *receiver) snapshot() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reqs...)
}

func (r *receiver) setSecret(s string) {
	r.mu.Lock()
	r.secret = s
	r.mu.Unlock()
}

// webhooksPlatform: a gateway emitting for webhooks, a presence worker
// emitting presence events for webhooks, a webhooks process.
type webhooksPlatform struct {
	env      *harness.Env
	gateways []*harness.Process
	hooks    *harness.Process
	db       string
	sdk      *rest.Client
	wh       *rest.Webhooks
}

func newWebhooksPlatform(t *testing.T, gateways int, hookEnv ...string) *webhooksPlatform {
	t.Helper()
	p := &webhooksPlatform{env: harness.NewEnv(t), db: authtest.Database(t)}
	p.env.Presence(t, "pr-0", "PRESENCE_EVENT_CONSUMERS=webhooks")
	for i := range gateways {
		p.gateways = append(p.gateways, p.env.Gateway(t, fmt.Sprintf("gw-wh-%d", i),
			"GATEWAY_EVENT_CONSUMERS=presence,webhooks", "GATEWAY_PRESENCE_NODE_TTL=3s"))
	}
	p.hooks = p.env.Webhooks(t, "wh-0", p.db, append([]string{"WEBHOOKS_ALLOW_PRIVATE=true", "WEBHOOKS_SWEEP_INTERVAL=500ms",
		"WEBHOOKS_DISPATCH_INTERVAL=50ms"}, hookEnv...)...)
	sdk, err := rest.New(rest.Config{GatewayURL: p.gateways[0].HTTPURL(), APIKey: p.env.Key.String()})
	if err != nil {
		t.Fatal(err)
	}
	p.sdk, p.wh = sdk, sdk.Webhooks(p.hooks.HTTPURL())
	return p
}

func (p *webhooksPlatform) endpoint(t *testing.T, r *receiver, types ...string) webhooks.Endpoint {
	t.Helper()
	ep, err := p.wh.CreateEndpoint(context.Background(), webhooks.CreateEndpoint{URL: r.srv.URL, Types: types})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ep.Secret, webhooks.SecretPrefix) {
		t.Fatalf("create answered no secret: %+v", ep)
	}
	r.setSecret(ep.Secret)
	return ep
}

func (p *webhooksPlatform) publish(t *testing.T, room string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; {
		batch := make([]rest.Message, 0, 100)
		for ; i < n && len(batch) < 100; i++ {
			batch = append(batch, rest.Message{Room: room, Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), IdempotencyKey: fmt.Sprintf("%s-%d", room, i)})
		}
		res, err := p.sdk.PublishBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
}

// A receiver failing 3 times gets the event on the 4th attempt with the same
// webhook-id, and the log shows the 4 attempts; an unreachable endpoint ends
// dead after the (shortened) horizon and a replay through the CLI delivers it.
func TestWebhooksRetryDeadLetterAndReplay(t *testing.T) {
	p := newWebhooksPlatform(t, 1, "WEBHOOKS_RETRY_MIN=50ms", "WEBHOOKS_RETRY_MAX=200ms", "WEBHOOKS_RETRY_HORIZON=2s", "WEBHOOKS_TIMEOUT=2s")
	ctx := context.Background()
	flaky := newReceiver(t)
	flaky.fail = func(n int) int {
		if n <= 3 {
			return http.StatusInternalServerError
		}
		return 200
	}
	ep := p.endpoint(t, flaky, webhooks.MessagePublished)
	p.publish(t, "retry", 1)
	testenv.WaitFor(t, 30*time.Second, "4 attempts", func() bool { return flaky.count() >= 4 })
	reqs := flaky.snapshot()
	for _, r := range reqs {
		if r.id != reqs[0].id || string(r.body) != string(reqs[0].body) || r.events[0].ID != r.id {
			t.Fatalf("attempts carry different ids or bodies: %q vs %q", r.id, reqs[0].id)
		}
	}
	var log webhooks.Deliveries
	testenv.WaitFor(t, 10*time.Second, "the delivery log shows the delivery", func() bool {
		var err error
		log, err = p.wh.Deliveries(ctx, ep.ID, "", "", 10)
		return err == nil && len(log.Deliveries) == 1 && log.Deliveries[0].State == webhooks.StateDelivered
	})
	d := log.Deliveries[0]
	if d.Attempts != 4 || len(d.Log) != 4 || d.EventID != reqs[0].id {
		t.Fatalf("delivery %+v, want 4 attempts of %s", d, reqs[0].id)
	}
	for i, a := range d.Log { // newest first
		want := 500
		if i == 0 {
			want = 200
		}
		if a.Status != want || a.N != 4-i {
			t.Errorf("attempt %+v, want n=%d status %d", a, 4-i, want)
		}
	}
	if flaky.count() != 4 {
		t.Errorf("%d requests, want 4", flaky.count())
	}

	// Unreachable: a closed port. Dead after the horizon, then replayed to
	// the URL the endpoint was moved to.
	gone := newReceiver(t)
	gone.srv.Close()
	dead, err := p.wh.CreateEndpoint(ctx, webhooks.CreateEndpoint{URL: gone.srv.URL, Types: []string{webhooks.MessagePublished}})
	if err != nil {
		t.Fatal(err)
	}
	p.publish(t, "dead", 1)
	testenv.WaitFor(t, 30*time.Second, "the delivery to the unreachable endpoint is dead", func() bool {
		l, err := p.wh.Deliveries(ctx, dead.ID, webhooks.StateDead, "", 10)
		return err == nil && len(l.Deliveries) == 1
	})
	l, _ := p.wh.Deliveries(ctx, dead.ID, webhooks.StateDead, "", 10)
	if l.Deliveries[0].Attempts < 2 || l.Deliveries[0].Log[0].Status != 0 || l.Deliveries[0].Log[0].Error == "" {
		t.Errorf("dead delivery %+v: want several attempts without an answer", l.Deliveries[0])
	}
	back := newReceiver(t)
	back.setSecret(dead.Secret)
	u := back.srv.URL
	if _, err := p.wh.UpdateEndpoint(ctx, dead.ID, webhooks.UpdateEndpoint{URL: &u}); err != nil {
		t.Fatal(err)
	}
	out := runCLI(t, "webhooks", "replay", "--url", p.hooks.HTTPURL(), "--key", p.env.Key.String(), dead.ID)
	if !strings.Contains(out, "replayed 1") {
		t.Fatalf("replay printed %q", out)
	}
	testenv.WaitFor(t, 30*time.Second, "the replayed delivery arrives", func() bool { return back.count() == 1 })
	if got := back.snapshot()[0]; got.id != l.Deliveries[0].EventID {
		t.Errorf("replay id %s, want %s", got.id, l.Deliveries[0].EventID)
	}

	// CLI list and delete.
	if out := runCLI(t, "webhooks", "list", "--url", p.hooks.HTTPURL(), "--key", p.env.Key.String()); !strings.Contains(out, ep.ID) || !strings.Contains(out, dead.ID) {
		t.Errorf("list: %q", out)
	}
	runCLI(t, "webhooks", "delete", "--url", p.hooks.HTTPURL(), "--key", p.env.Key.String(), dead.ID)
	if _, err := p.wh.Deliveries(ctx, dead.ID, "", "", 10); !isCode(err, "not_found") {
		t.Errorf("deliveries of a deleted endpoint: %v", err)
	}
	if flaky.bad+back.bad != 0 {
		t.Errorf("%d requests failed verification", flaky.bad+back.bad)
	}
}

func isCode(err error, code string) bool {
	var e *rest.Error
	return errors.As(err, &e) && e.Code == code
}

func runCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := execOut(harness.Binary(t, "roomcast"), args...)
	if err != nil {
		t.Fatalf("roomcast %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// With local development off, endpoint URLs on loopback or the metadata
// address are refused, by IP and by a name that resolves to loopback.
func TestWebhooksRefusePrivateAddresses(t *testing.T) {
	env := harness.NewEnv(t)
	hooks := env.Webhooks(t, "wh-strict", authtest.Database(t))
	sdk, err := rest.New(rest.Config{APIKey: env.Key.String()})
	if err != nil {
		t.Fatal(err)
	}
	wh := sdk.Webhooks(hooks.HTTPURL())
	for _, u := range []string{"http://127.0.0.1:9/hook", "http://169.254.169.254/latest/meta-data/", "http://localhost:8080/x", "http://[::1]/"} {
		if _, err := wh.CreateEndpoint(context.Background(), webhooks.CreateEndpoint{URL: u}); !isCode(err, string(webhooks.CodeURLNotAllowed)) {
			t.Errorf("create %s: %v, want url_not_allowed", u, err)
		}
	}
	if _, err := wh.CreateEndpoint(context.Background(), webhooks.CreateEndpoint{URL: "ftp://example.com/"}); !isCode(err, string(webhooks.CodeInvalidURL)) {
		t.Errorf("ftp URL: %v, want invalid_url", err)
	}
	if _, err := wh.CreateEndpoint(context.Background(), webhooks.CreateEndpoint{URL: "https://93.184.215.14/", Types: []string{"nope"}}); !isCode(err, string(webhooks.CodeInvalidEventType)) {
		t.Errorf("unknown type: %v, want invalid_event_type", err)
	}
	bad, _ := rest.New(rest.Config{APIKey: env.Key.App + "." + env.Key.ID + ":wrong-secret-wrong-secret"})
	if _, err := bad.Webhooks(hooks.HTTPURL()).Endpoints(context.Background()); !isCode(err, "unauthorized") {
		t.Errorf("wrong key: %v, want unauthorized", err)
	}
}

// 10,000 events to 3 endpoints with different filters: each gets exactly
// the events it asked for, none lost; duplicates (retries) carry the same id
// and body.
func TestWebhooksTenThousandEventsThreeFilters(t *testing.T) {
	p := newWebhooksPlatform(t, 1, "WEBHOOKS_RETRY_MIN=100ms", "WEBHOOKS_RETRY_MAX=500ms", "WEBHOOKS_ENDPOINT_CONCURRENCY=16")
	ctx := context.Background()
	msgs, conns := newReceiver(t), newReceiver(t)
	rooms := newReceiver(t)
	rooms.fail = func(n int) int { // some 503s: retried with the same id
		if n%50 == 0 {
			return http.StatusServiceUnavailable
		}
		return 200
	}
	p.endpoint(t, msgs, webhooks.MessagePublished)
	p.endpoint(t, conns, webhooks.ConnectionOpened, webhooks.ConnectionClosed)
	p.endpoint(t, rooms, webhooks.MemberJoined, webhooks.MemberLeft, webhooks.RoomOccupied, webhooks.RoomVacated)

	const nMsgs, nClients = 9000, 200
	var wg sync.WaitGroup
	for r := range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); p.publish(t, fmt.Sprintf("m%d", r), nMsgs/10) }()
	}
	clients := make([]*client.Client, 0, nClients)
	for i := range nClients {
		c, err := client.Dial(ctx, client.Config{URL: p.gateways[0].WSURL(), Token: p.env.Token(t, fmt.Sprintf("u%d", i), presenceCaps(), time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		room := fmt.Sprintf("lobby%d", i%5)
		if _, err := c.Join(ctx, room); err != nil {
			t.Fatal(err)
		}
		if err := c.EnterPresence(ctx, room, []byte(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	byType := func(r *receiver) map[string]map[string]webhooks.Event {
		out := map[string]map[string]webhooks.Event{}
		for _, q := range r.snapshot() {
			for _, e := range q.events {
				if out[e.Type] == nil {
					out[e.Type] = map[string]webhooks.Event{}
				}
				out[e.Type][e.ID] = e
			}
		}
		return out
	}
	testenv.WaitFor(t, 2*time.Minute, "every member joined", func() bool { return len(byType(rooms)[webhooks.MemberJoined]) == nClients })
	for _, c := range clients {
		_ = c.Close()
	}
	// 9,000 messages + 200 opened + 200 closed + 200 joined + 200 left + 5
	// occupied + 5 vacated = 9,810 events, plus the 400 room joins and
	// leaves they were derived from: over 10,000 tasks.
	testenv.WaitFor(t, 3*time.Minute, "every event delivered", func() bool {
		m, c, r := byType(msgs), byType(conns), byType(rooms)
		return len(m[webhooks.MessagePublished]) == nMsgs && len(c[webhooks.ConnectionClosed]) == nClients &&
			len(r[webhooks.MemberLeft]) == nClients && len(r[webhooks.RoomVacated]) == 5
	})
	m, c, r := byType(msgs), byType(conns), byType(rooms)
	if len(m) != 1 || len(c) != 2 || len(r) != 4 {
		t.Errorf("types received: messages endpoint %d, connections %d, rooms %d; want 1, 2, 4 (only what each asked for)", len(m), len(c), len(r))
	}
	offsets := map[string]bool{}
	for _, e := range m[webhooks.MessagePublished] {
		var d struct{ Offset uint64 }
		_ = json.Unmarshal(e.Data, &d)
		offsets[fmt.Sprintf("%s/%d", e.Room, d.Offset)] = true
	}
	for room := range 10 {
		for off := 1; off <= nMsgs/10; off++ {
			if !offsets[fmt.Sprintf("m%d/%d", room, off)] {
				t.Fatalf("message m%d offset %d never delivered", room, off)
			}
		}
	}
	if len(c[webhooks.ConnectionOpened]) != nClients || len(r[webhooks.RoomOccupied]) != 5 {
		t.Errorf("opened %d, occupied %d; want %d and 5", len(c[webhooks.ConnectionOpened]), len(r[webhooks.RoomOccupied]), nClients)
	}
	// Duplicates: same id ⇒ same body.
	dups := 0
	for _, rc := range []*receiver{msgs, conns, rooms} {
		bodies := map[string]string{}
		for _, q := range rc.snapshot() {
			if b, ok := bodies[q.id]; ok {
				dups++
				if b != string(q.body) {
					t.Errorf("webhook-id %s sent with two bodies", q.id)
				}
			}
			bodies[q.id] = string(q.body)
		}
		if rc.bad != 0 {
			t.Errorf("%d requests failed verification", rc.bad)
		}
	}
	t.Logf("duplicates (retried after 503): %d", dups)
}

// Room occupied/vacated fire once per transition with members on two
// gateways, and a crashed gateway's last member vacates its room.
func TestWebhooksRoomOccupancyOverTwoGateways(t *testing.T) {
	p := newWebhooksPlatform(t, 2)
	ctx := context.Background()
	rc := newReceiver(t)
	p.endpoint(t, rc, webhooks.RoomOccupied, webhooks.RoomVacated)
	tasks := func() float64 { return p.hooks.Metric(t, "roomcast_webhooks_tasks_total") }
	dial := func(gw int, id string) *client.Client {
		c, err := client.Dial(ctx, client.Config{URL: p.gateways[gw].WSURL(), Token: p.env.Token(t, id, presenceCaps(), time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	types := func() []string {
		var out []string
		for _, q := range rc.snapshot() {
			out = append(out, q.events[0].Type)
		}
		return out
	}
	// Each step waits until the webhooks service handled its tasks, so the
	// cluster-wide order of joins and leaves is the test's.
	step := func(n float64, f func()) {
		before := tasks()
		f()
		testenv.WaitFor(t, 30*time.Second, "tasks handled", func() bool { return tasks() >= before+n })
	}
	a, b := dial(0, "a"), dial(1, "b")
	testenv.WaitFor(t, 30*time.Second, "connections handled", func() bool { return tasks() >= 2 })
	step(1, func() { _, _ = a.Join(ctx, "hall") })
	step(1, func() { _, _ = b.Join(ctx, "hall") })
	step(1, func() { _ = a.Leave(ctx, "hall") })
	step(1, func() { _ = b.Leave(ctx, "hall") })
	testenv.WaitFor(t, 30*time.Second, "occupied then vacated", func() bool { return len(types()) == 2 })
	step(1, func() { _, _ = b.Join(ctx, "hall") })
	step(1, func() { _, _ = a.Join(ctx, "hall") })
	step(1, func() { _ = b.Leave(ctx, "hall") })
	testenv.WaitFor(t, 30*time.Second, "occupied again", func() bool { return len(types()) == 3 })
	// a (gateway 0) is the last member; gateway 0 crashes: its lease runs
	// out and the sweep vacates the room.
	p.gateways[0].Signal(syscall.SIGKILL)
	testenv.WaitFor(t, 30*time.Second, "vacated after the crash", func() bool { return len(types()) == 4 })
	got := strings.Join(types(), ",")
	if want := "room.occupied,room.vacated,room.occupied,room.vacated"; got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
	if last := rc.snapshot()[3].events[0]; !strings.Contains(string(last.Data), "node_lost") {
		t.Errorf("crash vacate data %s, want reason node_lost", last.Data)
	}
	b.Close()
}

func execOut(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

// message.published follows the message's binary mark: bytes published as
// binary arrive as data_base64, even when they happen to be JSON text, and
// JSON payloads as data, whichever subprotocol published them.
func TestWebhooksBinaryMessages(t *testing.T) {
	p := newWebhooksPlatform(t, 1)
	msgs := newReceiver(t)
	p.endpoint(t, msgs, webhooks.MessagePublished)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	looksJSON, raw := []byte(`{"a":1}`), []byte{0, 0xff, 0xc3, 0x28}
	type sent struct {
		data   []byte
		binary bool
	}
	want := map[string]sent{ // by event name
		"bin-json": {looksJSON, true}, "bin-raw": {raw, true}, "json": {looksJSON, false}}
	for i, codec := range []protocol.Codec{protocol.JSON, protocol.Msgpack} {
		c, err := client.Dial(ctx, client.Config{URL: p.gateways[0].WSURL(), Token: p.env.Token(t, "pub", presenceCaps(), time.Hour), Codec: codec})
		if err != nil {
			t.Fatal(err)
		}
		for ev, s := range want {
			opts := []client.PublishOption{client.WithEvent(ev)}
			if s.binary {
				opts = append(opts, client.Binary())
			}
			if _, err := c.Publish(ctx, fmt.Sprintf("bin%d", i), s.data, opts...); err != nil {
				t.Fatal(err)
			}
		}
		_ = c.Close()
	}
	events := func() []webhooks.Event {
		var out []webhooks.Event
		for _, q := range msgs.snapshot() {
			out = append(out, q.events...)
		}
		return out
	}
	testenv.WaitFor(t, time.Minute, "every message delivered", func() bool { return len(events()) >= 2*len(want) })
	seen := map[string]bool{}
	for _, e := range events() {
		var d struct {
			Event      string          `json:"event"`
			Data       json.RawMessage `json:"data"`
			DataBase64 *[]byte         `json:"data_base64"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatalf("event data %s: %v", e.Data, err)
		}
		s, ok := want[d.Event]
		if !ok {
			t.Fatalf("unexpected event %s", e.Data)
		}
		seen[e.Room+"/"+d.Event] = true
		if s.binary {
			if d.Data != nil || d.DataBase64 == nil || !bytes.Equal(*d.DataBase64, s.data) {
				t.Errorf("%s %s: %s; want data_base64 of %q and no data", e.Room, d.Event, e.Data, s.data)
			}
		} else if d.DataBase64 != nil || string(d.Data) != string(s.data) {
			t.Errorf("%s %s: %s; want data %s and no data_base64", e.Room, d.Event, e.Data, s.data)
		}
	}
	if len(seen) != 2*len(want) {
		t.Fatalf("delivered %v, want each event in both rooms", seen)
	}
	msgs.mu.Lock()
	defer msgs.mu.Unlock()
	if msgs.bad != 0 {
		t.Fatalf("%d requests failed verification", msgs.bad)
	}
}
