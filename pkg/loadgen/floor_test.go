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
