package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/pkg/sdk/rest"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/tests/harness"
)

// historyGateway starts a gateway that archives with the history service h
// and reads history through it. A small recovery stream makes reads
// depend on the archive for all but a room's newest messages.
func historyGateway(t testing.TB, env *harness.Env, node string, h *harness.Process, extra ...string) *harness.Process {
	t.Helper()
	e := append(env.GatewayHistoryEnv(h), "ROOMCAST_STREAM_SIZE=50", "GATEWAY_EVENT_BUFFER=200000")
	return env.Gateway(t, node, append(e, extra...)...)
}

func restClient(t testing.TB, gw *harness.Process, key string) *rest.Client {
	t.Helper()
	rc, err := rest.New(rest.Config{GatewayURL: gw.HTTPURL(), APIKey: key, MaxRetries: 5})
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// archived counts the archive's rows matching a SQL condition.
func archived(t testing.TB, env *harness.Env, where string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, env.HistoryDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM history_messages WHERE "+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// metric reads one counter from a process's /metrics (0 if absent).
func metric(t testing.TB, p *harness.Process, name string) float64 {
	t.Helper()
	resp, err := http.Get(p.HTTPURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// pageREST reads a room's whole history through the REST SDK and fails on
// a page over the limit or an offset seen twice.
func pageREST(t testing.TB, rc *rest.Client, room string, opts rest.HistoryOptions) []rest.HistoryMessage {
	t.Helper()
	var all []rest.HistoryMessage
	seen := map[uint64]bool{}
	for pages := 0; ; pages++ {
		if pages > 100000 {
			t.Fatal("paging does not end")
		}
		p, err := rc.History(context.Background(), room, opts)
		if err != nil {
			t.Fatalf("history of %s: %v", room, err)
		}
		if len(p.Messages) > opts.Limit {
			t.Fatalf("page of %d messages, limit %d", len(p.Messages), opts.Limit)
		}
		for _, m := range p.Messages {
			if seen[m.Offset] {
				t.Fatalf("%s: offset %d returned twice", room, m.Offset)
			}
			seen[m.Offset] = true
		}
		all = append(all, p.Messages...)
		if p.Cursor == "" {
			return all
		}
		opts.Cursor = p.Cursor
	}
}

// checkExact fails unless msgs are offsets 1..n of one epoch, in order
// (reversed when backward), each carrying its own data {"room":…,"i":offset}.
func checkExact(t testing.TB, room string, msgs []rest.HistoryMessage, n int, backward bool) {
	t.Helper()
	if len(msgs) != n {
		t.Fatalf("%s: %d messages, want %d", room, len(msgs), n)
	}
	for i, m := range msgs {
		want := uint64(i + 1)
		if backward {
			want = uint64(n - i)
		}
		if m.Offset != want || m.Epoch != msgs[0].Epoch {
			t.Fatalf("%s: message %d has offset %d (epoch %s), want %d", room, i, m.Offset, m.Epoch, want)
		}
		var d struct {
			Room string `json:"room"`
			I    uint64 `json:"i"`
		}
		if err := json.Unmarshal(m.Data, &d); err != nil || d.Room != room || d.I != m.Offset {
			t.Fatalf("%s: offset %d carries %s", room, m.Offset, m.Data)
		}
	}
}

// publishRooms publishes perRoom messages to each room through REST
// batches (several rooms per batch), with workers in parallel; message i
// of a room carries {"room":…,"i":i} and lands at offset i, because each
// room's messages go in order from one worker.
func publishRooms(rc *rest.Client, rooms []string, perRoom, workers int, progress *atomic.Int64) error {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine []string
			for i := w; i < len(rooms); i += workers {
				mine = append(mine, rooms[i])
			}
			for i := 1; i <= perRoom; {
				var batch []rest.Message
				for ; i <= perRoom && len(batch)+len(mine) <= 100; i++ {
					for _, room := range mine {
						batch = append(batch, rest.Message{Room: room, Data: fmt.Appendf(nil, `{"room":%q,"i":%d}`, room, i),
							IdempotencyKey: fmt.Sprintf("%s-%d", room, i)})
					}
				}
				res, err := rc.PublishBatch(context.Background(), batch)
				if err != nil {
					errs <- err
					return
				}
				for _, r := range res {
					if r.Err != nil {
						errs <- r.Err
						return
					}
				}
				if progress != nil {
					progress.Add(int64(len(batch)))
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func roomNames(prefix string, n int) []string {
	rooms := make([]string, n)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("%s.%03d", prefix, i)
	}
	return rooms
}

// 50,000 messages over 100 rooms: each room's history, paged forward and
// backward through REST (and a few rooms through the WebSocket op), is
// exactly its 500 messages in order, with no duplicate and no gap across
// pages; the archive holds each message once.
func TestHistoryPagesEveryRoomExactly(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	h := env.History(t, "hist-1")
	gw := historyGateway(t, env, "gw-hist", h)
	rc := restClient(t, gw, env.Key.String())
	rooms := roomNames("hist", 100)
	const perRoom = 500
	if err := publishRooms(rc, rooms, perRoom, 10, nil); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 2*time.Minute, "50,000 messages archived", func() bool {
		return archived(t, env, "app = $1", env.Key.App) == len(rooms)*perRoom
	})

	for i, room := range rooms {
		limit := []int{1000, 100, 77, 7}[i%4]
		checkExact(t, room, pageREST(t, rc, room, rest.HistoryOptions{Limit: limit}), perRoom, false)
		checkExact(t, room, pageREST(t, rc, room, rest.HistoryOptions{Limit: limit, Backward: true}), perRoom, true)
	}

	// The WebSocket op, through the Go client SDK, on a few rooms.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{URL: gw.WSURL(), Token: env.Token(t, "reader", token.Capabilities{"hist.*": {token.OpHistory}}, time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, room := range rooms[:5] {
		for _, backward := range []bool{false, true} {
			var got []rest.HistoryMessage
			opts := client.HistoryOptions{Limit: 64, Backward: backward}
			for {
				p, err := c.History(ctx, room, opts)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range p.Messages {
					got = append(got, rest.HistoryMessage{Offset: m.Offset, Epoch: m.Epoch, Data: m.Data})
				}
				if p.Cursor == "" {
					break
				}
				opts.Cursor = p.Cursor
			}
			checkExact(t, room, got, perRoom, backward)
		}
	}
	// Offset and time bounds.
	p, err := rc.History(context.Background(), rooms[0], rest.HistoryOptions{FromOffset: 101, ToOffset: 110, Limit: 1000})
	if err != nil || len(p.Messages) != 10 || p.Messages[0].Offset != 101 || p.Messages[9].Offset != 110 || p.Cursor != "" {
		t.Fatalf("offsets 101..110: %+v, %v", p, err)
	}
	from, to := p.Messages[0].Timestamp, p.Messages[9].Timestamp
	all := pageREST(t, rc, rooms[0], rest.HistoryOptions{Start: time.UnixMilli(from), End: time.UnixMilli(to), Limit: 1000})
	for _, m := range all {
		if m.Timestamp < from || m.Timestamp > to {
			t.Fatalf("time range %d..%d returned ts %d", from, to, m.Timestamp)
		}
	}
	if len(all) < 10 {
		t.Fatalf("time range of offsets 101..110 returned %d messages", len(all))
	}
}

// A message is in history as soon as its publisher has the reply: over
// the WebSocket (Go client SDK) and REST, before the worker archived it.
func TestHistoryReadAfterPublish(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	h := env.History(t, "hist-1")
	gw := historyGateway(t, env, "gw-hist", h)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{URL: gw.WSURL(), Token: env.Token(t, "alice", token.Capabilities{"chat": {token.OpPublish, token.OpHistory}}, time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc := restClient(t, gw, env.Key.String())
	for i := 1; i <= 50; i++ {
		pos, err := c.Publish(ctx, "chat", fmt.Appendf(nil, `{"n":%d}`, i))
		if err != nil {
			t.Fatal(err)
		}
		p, err := c.History(ctx, "chat", client.HistoryOptions{Backward: true, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Messages) != 1 || p.Messages[0].Offset != pos.Offset || p.Messages[0].From != "alice" || string(p.Messages[0].Data) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("publish %d at %d: newest in history is %+v", i, pos.Offset, p.Messages)
		}
		res, err := rc.Publish(ctx, rest.Message{Room: "chat", Data: []byte(`{"rest":true}`)})
		if err != nil {
			t.Fatal(err)
		}
		rp, err := rc.History(ctx, "chat", rest.HistoryOptions{Backward: true, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(rp.Messages) != 2 || rp.Messages[0].Offset != res.Offset || rp.Messages[1].Offset != pos.Offset {
			t.Fatalf("REST publish at %d: newest two in history are %+v", res.Offset, rp.Messages)
		}
	}
	// Without the capability: forbidden. Bad input: bad_request.
	c2, err := client.Dial(ctx, client.Config{URL: gw.WSURL(), Token: env.Token(t, "bob", token.Capabilities{"chat": {token.OpJoin}}, time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.History(ctx, "chat", client.HistoryOptions{}); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("history without the capability: %v", err)
	}
	if _, err := c.History(ctx, "chat", client.HistoryOptions{Cursor: "bogus"}); err == nil || !strings.Contains(err.Error(), "bad_request") {
		t.Fatalf("bogus cursor: %v", err)
	}
	if _, err := c.History(ctx, "chat", client.HistoryOptions{Limit: 1001}); err == nil || !strings.Contains(err.Error(), "bad_request") {
		t.Fatalf("limit 1001: %v", err)
	}
}

// The history worker is killed (SIGKILL) while messages stream in and a
// new one takes over: every message ends up archived exactly once.
func TestHistoryWorkerKilledMidStream(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	h1 := env.History(t, "hist-1", "HISTORY_BATCH_SIZE=200")
	gw := historyGateway(t, env, "gw-hist", h1)
	rc := restClient(t, gw, env.Key.String())
	rooms := roomNames("kill", 20)
	const perRoom = 1000
	total := len(rooms) * perRoom
	var published atomic.Int64
	done := make(chan error, 1)
	go func() { done <- publishRooms(rc, rooms, perRoom, 4, &published) }()
	testenv.WaitFor(t, time.Minute, "a third archived", func() bool {
		return archived(t, env, "true") >= total/3
	})
	h1.Kill()
	t.Logf("history worker killed with %d of %d published, %d archived", published.Load(), total, archived(t, env, "true"))
	h2 := env.History(t, "hist-2", "HISTORY_BATCH_SIZE=200")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Read through a gateway of the new worker (the first one's reads went
	// to the killed process).
	rc = restClient(t, historyGateway(t, env, "gw-hist-2", h2), env.Key.String())
	// Tasks the killed worker held come back when their lease expires
	// (asynq's recoverer runs every minute; aggregation sets after 2, and
	// their groups are listed again by the history service's group repair).
	insp := asynq.NewInspectorFromRedisClient(env.Redis)
	queue := events.Queue(env.RedisPrefix, "history")
	last := time.Now()
	testenv.WaitFor(t, 6*time.Minute, "every message archived", func() bool {
		n := archived(t, env, "true")
		if time.Since(last) > 20*time.Second {
			last = time.Now()
			info, err := insp.GetQueueInfo(queue)
			groups, _ := insp.Groups(queue)
			t.Logf("%d of %d archived; queue %+v (%v); groups %+v", n, total, info, err, groups)
		}
		return n == total
	})
	rows := archived(t, env, "true")
	distinct := archived(t, env, "(app, room, epoch, msg_offset) IN (SELECT DISTINCT app, room, epoch, msg_offset FROM history_messages)")
	if rows != total || distinct != total {
		t.Fatalf("archive holds %d rows (%d distinct), want %d", rows, distinct, total)
	}
	for _, room := range rooms {
		checkExact(t, room, pageREST(t, rc, room, rest.HistoryOptions{Limit: 1000}), perRoom, false)
	}
	t.Logf("worker 2 archived %v batches, inserted %v rows, saw %v messages",
		metric(t, h2, "roomcast_history_batches_total"), metric(t, h2, "roomcast_history_inserted_total"), metric(t, h2, "roomcast_history_messages_total"))
}

// With two history replicas, retention deletes exactly the expired
// messages (an app with a 2 s retention), once, and nothing of an app
// with the default 24 h.
func TestHistoryRetentionWithTwoReplicas(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	short := token.Key{App: "brief", ID: "k2", Secret: []byte(testenv.RandomName("secret-secret-"))}
	extra := []string{"HISTORY_RETENTION_RULES=" + `[{"app":"brief","retention":"2s"}]`, "HISTORY_RETENTION_INTERVAL=500ms", "HISTORY_RETENTION_BATCH=100"}
	h1 := env.History(t, "hist-1", extra...)
	h2 := env.History(t, "hist-2", extra...)
	gw := historyGateway(t, env, "gw-hist", h1, "ROOMCAST_KEYS="+env.Key.String()+","+short.String())
	keep := restClient(t, gw, env.Key.String())
	expire := restClient(t, gw, short.String())
	const n = 1500
	if err := publishRooms(keep, roomNames("keep", 5), n/5, 5, nil); err != nil {
		t.Fatal(err)
	}
	if err := publishRooms(expire, roomNames("gone", 5), n/5, 5, nil); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 2*time.Minute, "the short-lived messages archived and deleted", func() bool {
		deleted := metric(t, h1, "roomcast_history_retention_deleted_total") + metric(t, h2, "roomcast_history_retention_deleted_total")
		return deleted == n && archived(t, env, "app = 'brief'") == 0
	})
	testenv.WaitFor(t, time.Minute, "the others archived", func() bool {
		return archived(t, env, "app = $1", env.Key.App) == n
	})
	// Later sweeps delete nothing more: the 24 h messages stay.
	sweeps := metric(t, h1, "roomcast_history_retention_sweeps_total") + metric(t, h2, "roomcast_history_retention_sweeps_total")
	testenv.WaitFor(t, 30*time.Second, "three more sweeps", func() bool {
		return metric(t, h1, "roomcast_history_retention_sweeps_total")+metric(t, h2, "roomcast_history_retention_sweeps_total") >= sweeps+3
	})
	if got := archived(t, env, "app = $1", env.Key.App); got != n {
		t.Fatalf("%d messages with 24 h retention left, want %d", got, n)
	}
	if d := metric(t, h1, "roomcast_history_retention_deleted_total") + metric(t, h2, "roomcast_history_retention_deleted_total"); d != n {
		t.Fatalf("replicas deleted %v in all, want %d", d, n)
	}
	t.Logf("sweeps: replica 1 %v, replica 2 %v", metric(t, h1, "roomcast_history_retention_sweeps_total"), metric(t, h2, "roomcast_history_retention_sweeps_total"))
}

// GET /v1/rooms/{room}/messages matches docs/openapi.yaml: pages, errors.
func TestOpenAPIDescribesHistory(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	h := env.History(t, "hist-1")
	gw := historyGateway(t, env, "gw-hist", h)
	rc := restClient(t, gw, env.Key.String())
	if err := publishRooms(rc, []string{"doc"}, 5, 1, nil); err != nil {
		t.Fatal(err)
	}
	get := func(path, cred string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, gw.HTTPURL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if cred != "" {
			req.Header.Set("Authorization", "Bearer "+cred)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		checkAgainstSpec(t, http.MethodGet, gw.HTTPURL()+path, req.Header, nil, resp.StatusCode, resp.Header, body)
		return resp.StatusCode, body
	}
	key := env.Key.String()
	base := "/v1/rooms/doc/messages"
	status, body := get(base+"?limit=2&direction=backward", key)
	var page rest.HistoryPage
	if status != http.StatusOK || json.Unmarshal(body, &page) != nil || len(page.Messages) != 2 || page.Messages[0].Offset != 5 || page.Cursor == "" {
		t.Fatalf("first page: %d %s", status, body)
	}
	status, body = get(base+"?limit=2&direction=backward&cursor="+url.QueryEscape(page.Cursor), key)
	if status != http.StatusOK || json.Unmarshal(body, &page) != nil || len(page.Messages) != 2 || page.Messages[0].Offset != 3 {
		t.Fatalf("second page: %d %s", status, body)
	}
	status, body = get(base+"?from_offset=5", key)
	page = rest.HistoryPage{}
	if status != http.StatusOK || json.Unmarshal(body, &page) != nil || len(page.Messages) != 1 || page.Cursor != "" {
		t.Fatalf("last page: %d %s", status, body)
	}
	if status, _ = get("/v1/rooms/empty/messages", key); status != http.StatusOK {
		t.Fatalf("empty room: %d", status)
	}
	noHistory := env.Token(t, "u", token.Capabilities{"doc": {token.OpJoin}}, time.Hour)
	for path, want := range map[string]int{
		base + "?limit=0":                   http.StatusBadRequest,
		base + "?limit=1001":                http.StatusBadRequest,
		base + "?direction=up":              http.StatusBadRequest,
		base + "?cursor=nope":               http.StatusBadRequest,
		base + "?from_offset=-1":            http.StatusBadRequest,
		base + "?start=9&end=1":             http.StatusBadRequest,
		base + "?from_offset=9&to_offset=1": http.StatusBadRequest,
	} {
		if status, body := get(path, key); status != want {
			t.Errorf("%s: %d %s, want %d", path, status, body, want)
		}
	}
	if status, _ := get(base, ""); status != http.StatusUnauthorized {
		t.Errorf("no credential: %d", status)
	}
	if status, _ := get(base, noHistory); status != http.StatusForbidden {
		t.Errorf("token without history: %d", status)
	}
}
