package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/loadgen"
	"github.com/roomcast/roomcast/tests/harness"
)

// benchGatewayEnv lets the bench's publishers publish 100 msg/s each.
var benchGatewayEnv = []string{"ROOMCAST_LOG_LEVEL=info", "GATEWAY_RATE=100000", "GATEWAY_BURST=100000"}

// checkBenchArithmetic checks what a light bench run must report: every
// connection made, every scheduled message sent and acknowledged, expected
// deliveries = Σ published × members per room, all of them delivered, one
// latency sample per delivery, and CPU figures for every gateway.
func checkBenchArithmetic(t *testing.T, r loadgen.Report, conns, publishers int, messages int64, pids []int) {
	t.Helper()
	c, m := r.Connections, r.Messages
	if c.Made != conns || c.Failed != 0 || c.PublishersMade != publishers || c.PublishersFailed != 0 {
		t.Errorf("connections %+v: want %d subscribers and %d publishers made", c, conns, publishers)
	}
	if m.Scheduled != messages || m.Sent != messages || m.Published != messages || m.PublishFailed != 0 {
		t.Errorf("messages %+v: want %d scheduled, sent and published", m, messages)
	}
	if r.Raw == nil {
		t.Fatal("report without raw data")
	}
	var members, published, expected int64
	for room, n := range r.Raw.MembersPerRoom {
		members += n
		published += r.Raw.PublishedPerRoom[room]
		expected += n * r.Raw.PublishedPerRoom[room]
	}
	if members != int64(conns) || published != messages {
		t.Errorf("per room: %d members and %d published, want %d and %d", members, published, conns, messages)
	}
	if m.Expected != expected {
		t.Errorf("expected deliveries = %d, want Σ published × members = %d", m.Expected, expected)
	}
	if m.ExpectedMax != expected {
		t.Errorf("expected deliveries counting unacknowledged sends = %d, want %d (every publish acknowledged)", m.ExpectedMax, expected)
	}
	if m.Delivered != expected || m.DeliveredFraction != 1 {
		t.Errorf("delivered %d (fraction %v), want %d (1.0)", m.Delivered, m.DeliveredFraction, expected)
	}
	if r.Latency.Count != m.Delivered || r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P99 {
		t.Errorf("latency %+v: want one sample per delivery (%d)", r.Latency, m.Delivered)
	}
	if len(r.Errors) != 0 || r.Resumes.Disconnects != 0 {
		t.Errorf("errors %v, resumes %+v: want none", r.Errors, r.Resumes)
	}
	g := r.Gateways
	if g == nil || len(g.Each) != len(pids) {
		t.Fatalf("gateway figures %+v: want one per pid %v", g, pids)
	}
	// Gateway CPU comes from /proc in clock ticks (10 ms): these runs are
	// small enough that a gateway may not use one tick in the window, so
	// only its presence is checked here (pkg/loadgen's proc tests check
	// the reading itself).
	for i, p := range g.Each {
		if p.PID != pids[i] || p.CPUSeconds < 0 || p.RSSConnected <= 0 {
			t.Errorf("gateway %d: %+v: want CPU measured and RSS above zero", pids[i], p)
		}
	}
	if g.CPUPerMillion < 0 || r.Loadgen.CPUSeconds <= 0 {
		t.Errorf("gateway %v CPU-s per 1M, load generator %v CPU-s: want them measured", g.CPUPerMillion, r.Loadgen.CPUSeconds)
	}
}

