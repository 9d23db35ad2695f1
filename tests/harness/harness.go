// Package harness runs real Roomcast processes for end-to-end tests: it
// builds the binaries once per test binary, starts them on port 0 against
// the test's own RabbitMQ vhost and Redis prefix, learns the real address
// from the "listening" log line, and kills them when the test ends.
package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/testenv"
)

var (
	binDir  string
	buildMu sync.Mutex
	built   = map[string]error{}
)

// Binaries maps a binary name to its package.
var Binaries = map[string]string{
	"gateway":  "github.com/roomcast/roomcast/services/gateway",
	"presence": "github.com/roomcast/roomcast/services/presence",
	"history":  "github.com/roomcast/roomcast/services/history",
	"webhooks": "github.com/roomcast/roomcast/services/webhooks",
	"metrics":  "github.com/roomcast/roomcast/services/metrics",
	"roomcast": "github.com/roomcast/roomcast/cmd/roomcast",
}

// Main builds the binaries, runs the tests and removes the binaries. Call
// it from TestMain.
func Main(m interface{ Run() int }) int {
	dir, err := os.MkdirTemp("", "roomcast-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	binDir = dir
	defer os.RemoveAll(dir)
	return m.Run()
}

// Binary returns the path of a built binary, building it on first use.
func Binary(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	path := filepath.Join(binDir, name)
	err, done := built[name]
	if !done {
		switch pkg, ok := Binaries[name]; {
		case binDir == "":
			err = fmt.Errorf("harness: call harness.Main from TestMain")
		case !ok:
			err = fmt.Errorf("harness: unknown binary %q", name)
		default:
			args := []string{"build", "-o", path}
			if raceEnabled {
				args = append(args, "-race")
			}
			if out, berr := exec.Command("go", append(args, pkg)...).CombinedOutput(); berr != nil {
				err = fmt.Errorf("go build %s: %v\n%s", pkg, berr, out)
			}
		}
		built[name] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// Env is one test's isolated slice of the platform: its own vhost, Redis
// prefix and API key.
type Env struct {
	AMQPURL     string
	Redis       *redis.Client
	RedisPrefix string
	Key         token.Key
}

// NewEnv creates an isolated environment.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	rdb, prefix := testenv.Redis(t)
	t.Cleanup(func() { deleteQueues(rdb, prefix) })
	return &Env{
		AMQPURL:     testenv.AMQPVHost(t),
		Redis:       rdb,
		RedisPrefix: prefix,
		Key:         token.Key{App: "app1", ID: "k1", Secret: []byte(testenv.RandomName("secret-secret-"))},
	}
}

// Token mints a token for clientID with caps.
func (e *Env) Token(t testing.TB, clientID string, caps token.Capabilities, ttl time.Duration) string {
	t.Helper()
	tok, err := token.Mint(e.Key, clientID, caps, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// GatewayEnv is the environment a gateway of this Env runs with.
func (e *Env) GatewayEnv(node string) []string {
	return []string{
		"ROOMCAST_AMQP_URL=" + e.AMQPURL,
		"ROOMCAST_REDIS_URL=" + testenv.RedisURL(),
		"ROOMCAST_REDIS_PREFIX=" + e.RedisPrefix,
		"ROOMCAST_KEYS=" + e.Key.String(),
		"ROOMCAST_NODE_ID=" + node,
		"ROOMCAST_LOG_LEVEL=debug",
		"GATEWAY_ADDR=127.0.0.1:0",
		// Every test client comes from 127.0.0.1.
		"GATEWAY_IP_RATE=100000",
		"GATEWAY_IP_BURST=100000",
	}
}

// Gateway starts a gateway process and waits until it listens.
func (e *Env) Gateway(t testing.TB, node string, extraEnv ...string) *Process {
	t.Helper()
	return Start(t, Binary(t, "gateway"), append(e.GatewayEnv(node), extraEnv...))
}

// Process is a running service process.
type Process struct {
	Addr string
	cmd  *exec.Cmd
	logs *SyncBuffer
	done chan struct{}
	err  error
}

// Start runs bin with env (added to this process's environment) and waits
// for its "listening" log line.
func Start(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	// The child dies with the test binary even if cleanup never runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logs := &SyncBuffer{}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &Process{cmd: cmd, logs: logs, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			logs.Write(append(line, '\n'))
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
				select {
				case addr <- rec.Addr:
				default:
				}
			}
		}
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if strings.Contains(p.Logs(), "WARNING: DATA RACE") {
			t.Errorf("%s (pid %d) reported a data race", filepath.Base(bin), cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("logs of %s (pid %d):\n%s", filepath.Base(bin), cmd.Process.Pid, tail(p.Logs(), 60))
		}
	})
	select {
	case p.Addr = <-addr:
	case <-p.done:
		t.Fatalf("%s exited before listening: %v\n%s", bin, p.err, p.Logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not listen within 30s\n%s", bin, p.Logs())
	}
	return p
}

// WSURL is the WebSocket endpoint.
func (p *Process) WSURL() string { return "ws://" + p.Addr + "/v1/connect" }

// HTTPURL is the base HTTP URL.
func (p *Process) HTTPURL() string { return "http://" + p.Addr }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill kills the process (SIGKILL) and waits for it.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 if it was killed by a signal).
func (p *Process) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("process %d still running after %s", p.Pid(), timeout)
	}
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Logs returns everything the process logged so far.
func (p *Process) Logs() string { return p.logs.String() }

// SyncBuffer is a bytes.Buffer that a process may write while a test
// reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tail(s string, lines int) string {
	b := []byte(s)
	n := 0
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n++
			if n > lines {
				return string(b[i+1:])
			}
		}
	}
	return s
}

// Metric reads one un-labelled series from the process's /metrics.
func (p *Process) Metric(t testing.TB, name string) float64 {
	t.Helper()
	resp, err := http.Get(p.HTTPURL() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not exposed by %s", name, p.Addr)
	return 0
}
