package loadgen

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestExpected(t *testing.T) {
	tests := []struct {
		published, members []int64
		want               int64
	}{
		{[]int64{100}, []int64{1000}, 100_000},
		{[]int64{3, 0, 5}, []int64{10, 10, 0}, 30},
		{[]int64{1, 2, 3}, []int64{4, 5, 6}, 4 + 10 + 18},
		{[]int64{7, 7}, []int64{2}, 14}, // a room nobody joined
		{nil, []int64{5}, 0},
	}
	for _, tt := range tests {
		if got := Expected(tt.published, tt.members); got != tt.want {
			t.Errorf("Expected(%v, %v) = %d, want %d", tt.published, tt.members, got, tt.want)
		}
	}
}

// rawReport builds a worker-style report with latencies (µs) recorded.
func rawReport(t *testing.T, published, members []int64, latencies ...int64) Report {
	t.Helper()
	lat, lag := newHistogram(), newHistogram()
	for _, v := range latencies {
		record(lat, time.Duration(v)*time.Microsecond)
	}
	record(lag, 100*time.Microsecond)
	le, err := encode(lat)
	if err != nil {
		t.Fatal(err)
	}
	ge, err := encode(lag)
	if err != nil {
		t.Fatal(err)
	}
	var made int
	for _, m := range members {
		made += int(m)
	}
	return Report{
		Procs:       1,
		Config:      Summary{Rate: 100},
		Connections: ConnectionStats{Subscribers: made, Made: made, Publishers: 1, PublishersMade: 1, Seconds: 1},
		Messages: MessageStats{
			Sent: 10, Published: 10, Delivered: int64(len(latencies)),
			PublishSeconds: 1, WindowSeconds: 2,
		},
		Loadgen: LoadgenStats{Procs: 1, GOMAXPROCS: 2, CPUSeconds: 0.5},
		Errors:  map[string]int64{"publish:rate_limited": 1},
		Raw: &Raw{MembersPerRoom: members, PublishedPerRoom: published, SentPerRoom: append([]int64(nil), published...),
			LatencyHistogram: le, LagHistogram: ge},
	}
}

// TestMergeIsExact checks that merging worker reports gives the same
// counts and percentiles as one process that saw everything, and that
// expected deliveries are recomputed over all workers' rooms.
func TestMergeIsExact(t *testing.T) {
	// Worker A published 6 to room 0 and 4 to room 1, and has 2 members
	// of room 0; worker B published 0 and 10, and has 3 members of room 1.
	a := rawReport(t, []int64{6, 4}, []int64{2, 0}, 1000, 2000, 3000)
	b := rawReport(t, []int64{0, 10}, []int64{0, 3}, 4000, 5000)
	b.Raw.SentPerRoom[1] = 12 // two publishes to room 1 got no reply
	m, err := Merge([]Report{a, b})
	if err != nil {
		t.Fatal(err)
	}
	m.Finalize()
	if want := int64((6+0)*2 + (4+10)*3); m.Messages.Expected != want {
		t.Errorf("expected deliveries = %d, want %d", m.Messages.Expected, want)
	}
	if want := int64(6*2 + 16*3); m.Messages.ExpectedMax != want {
		t.Errorf("expected deliveries counting unacknowledged sends = %d, want %d", m.Messages.ExpectedMax, want)
	}
	if m.Messages.Delivered != 5 || m.Latency.Count != 5 {
		t.Errorf("delivered %d, latency count %d; want 5 and 5", m.Messages.Delivered, m.Latency.Count)
	}
	if m.Latency.Max < 4.99 || m.Latency.Max > 5.01 || m.Latency.P50 < 2.99 || m.Latency.P50 > 3.01 {
		t.Errorf("latency %+v: want p50 3 ms and max 5 ms", m.Latency)
	}
	if m.Procs != 2 || m.Loadgen.CPUSeconds != 1 || m.Connections.Made != 5 || m.Connections.PublishersMade != 2 {
		t.Errorf("sums wrong: procs %d, cpu %v, made %d, publishers %d", m.Procs, m.Loadgen.CPUSeconds, m.Connections.Made, m.Connections.PublishersMade)
	}
	if m.Errors["publish:rate_limited"] != 2 {
		t.Errorf("errors = %v, want publish:rate_limited 2", m.Errors)
	}
	if got, want := m.Raw.PublishedPerRoom, []int64{6, 14}; got[0] != want[0] || got[1] != want[1] {
		t.Errorf("published per room = %v, want %v", got, want)
	}
	if _, err := Merge([]Report{a, {}}); err == nil {
		t.Error("merge of a report without raw data succeeded")
	}
	if _, err := Merge(nil); err == nil {
		t.Error("merge of nothing succeeded")
	}
}