// TestBenchRun runs the load generator in this process against two real
// gateways: 50 connections in 5 rooms, 2 publishers at 100 msg/s for 2 s.
func TestBenchRun(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw0 := env.Gateway(t, "gw-bench-0", benchGatewayEnv...)
	gw1 := env.Gateway(t, "gw-bench-1", benchGatewayEnv...)
	pids := []int{gw0.Pid(), gw1.Pid()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := loadgen.Run(ctx, loadgen.Config{
		URLs:        []string{gw0.WSURL(), gw1.WSURL()},
		Connections: 50,
		Rooms:       loadgen.RoomsMany,
		RoomCount:   5,
		Publishers:  2,
		Rate:        100,
		Duration:    2 * time.Second,
		Key:         env.Key.String(),
		GatewayPIDs: pids,
		Floor:       loadgen.FloorConfig{Sockets: 50, Deliveries: 20_000},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkBenchArithmetic(t, r, 50, 2, 200, pids)
	for room, n := range r.Raw.MembersPerRoom {
		if n != 10 {
			t.Errorf("room %d has %d members, want 10 (connection i joins room i %% 5)", room, n)
		}
	}
	if r.Floor == nil || r.Floor.CPUPerMillion <= 0 || r.FloorRatio <= 0 {
		t.Errorf("floor %+v, ratio %v: want both measured", r.Floor, r.FloorRatio)
	}
}

// TestBenchRunMsgpack is TestBenchRun with every connection on
// roomcast.v1.msgpack and binary payloads: the load generator's send times
// survive the bytes' trip, so every delivery is counted and timed. Its
// handlers are queued (the SDK's delivery goroutine), TestBenchRun's run on
// the readers (the default).
func TestBenchRunMsgpack(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw0 := env.Gateway(t, "gw-benchmp-0", benchGatewayEnv...)
	gw1 := env.Gateway(t, "gw-benchmp-1", benchGatewayEnv...)
	pids := []int{gw0.Pid(), gw1.Pid()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := loadgen.Run(ctx, loadgen.Config{
		URLs:           []string{gw0.WSURL(), gw1.WSURL()},
		Connections:    20,
		Rooms:          loadgen.RoomsOne,
		Publishers:     1,
		Rate:           50,
		Duration:       2 * time.Second,
		Codec:          loadgen.CodecMsgpack,
		Key:            env.Key.String(),
		GatewayPIDs:    pids,
		SkipFloor:      true,
		QueuedHandlers: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Config.Codec != loadgen.CodecMsgpack || !r.Config.QueuedHandlers {
		t.Errorf("report says codec %q, queued handlers %v", r.Config.Codec, r.Config.QueuedHandlers)
	}
	checkBenchArithmetic(t, r, 20, 1, 100, pids)
}

// TestBenchProcs runs `roomcast bench --procs 2`: two worker processes
// with slices of the connections and publishers, whose reports the
// coordinator merges (histograms included); then `--procs 1
// --publisher-procs 1`: the publishers in a worker of their own.
func TestBenchProcs(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw0 := env.Gateway(t, "gw-bench-p0", benchGatewayEnv...)
	gw1 := env.Gateway(t, "gw-bench-p1", benchGatewayEnv...)
	pids := []int{gw0.Pid(), gw1.Pid()}
	for _, procs := range [][]string{{"--procs", "2"}, {"--procs", "1", "--publisher-procs", "1"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		args := append([]string{"bench",
			"--url", gw0.WSURL() + "," + gw1.WSURL(),
			"--connections", "40", "--rooms", "many", "--room-count", "4",
			"--publishers", "3", "--rate", "60", "--duration", "1s",
			"--pids", strconv.Itoa(pids[0]) + "," + strconv.Itoa(pids[1]),
			"--no-floor", "--json", "--raw", "--quiet"}, procs...)
		cmd := exec.CommandContext(ctx, harness.Binary(t, "roomcast"), args...)
		cmd.Env = append(cmd.Environ(), "ROOMCAST_KEY="+env.Key.String())
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("roomcast bench %v: %v\n%s", procs, err, stderr.String())
		}
		if strings.Contains(stderr.String(), env.Key.String()) {
			t.Error("the API key appears on stderr")
		}
		var r loadgen.Report
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
		}
		if r.Procs != 2 || r.Loadgen.Procs != 2 {
			t.Errorf("%v: procs %d (load generator %d), want 2", procs, r.Procs, r.Loadgen.Procs)
		}
		checkBenchArithmetic(t, r, 40, 3, 60, pids)
	}
}
