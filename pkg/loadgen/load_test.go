package loadgen

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestConnectFailuresAreCounted points the load generator at a port
// nobody listens on: no error, every connection counted as failed with
// its cause.
func TestConnectFailuresAreCounted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	l, err := Connect(context.Background(), Config{
		URLs: []string{"ws://" + addr + "/v1/connect"}, Token: "t", Connections: 5, Publishers: 2, ConnectRate: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r, err := l.Report()
	if err != nil {
		t.Fatal(err)
	}
	c := r.Connections
	if c.Made != 0 || c.Failed != 5 || c.PublishersMade != 0 || c.PublishersFailed != 2 {
		t.Errorf("connections %+v: want 5 subscribers and 2 publishers failed", c)
	}
	if r.Errors["dial:connection_refused"] != 7 {
		t.Errorf("errors = %v, want dial:connection_refused 7", r.Errors)
	}
}

func TestConnectRejectsBadConfig(t *testing.T) {
	if _, err := Connect(context.Background(), Config{URLs: []string{"ws://x"}}); err == nil {
		t.Error("Connect without credentials succeeded")
	}
}

func TestWallClockFollowsTimeNow(t *testing.T) {
	c := newWallClock()
	before := time.Now().UnixNano()
	got := c.unixNano()
	after := time.Now().UnixNano()
	// The two clocks may disagree by a slew of the wall clock; a
	// millisecond is far more than any in a test's lifetime.
	if got < before-int64(time.Millisecond) || got > after+int64(time.Millisecond) {
		t.Fatalf("unixNano = %d, want within [%d, %d]", got, before, after)
	}
}
