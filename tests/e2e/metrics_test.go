package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	validator "github.com/pb33f/libopenapi-validator"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/rest"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/tests/harness"
)

var allCaps = token.Capabilities{"*": {token.OpJoin, token.OpPublish, token.OpPresence, token.OpMetrics}}

// TestUsageMetricsAreExact runs a scripted workload over two gateways —
// known connections, joins, presence members, messages and bytes per room —
// kills the metrics worker with SIGKILL halfway and starts another, and
// checks that the usage API returns exactly those numbers, and that
// the responses match docs/metrics-openapi.yaml.
func TestUsageMetricsAreExact(t *testing.T) {
	env := harness.NewEnv(t)
	db := testenv.Postgres(t)
	m1 := env.Metrics(t, "m1", db)
	env.Presence(t, "p1", "PRESENCE_EVENT_CONSUMERS=metrics")
	g1 := env.Gateway(t, "g1", "GATEWAY_EVENT_CONSUMERS=presence,metrics")
	g2 := env.Gateway(t, "g2", "GATEWAY_EVENT_CONSUMERS=presence,metrics")

	// Room "a": 3 members on g1, 2 on g2; room "b": 2 on g2. Two members
	// of "a" and one of "b" enter presence.
	type member struct {
		c    *pclient
		room string
	}
	var members []member
	for i, spec := range []struct {
		gw   *harness.Process
		room string
	}{{g1, "a"}, {g1, "a"}, {g1, "a"}, {g2, "a"}, {g2, "a"}, {g2, "b"}, {g2, "b"}} {
		c := dialPresence(t, spec.gw.WSURL(), env.Token(t, fmt.Sprintf("u%d", i), allCaps, time.Hour))
		c.call(map[string]any{"op": "join", "room": spec.room})
		members = append(members, member{c, spec.room})
	}
	members[0].c.call(map[string]any{"op": "presence.enter", "room": "a"})
	members[3].c.call(map[string]any{"op": "presence.enter", "room": "a"})
	members[5].c.call(map[string]any{"op": "presence.enter", "room": "b"})

	want := map[string]*rest.UsageBucket{"a": {}, "b": {}, "": {}}
	publish := func(rounds int) {
		for r := 0; r < rounds; r++ {
			for i, m := range members {
				data := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, r, strings.Repeat("x", i))
				m.c.call(map[string]any{"op": "publish", "room": m.room, "data": json.RawMessage(data), "transient": i%2 == 1})
				for _, k := range []string{m.room, ""} {
					want[k].Messages++
					want[k].Bytes += int64(len(data))
				}
			}
		}
	}
	publish(10)
	m1.Kill() // SIGKILL: tasks it held come back after their lease
	publish(5)
	m2 := env.Metrics(t, "m2", db)
	publish(5)

	want["a"].Connections, want["a"].PeakConnections, want["a"].CurrentConnections = 5, 5, 5
	want["b"].Connections, want["b"].PeakConnections, want["b"].CurrentConnections = 2, 2, 2
	want[""].Connections, want[""].PeakConnections, want[""].CurrentConnections = 7, 7, 7
	want["a"].PeakPresence, want["a"].CurrentPresence = 2, 2
	want["b"].PeakPresence, want["b"].CurrentPresence = 1, 1
	want[""].PeakPresence, want[""].CurrentPresence = 3, 3

	sdk, err := rest.New(rest.Config{APIKey: env.Key.String(), MetricsURL: m2.HTTPURL()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	q := rest.StatsQuery{From: time.Now().Add(-time.Hour), Unit: rest.UnitHour}
	got := map[string]rest.UsageBucket{}
	// A task m1 held when it died is retried after asynq's lease (30 s)
	// and recovery (up to a minute): wait for it.
	testenv.WaitFor(t, 3*time.Minute, "usage equal to the workload", func() bool {
		for k, w := range want {
			var u *rest.Usage
			var err error
			if k == "" {
				u, err = sdk.Stats(ctx, q)
			} else {
				u, err = sdk.RoomStats(ctx, k, q)
			}
			if err != nil {
				t.Logf("stats %q: %v", k, err)
				return false
			}
			got[k] = u.Totals
			if u.Totals != *w {
				return false
			}
		}
		return true
	})
	for k, w := range want {
		if got[k] != *w {
			t.Errorf("room %q: usage %+v, want %+v", k, got[k], *w)
		}
	}

	// The answers (and errors) match docs/metrics-openapi.yaml.
	v := metricsOpenAPI(t)
	for _, c := range []struct {
		path, key string
		status    int
	}{
		{"/v1/apps/app1/stats?unit=minute", env.Key.String(), 200},
		{"/v1/apps/app1/rooms/a/stats?unit=day", env.Key.String(), 200},
		{"/v1/apps/app1/stats?unit=week", env.Key.String(), 400},
		{"/v1/apps/other/stats", env.Key.String(), 403},
		{"/v1/apps/app1/stats", "", 401},
	} {
		req, _ := http.NewRequest("GET", m2.HTTPURL()+c.path, nil)
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("GET %s: %d %s, want %d", c.path, resp.StatusCode, body, c.status)
		}
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
		if ok, errs := v.ValidateHttpResponse(req, resp); !ok {
			for _, e := range errs {
				t.Errorf("GET %s → %d does not match docs/metrics-openapi.yaml: %s (%s)", c.path, resp.StatusCode, e.Message, e.Reason)
			}
		}
	}

	// Closing connections lowers the current values, not the peaks.
	members[6].c.drop()
	testenv.WaitFor(t, time.Minute, "room b down to one connection", func() bool {
		u, err := sdk.RoomStats(ctx, "b", q)
		return err == nil && u.Totals.CurrentConnections == 1 && u.Totals.PeakConnections == 2
	})
}

