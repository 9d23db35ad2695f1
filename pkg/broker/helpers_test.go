package broker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/roomcast/roomcast/pkg/testenv"
)

// TestMain fails the run if any broker or amqp091 goroutine outlives the
// tests: every Broker is closed by its test, so none may remain.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitNoLeaks(10 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked after all brokers closed:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func waitNoLeaks(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "rabbitmq/amqp091-go") || strings.Contains(g, "pkg/broker.(*") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recorder is a Handler that keeps every delivery per shard, in order.
type recorder struct {
	mu     sync.Mutex
	shards map[int][]string
}

func newRecorder() *recorder { return &recorder{shards: make(map[int][]string)} }

func (r *recorder) handle(shard int, body []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.shards[shard] = append(r.shards[shard], string(body))
}

func (r *recorder) has(shard int, body string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.shards[shard], body)
}

func (r *recorder) hasAny(body string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, msgs := range r.shards {
		if slices.Contains(msgs, body) {
			return true
		}
	}
	return false
}

func (r *recorder) count(shard int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.shards[shard])
}

func (r *recorder) get(shard int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.shards[shard])
}

// testLogger logs through t.Log and also into a buffer tests can search.
type testLogger struct {
	t   testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *testLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (l *testLogger) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

func newTestLogger(t testing.TB) (*slog.Logger, *testLogger) {
	w := &testLogger{t: t}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})), w
}

type node struct {
	*Broker
	rec *recorder
	log *testLogger
}

// newNode starts a Broker for nodeID on amqpURL, closed when the test ends.
// mod may adjust the config.
func newNode(t testing.TB, amqpURL, nodeID string, mod func(*Config)) *node {
	t.Helper()
	rec := newRecorder()
	log, tl := newTestLogger(t)
	cfg := Config{URL: amqpURL, NodeID: nodeID, ReconnectMax: time.Second}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg, log, rec.handle)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &node{Broker: b, rec: rec, log: tl}
}

func waitReady(t testing.TB, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		testenv.WaitFor(t, 15*time.Second, "broker ready", n.Ready)
	}
}

func subscribe(t testing.TB, n *node, shards ...int) {
	t.Helper()
	for _, s := range shards {
		if err := n.Subscribe(context.Background(), s); err != nil {
			t.Fatalf("Subscribe(%d): %v", s, err)
		}
	}
}

func publish(t testing.TB, n *node, shard int, body string) {
	t.Helper()
	if err := n.Publish(context.Background(), shard, []byte(body)); err != nil {
		t.Fatalf("Publish(%d, %q): %v", shard, body, err)
	}
}

// vhostOf returns the vhost of an AMQP URL.
func vhostOf(t testing.TB, amqpURL string) string {
	t.Helper()
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func rabbitmqctl(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// boundShards lists the routing keys bound from exchange to queue, as
// RabbitMQ reports them.
func boundShards(t testing.TB, amqpURL, queue string) []string {
	t.Helper()
	keys, err := boundShardsErr(amqpURL, queue)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// boundShardsErr is boundShards for goroutines that must not call t.Fatal.
func boundShardsErr(amqpURL, queue string) ([]string, error) {
	u, err := url.Parse(amqpURL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", "-q", "--no-table-headers", "list_bindings",
		"-p", strings.TrimPrefix(u.Path, "/"), "source_name", "destination_name", "routing_key").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("rabbitmqctl list_bindings: %w\n%s", err, out)
	}
	var keys []string
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Split(strings.TrimSpace(line), "\t")
		if len(f) == 3 && f[0] == DefaultExchange && f[1] == queue {
			keys = append(keys, f[2])
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// rawChannel opens a plain AMQP channel on amqpURL for test setup.
func rawChannel(t testing.TB, amqpURL string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return ch
}

// publishConcurrently runs goroutines publishers of each messages
// "<g>:<i>", publisher g to shardOf(g), and fails the test on any error.
func publishConcurrently(t testing.TB, pub *node, goroutines, each int, shardOf func(g int) int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if err := pub.Publish(context.Background(), shardOf(g), fmt.Appendf(nil, "%d:%d", g, i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Publish: %v", err)
	}
}

// checkPublisherOrder fails the test unless each publisher's messages
// ("<g>:<i>", from publishConcurrently) reached n's shard in order.
func checkPublisherOrder(t testing.TB, n *node, shard int) {
	t.Helper()
	next := map[string]int{}
	for _, m := range n.rec.get(shard) {
		g, i, _ := strings.Cut(m, ":")
		if strconv.Itoa(next[g]) != i {
			t.Fatalf("shard %d: publisher %s message %s arrived when %d was expected", shard, g, i, next[g])
		}
		next[g]++
	}
}
