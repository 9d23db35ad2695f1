package conn

import (
	"testing"
	"time"
)

func TestWindowWaitsForARelease(t *testing.T) {
	var w window
	for i := range 3 {
		if !w.acquire(3, time.Second) {
			t.Fatalf("acquire %d of 3 failed", i+1)
		}
	}
	got := make(chan bool)
	go func() { got <- w.acquire(3, time.Minute) }()
	select {
	case ok := <-got:
		t.Fatalf("a fourth acquire in a window of 3 returned %v before any release", ok)
	case <-time.After(50 * time.Millisecond):
	}
	w.release()
	if ok := <-got; !ok {
		t.Fatal("the waiting acquire failed after a release")
	}
}

func TestWindowTimesOut(t *testing.T) {
	var w window
	if !w.acquire(1, time.Second) {
		t.Fatal("first acquire failed")
	}
	if w.acquire(1, 20*time.Millisecond) {
		t.Fatal("acquire in a full window succeeded without a release")
	}
	w.release()
	if !w.acquire(1, time.Second) {
		t.Fatal("acquire after the release failed")
	}
}

func TestWindowDrainWaitsForEveryAnswer(t *testing.T) {
	var w window
	w.drain() // nothing in flight: returns at once
	for range 2 {
		w.acquire(2, time.Second)
	}
	drained := make(chan struct{})
	go func() { w.drain(); close(drained) }()
	w.release()
	select {
	case <-drained:
		t.Fatal("drain returned with a publish still in flight")
	case <-time.After(50 * time.Millisecond):
	}
	w.release()
	<-drained
}