// TestUsageForgetsAKilledGatewaysConnections: a gateway killed with
// SIGKILL never sends connection.closed; once its lease runs out the
// metrics service takes its connections off the current values (and
// keeps the peaks), while the other gateway's stay counted.
func TestUsageForgetsAKilledGatewaysConnections(t *testing.T) {
	env := harness.NewEnv(t)
	db := testenv.Postgres(t)
	m := env.Metrics(t, "m1", db, "METRICS_SWEEP_INTERVAL=200ms")
	gw := func(node string) *harness.Process {
		return env.Gateway(t, node, "GATEWAY_EVENT_CONSUMERS=metrics", "GATEWAY_PRESENCE_NODE_TTL=1500ms")
	}
	g1, g2 := gw("g1"), gw("g2")
	for i, g := range []*harness.Process{g1, g1, g1, g2, g2} {
		c := dialPresence(t, g.WSURL(), env.Token(t, fmt.Sprintf("u%d", i), allCaps, time.Hour))
		c.call(map[string]any{"op": "join", "room": "r"})
	}
	sdk, err := rest.New(rest.Config{APIKey: env.Key.String(), MetricsURL: m.HTTPURL()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	q := rest.StatsQuery{From: time.Now().Add(-time.Hour), Unit: rest.UnitHour}
	current := func(room string) (cur, peak int64) {
		var u *rest.Usage
		var err error
		if room == "" {
			u, err = sdk.Stats(ctx, q)
		} else {
			u, err = sdk.RoomStats(ctx, room, q)
		}
		if err != nil {
			t.Logf("stats %q: %v", room, err)
			return -1, -1
		}
		return u.Totals.CurrentConnections, u.Totals.PeakConnections
	}
	testenv.WaitFor(t, time.Minute, "5 connections counted", func() bool {
		app, _ := current("")
		room, _ := current("r")
		return app == 5 && room == 5
	})
	g1.Kill()
	testenv.WaitFor(t, time.Minute, "g1's 3 connections taken off", func() bool {
		app, appPeak := current("")
		room, roomPeak := current("r")
		return app == 2 && room == 2 && appPeak == 5 && roomPeak == 5
	})
	if !strings.Contains(m.Logs(), "took a dead gateway's connections off") {
		t.Error("the metrics service did not log the sweep")
	}
}

func metricsOpenAPI(t *testing.T) validator.Validator {
	t.Helper()
	v, _ := loadSpec(t, "../../docs/metrics-openapi.yaml")
	return v
}

// TestLiveRoomMetrics: a client with the metrics capability gets pushes
// with the room's members, connections (over both gateways) and a message
// rate; one without it is refused.
func TestLiveRoomMetrics(t *testing.T) {
	env := harness.NewEnv(t)
	env.Presence(t, "p1")
	g1 := env.Gateway(t, "g1")
	g2 := env.Gateway(t, "g2")
	for i, gw := range []*harness.Process{g1, g2, g2} {
		c := dialPresence(t, gw.WSURL(), env.Token(t, fmt.Sprintf("m%d", i), allCaps, time.Hour))
		c.call(map[string]any{"op": "join", "room": "live"})
		if i == 0 {
			c.call(map[string]any{"op": "presence.enter", "room": "live"})
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < 1500; j++ {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					if r := c.try(map[string]any{"op": "publish", "room": "live", "data": j}); r.Error != nil {
						return
					}
				}
			}()
			defer wg.Wait()
			defer close(stop)
		}
	}
	noCaps := dialPresence(t, g1.WSURL(), env.Token(t, "x", token.Capabilities{"*": {token.OpJoin}}, time.Hour))
	if r := noCaps.try(map[string]any{"op": "metrics.subscribe", "room": "live"}); r.Error == nil || r.Error.Code != protocol.CodeForbidden {
		t.Fatalf("metrics.subscribe without the capability: %+v", r)
	}
	w, _ := harness.Connect(t, g1.WSURL(), env.Token(t, "watcher", token.Capabilities{"live": {token.OpMetrics}}, time.Hour))
	w.WriteJSON(map[string]any{"id": 1, "op": "metrics.subscribe", "room": "live", "interval_ms": 1000})
	deadline := time.Now().Add(30 * time.Second)
	var last *protocol.RoomMetrics
	for time.Now().Before(deadline) {
		f, err := w.Read(time.Until(deadline))
		if err != nil {
			t.Fatalf("read: %v (last metrics %+v)", err, last)
		}
		if f.Server.Reply != nil && f.Server.Reply.Error != nil {
			t.Fatalf("metrics.subscribe: %+v", f.Server.Reply.Error)
		}
		if m := f.Server.Metrics; m != nil {
			last = m
			if m.Room == "live" && m.Connections == 3 && m.Members == 1 && m.Clients == 1 && m.MessageRate > 0 {
				return
			}
		}
	}
	t.Fatalf("no metrics frame with 3 connections, 1 member and a message rate; last %+v", last)
}

// TestServiceMetricsAndReadiness: every service's /metrics parses with the
// Prometheus text parser and carries its series; /readyz turns unready
// when the service's Redis is unreachable and ready when it is back.
func TestServiceMetricsAndReadiness(t *testing.T) {
	env := harness.NewEnv(t)
	ru, err := url.Parse(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	cut := startCuttable(t, ru.Host)
	ru.Host = cut.addr()
	redisVia := "ROOMCAST_REDIS_URL=" + ru.String()
	db := testenv.Postgres(t)
	procs := map[string]*harness.Process{
		"gateway":  env.Gateway(t, "g1", redisVia, "GATEWAY_EVENT_CONSUMERS=presence,metrics"),
		"presence": env.Presence(t, "p1", redisVia),
		"metrics":  env.Metrics(t, "m1", db, redisVia),
		"history":  env.History(t, "h1", redisVia),
		"webhooks": env.Webhooks(t, "w1", testenv.Postgres(t), redisVia),
	}
	// auth reads Redis only to announce key changes (gateways poll as well),
	// so its readiness is PostgreSQL's: it is checked for its series only.
	auth := harness.Start(t, harness.Binary(t, "auth"), []string{
		"AUTH_ADDR=127.0.0.1:0",
		"AUTH_DATABASE_URL=" + testenv.Postgres(t),
		"AUTH_ADMIN_TOKEN=admin-" + testenv.RandomName("token-"),
		"AUTH_MASTER_KEY=" + strings.Repeat("ab", 32),
		redisVia,
		"ROOMCAST_REDIS_PREFIX=" + env.RedisPrefix,
	})
	// Traffic, so that labelled series exist.
	c := dialPresence(t, procs["gateway"].WSURL(), env.Token(t, "u", allCaps, time.Hour))
	c.call(map[string]any{"op": "join", "room": "r"})
	c.call(map[string]any{"op": "publish", "room": "r", "data": 1})
	series := map[string][]string{
		"gateway": {"roomcast_gateway_connections", "roomcast_gateway_rooms", "roomcast_gateway_joins_total",
			"roomcast_gateway_messages_in_total", "roomcast_gateway_deliveries_total", "roomcast_gateway_bytes_in_total",
			"roomcast_gateway_bytes_out_total", "roomcast_gateway_message_bytes_in_total", "roomcast_gateway_deliver_latency_seconds",
			"roomcast_amqp_confirmed_total", "roomcast_amqp_returned_total", "roomcast_amqp_reconnects_total",
			"roomcast_redis_errors_total", "roomcast_queue_tasks", "roomcast_gateway_handshakes_total",
			"roomcast_gateway_rate_limited_total", "roomcast_gateway_slow_consumers_total", "roomcast_gateway_live_metrics_subscriptions",
			"go_goroutines", "process_resident_memory_bytes"},
		"presence": {"roomcast_presence_members", "roomcast_presence_tasks_total", "roomcast_queue_tasks", "roomcast_redis_errors_total", "go_goroutines", "process_cpu_seconds_total"},
		"metrics":  {"roomcast_metrics_events_applied_total", "roomcast_queue_tasks", "roomcast_tasks_total", "roomcast_redis_errors_total", "go_goroutines", "process_cpu_seconds_total"},
		"history":  {"roomcast_history_batches_total", "roomcast_history_inserted_total", "roomcast_queue_tasks", "roomcast_redis_errors_total", "go_goroutines", "process_cpu_seconds_total"},
		"webhooks": {"roomcast_webhooks_delivered_total", "roomcast_webhooks_dead_total", "roomcast_queue_tasks", "roomcast_redis_errors_total", "go_goroutines", "process_cpu_seconds_total"},
		"auth":     {"roomcast_auth_tokens_issued_total", "roomcast_redis_errors_total", "go_goroutines", "process_cpu_seconds_total"},
	}
	testenv.WaitFor(t, 30*time.Second, "the metrics service counted an event", func() bool {
		return procs["metrics"].Metric(t, "roomcast_metrics_events_applied_total") > 0
	})
	for name, p := range map[string]*harness.Process{"auth": auth, "gateway": procs["gateway"], "presence": procs["presence"],
		"metrics": procs["metrics"], "history": procs["history"], "webhooks": procs["webhooks"]} {
		fams := scrape(t, p)
		for _, s := range series[name] {
			if _, ok := fams[s]; !ok {
				t.Errorf("%s: /metrics has no %s", name, s)
			}
		}
	}
	ready := func(p *harness.Process) int {
		resp, err := http.Get(p.HTTPURL() + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for name, p := range procs {
		testenv.WaitFor(t, 10*time.Second, name+" ready", func() bool { return ready(p) == 200 })
	}
	cut.set(true)
	for name, p := range procs {
		testenv.WaitFor(t, 20*time.Second, name+" unready without Redis", func() bool { return ready(p) == 503 })
	}
	cut.set(false)
	for name, p := range procs {
		testenv.WaitFor(t, 30*time.Second, name+" ready again", func() bool { return ready(p) == 200 })
	}
	if v := scrape(t, procs["gateway"])["roomcast_redis_errors_total"]; v == nil {
		t.Error("no roomcast_redis_errors_total")
	}
}

// scrape parses a process's /metrics with the Prometheus text parser.
func scrape(t *testing.T, p *harness.Process) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(p.HTTPURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s /metrics does not parse: %v", p.Addr, err)
	}
	return fams
}

// cuttable is a TCP forwarder to Redis that the test can cut (existing
// connections closed, new ones refused) and restore.
type cuttable struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
}

func startCuttable(t *testing.T, target string) *cuttable {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cuttable{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); c.set(true) })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go c.forward(in)
		}
	}()
	return c
}

func (c *cuttable) addr() string { return c.ln.Addr().String() }

func (c *cuttable) set(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = cut
	if cut {
		for conn := range c.conns {
			conn.Close()
		}
	}
}

func (c *cuttable) forward(in net.Conn) {
	out, err := net.DialTimeout("tcp", c.target, time.Second)
	if err != nil {
		in.Close()
		return
	}
	c.mu.Lock()
	if c.cut {
		c.mu.Unlock()
		in.Close()
		out.Close()
		return
	}
	c.conns[in], c.conns[out] = struct{}{}, struct{}{}
	c.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) { _, _ = io.Copy(dst, src); dst.Close(); src.Close(); done <- struct{}{} }
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
	c.mu.Lock()
	delete(c.conns, in)
	delete(c.conns, out)
	c.mu.Unlock()
}
