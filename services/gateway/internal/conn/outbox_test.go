//go:build linux

package conn

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/services/gateway/config"
	"github.com/roomcast/roomcast/services/gateway/internal/metrics"
)

// outboxConn is a Conn with only what its outbox uses, writing to the
// server side of a loopback TCP connection; peer is the client side.
func outboxConn(t testing.TB) (*Conn, net.Conn) {
	t.Helper()
	tc, peer := testenv.TCPPair(t)
	rc, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	c := &Conn{
		d: &Deps{
			Config:  &config.Config{OutboxFrames: 1 << 20, OutboxBytes: 1 << 30, WriteTimeout: time.Minute},
			Metrics: metrics.New(prometheus.NewRegistry()),
			Log:     slog.New(slog.DiscardHandler),
		},
		nc: tc,
		// Not registered with the poller: these tests only write.
		poll: &pollConn{TCPConn: tc, rc: rc},
	}
	return c, peer
}

func readN(t testing.TB, r io.Reader, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// waitIdle waits until the connection has no writer at work.
func waitIdle(t *testing.T, c *Conn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		idle := !c.writing && c.queue == nil
		c.mu.Unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the outbox never became idle")
		}
		time.Sleep(time.Millisecond)
	}
}

// Frames queued before a flush go out together, in one write, in order.
func TestOutboxCoalescesQueuedFramesIntoOneWrite(t *testing.T) {
	c, peer := outboxConn(t)
	frames := [][]byte{[]byte("one"), []byte("two"), []byte("three")}
	for i, f := range frames {
		if first := c.QueueFrame(f); first != (i == 0) {
			t.Fatalf("QueueFrame %d reported first=%v", i, first)
		}
	}
	if n := testutil.ToFloat64(c.d.Metrics.Writes); n != 0 {
		t.Fatalf("%v writes before Flush", n)
	}
	c.Flush()
	if got := readN(t, peer, 11); string(got) != "onetwothree" {
		t.Fatalf("peer read %q", got)
	}
	if w, f := testutil.ToFloat64(c.d.Metrics.Writes), testutil.ToFloat64(c.d.Metrics.FramesOut); w != 1 || f != 3 {
		t.Fatalf("%v writes for %v frames, want 1 for 3", w, f)
	}
	waitIdle(t, c)
	// The connection holds no queue while idle, and the next frame makes
	// its sender the writer again.
	if !c.QueueFrame([]byte("four")) {
		t.Fatal("a frame on an idle connection did not ask for a flush")
	}
	c.Flush()
	if got := readN(t, peer, 4); string(got) != "four" {
		t.Fatalf("peer read %q", got)
	}
}

// A socket whose peer stops reading fills up; senders must not wait for it
// (the hub's worker and the read loop send), and nothing is lost or
// reordered once the peer reads again.
func TestOutboxHandsAFullSocketToAGoroutine(t *testing.T) {
	c, peer := outboxConn(t)
	if err := c.nc.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	const frames, size = 64, 32 << 10 // 2 MiB: far more than the socket takes
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := range frames {
			f := bytes.Repeat([]byte{byte(i)}, size)
			c.enqueue(f, false)
		}
	}()
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("sending waited for a peer that does not read")
	}
	for i := range frames {
		got := readN(t, peer, size)
		if got[0] != byte(i) || got[size-1] != byte(i) {
			t.Fatalf("frame %d: got bytes of frame %d", i, got[0])
		}
	}
	waitIdle(t, c)
	if f := testutil.ToFloat64(c.d.Metrics.FramesOut); f != frames {
		t.Fatalf("FramesOut %v, want %d", f, frames)
	}
}

// BenchmarkOutboxFanOut1000: one frame queued on 1,000 connections, then
// each flushed — the hub's part of a delivery, on real loopback sockets
// whose peers a goroutine per socket drains (as the floor's readers do).
// One op is 1,000 deliveries.
func BenchmarkOutboxFanOut1000(b *testing.B) {
	const members = 1000
	conns := make([]*Conn, members)
	for i := range conns {
		c, peer := outboxConn(b)
		conns[i] = c
		go func() { _, _ = io.Copy(io.Discard, peer) }()
	}
	frame := bytes.Repeat([]byte{'m'}, 100)
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	for range b.N {
		for _, c := range conns {
			if c.QueueFrame(frame) {
				c.Flush()
			}
		}
	}
	b.StopTimer()
	// Process CPU (writer and readers), comparable with `roomcast bench
	// floor`'s CPU per delivery.
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N*members), "cpu-ns/delivery")
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
