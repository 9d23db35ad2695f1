package loadgen

import (
	"context"
	"encoding/json"
	"testing"
)

func TestFloorFrame(t *testing.T) {
	for _, size := range []int{minFrameBytes, 100, 127} {
		f := floorFrame(size)
		if len(f) != size {
			t.Errorf("frame of %d bytes, want %d", len(f), size)
		}
		if f[0] != 0x81 || int(f[1]) != len(f)-2 {
			t.Errorf("header % x does not describe a final text frame of %d bytes", f[:2], len(f)-2)
		}
		if !json.Valid(f[2:]) {
			t.Errorf("payload %s is not JSON", f[2:])
		}
	}
}

// TestFloor runs a small floor: every frame must reach a reader (Floor
// checks the byte count) and the figures must add up.
func TestFloor(t *testing.T) {
	r, err := Floor(context.Background(), FloorConfig{Sockets: 20, Deliveries: 2000, Coalesce: 3, FrameBytes: 80})
	if err != nil {
		t.Fatal(err)
	}
	// 34 rounds of 3 frames to each of 20 sockets cover 2000.
	if r.Deliveries != 2040 || r.Writes != 680 {
		t.Errorf("deliveries %d, writes %d; want 2040 and 680", r.Deliveries, r.Writes)
	}
	if r.CPUSeconds <= 0 || r.CPUPerMillion != r.CPUSeconds*1e6/2040 {
		t.Errorf("cpu %v s, %v per 1M", r.CPUSeconds, r.CPUPerMillion)
	}
	for _, bad := range []FloorConfig{{FrameBytes: 10}, {FrameBytes: 200}, {Sockets: -1}} {
		if _, err := Floor(context.Background(), bad); err == nil {
			t.Errorf("Floor(%+v) succeeded, want an error", bad)
		}
	}
}

// TestFloorPaced paces the writes: every frame still arrives, the report
// says how it was paced, and the run cannot end before its last burst is
// due (a lower bound only; an upper one would be a timed assertion).
func TestFloorPaced(t *testing.T) {
	cfg := FloorConfig{Sockets: 10, Deliveries: 200, Rate: 4000, Burst: 4}
	r, err := Floor(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Deliveries != 200 || r.Writes != 200 || r.Rate != 4000 || r.Burst != 4 {
		t.Errorf("report %+v", r)
	}
	// 50 bursts of 4, 1 ms apart: the last is due 49 ms after the first.
	if r.WallSeconds < 0.049 {
		t.Errorf("wall %.4f s: the writes were not paced", r.WallSeconds)
	}
	flat, err := Floor(context.Background(), FloorConfig{Sockets: 10, Deliveries: 200})
	if err != nil {
		t.Fatal(err)
	}
	if flat.Rate != 0 || flat.Burst != 0 {
		t.Errorf("unpaced floor reports rate %v burst %d", flat.Rate, flat.Burst)
	}
}

// TestFloors measures the paced floor only when asked, and none when the
// floor is skipped.
func TestFloors(t *testing.T) {
	cfg := Config{Floor: FloorConfig{Sockets: 5, Deliveries: 50}}
	f, p, err := Floors(context.Background(), cfg)
	if err != nil || f == nil || p != nil {
		t.Fatalf("Floors without a pace = %v, %v, %v; want a floor only", f, p, err)
	}
	cfg.PacedFloor = FloorConfig{Sockets: 5, Deliveries: 50, Rate: 10000}
	f, p, err = Floors(context.Background(), cfg)
	if err != nil || f == nil || p == nil || p.Rate != 10000 || p.Burst != 5 {
		t.Fatalf("Floors with a pace = %v, %+v, %v", f, p, err)
	}
	cfg.SkipFloor = true
	if f, p, err = Floors(context.Background(), cfg); f != nil || p != nil || err != nil {
		t.Errorf("skipped Floors = %v, %v, %v", f, p, err)
	}
}

// TestPacedFloorFor: the paced floor matches one gateway's share of the
// workload (the figures docs/benchmarks.md uses for W2 and W3).
func TestPacedFloorFor(t *testing.T) {
	two := []string{"ws://a", "ws://b"}
	tests := []struct {
		name string
		cfg  Config
		want FloorConfig
	}{
		{"W2 at 10 msg/s", Config{URLs: two, Connections: 1000, Rooms: RoomsOne, Rate: 10},
			FloorConfig{Sockets: 500, Rate: 5000, Burst: 500, Deliveries: 25000}},
		{"W3", Config{URLs: two, Connections: 10000, Rooms: RoomsMany, RoomCount: 1000, Rate: 2000},
			FloorConfig{Sockets: 5000, Rate: 10000, Burst: 5, Deliveries: 50000}},
		{"capped sockets", Config{URLs: two[:1], Connections: 18000, Rooms: RoomsMany, RoomCount: 100, Rate: 1},
			FloorConfig{Sockets: maxPacedSockets, Rate: 180, Burst: 180, Deliveries: maxPacedSockets}},
		{"idle", Config{URLs: two, Connections: 1000, Idle: true, Rate: 10}, FloorConfig{}},
	}
	for _, tt := range tests {
		if got := PacedFloorFor(tt.cfg); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
