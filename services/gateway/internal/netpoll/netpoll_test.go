//go:build linux

package netpoll

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/roomcast/roomcast/pkg/testenv"
)

type readyChan chan struct{}

func (r readyChan) Ready() { r <- struct{}{} }

func rawConn(t testing.TB, c *net.TCPConn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func waitReady(t *testing.T, r readyChan, what string) {
	t.Helper()
	select {
	case <-r:
	case <-time.After(10 * time.Second):
		t.Fatalf("no Ready %s", what)
	}
}

func TestReadyWhenReadableAndAfterRearm(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	c, peer := testenv.TCPPair(t)
	rc := rawConn(t, c)
	r := make(readyChan, 4)
	d, err := p.Add(rc, r)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove()
	if Pending(rc) {
		t.Fatal("Pending on a socket with nothing to read")
	}
	if _, err := peer.Write([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	waitReady(t, r, "after the peer wrote")
	if !Pending(rc) {
		t.Fatal("not Pending with two bytes waiting")
	}
	// Level-triggered: re-armed with input still unread, it reports again.
	if err := d.Rearm(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, r, "after re-arming with input unread")
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	if Pending(rc) {
		t.Fatal("Pending after everything was read")
	}
	// The peer's close is a readiness too.
	if err := d.Rearm(); err != nil {
		t.Fatal(err)
	}
	peer.Close()
	waitReady(t, r, "after the peer closed")
	if !Pending(rc) {
		t.Fatal("not Pending after the peer closed (a read returns EOF)")
	}
}

func TestRemovedSocketCannotBeRearmed(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	c, _ := testenv.TCPPair(t)
	d, err := p.Add(rawConn(t, c), make(readyChan, 1))
	if err != nil {
		t.Fatal(err)
	}
	d.Remove()
	if err := d.Rearm(); err == nil {
		t.Fatal("Rearm after Remove succeeded")
	}
	p.mu.RLock()
	got := p.slots[d.fd].gen
	p.mu.RUnlock()
	if got != 0 {
		t.Fatalf("slot of a removed socket still has generation %d", got)
	}
}

// A socket that reuses a removed socket's descriptor gets its own reports.
func TestDescriptorReuse(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := testenv.TCPPair(t)
	old := make(readyChan, 4)
	d1, err := p.Add(rawConn(t, c1), old)
	if err != nil {
		t.Fatal(err)
	}
	d1.Remove()
	c1.Close()
	c2, peer2 := testenv.TCPPair(t)
	cur := make(readyChan, 4)
	d2, err := p.Add(rawConn(t, c2), cur)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Remove()
	if d2.gen == d1.gen {
		t.Fatal("two registrations share a generation")
	}
	if _, err := peer2.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitReady(t, cur, "for the new socket")
	if len(old) != 0 {
		t.Fatal("the removed socket's handler was told about the new one")
	}
}

func TestPendingOnClosedSocket(t *testing.T) {
	c, _ := testenv.TCPPair(t)
	rc := rawConn(t, c)
	c.Close()
	if !Pending(rc) {
		t.Fatal("a closed socket must count as pending: reading it fails at once")
	}
}

// WaitReadable returns when input arrives, consuming none of it; at the
// read deadline it reports os.ErrDeadlineExceeded; input that came before
// the call counts at once.
func TestWaitReadable(t *testing.T) {
	c, peer := testenv.TCPPair(t)
	rc := rawConn(t, c)

	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := WaitReadable(rc); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("with nothing to read: %v, want the deadline", err)
	}

	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- WaitReadable(rc) }()
	if _, err := peer.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("after the peer wrote: %v", err)
	}
	// Already readable: returns at once, and still consumes nothing.
	if err := WaitReadable(rc); err != nil {
		t.Fatalf("with input waiting: %v", err)
	}
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "hi" {
		t.Fatalf("read %q, %v after waiting: want the peer's bytes untouched", b, err)
	}
}