func TestFinalizeArithmetic(t *testing.T) {
	r := rawReport(t, []int64{10}, []int64{4}, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000,
		1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000)
	r.Messages.Delivered = 20
	r.Gateways = &GatewayStats{WindowSeconds: 2, CPUSeconds: 0.0002, RSSBefore: 1 << 20, RSSConnected: 1<<20 + 5*4096}
	r.Floor = &FloorReport{CPUPerMillion: 8}
	r.PacedFloor = &FloorReport{CPUPerMillion: 20, Rate: 100, Burst: 5}
	r.Finalize()
	m := r.Messages
	if m.Expected != 40 || m.DeliveredFraction != 0.5 {
		t.Errorf("expected %d, fraction %v; want 40 and 0.5", m.Expected, m.DeliveredFraction)
	}
	if m.OfferedPerSecond != 10 || m.DeliveredPerSecond != 10 {
		t.Errorf("offered %v/s delivered %v/s; want 10 and 10", m.OfferedPerSecond, m.DeliveredPerSecond)
	}
	g := r.Gateways
	if math.Abs(g.CPUPerMillion-10) > 1e-9 || math.Abs(r.FloorRatio-1.25) > 1e-9 {
		t.Errorf("gateway %v CPU-s per 1M, ratio %v; want 10 and 1.25", g.CPUPerMillion, r.FloorRatio)
	}
	if math.Abs(r.PacedFloorRatio-0.5) > 1e-9 {
		t.Errorf("paced floor ratio %v, want 0.5", r.PacedFloorRatio)
	}
	// 4 subscribers + 1 publisher, 5 pages more.
	if g.RSSPerConnection != 4096 {
		t.Errorf("rss per connection = %v, want 4096", g.RSSPerConnection)
	}
	if r.Loadgen.CPUPerMillion != 0.5*1e6/20 || r.Loadgen.Cores != 0.25 {
		t.Errorf("loadgen %+v", r.Loadgen)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "more CPU per delivery") {
		t.Errorf("warnings = %q, want the load generator costing more than the gateways", r.Warnings)
	}
	r.Finalize() // idempotent
	if len(r.Warnings) != 1 {
		t.Errorf("second Finalize added warnings: %q", r.Warnings)
	}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"expected 40, delivered 20, fraction 0.5000", "1.25× the floor", "4.00 KiB per connection", "publish:rate_limited 1", "WARNING"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestFinalizeWarnsWhenBehindSchedule(t *testing.T) {
	r := rawReport(t, []int64{1}, []int64{1}, 1000)
	lag := newHistogram()
	for range 100 {
		record(lag, 50*time.Millisecond)
	}
	var err error
	if r.Raw.LagHistogram, err = encode(lag); err != nil {
		t.Fatal(err)
	}
	r.Finalize()
	if r.Schedule.LagP99 < 49 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "behind their schedule") {
		t.Errorf("lag p99 %v, warnings %q; want 50 ms and a warning", r.Schedule.LagP99, r.Warnings)
	}
}

func TestFinalizeZeroDenominators(t *testing.T) {
	var r Report
	r.Gateways = &GatewayStats{}
	r.Floor = &FloorReport{}
	r.Finalize()
	for name, v := range map[string]float64{
		"fraction": r.Messages.DeliveredFraction, "offered": r.Messages.OfferedPerSecond,
		"gateway per 1M": r.Gateways.CPUPerMillion, "ratio": r.FloorRatio, "rss": r.Gateways.RSSPerConnection,
	} {
		if v != 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("%s = %v, want 0", name, v)
		}
	}
}

func TestFinalizeWarnsWhenMachineBusy(t *testing.T) {
	r := rawReport(t, []int64{1}, []int64{1}, 1000)
	r.Machine = &MachineStats{CPUs: 2, BusyCores: 1.7}
	r.Finalize()
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "1.70 of 2 cores") {
		t.Errorf("warnings = %q, want the busy machine", r.Warnings)
	}
	r = rawReport(t, []int64{1}, []int64{1}, 1000)
	r.Machine = &MachineStats{CPUs: 2, BusyCores: 1.5}
	r.Finalize()
	if len(r.Warnings) != 0 {
		t.Errorf("warnings = %q at 75%% busy, want none", r.Warnings)
	}
}
