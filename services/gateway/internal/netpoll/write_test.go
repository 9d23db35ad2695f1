//go:build linux

package netpoll

import (
	"bytes"
	"io"
	"net"
	"testing"

	"github.com/roomcast/roomcast/pkg/testenv"
)

func TestTryWriteWritesEverythingInOrder(t *testing.T) {
	c, peer := testenv.TCPPair(t)
	rc := rawConn(t, c)
	var bufs [][]byte
	var want []byte
	for i := range 3000 { // more than one writev's worth of buffers
		b := []byte{byte(i), byte(i >> 8), 0xAB}
		bufs = append(bufs, b)
		want = append(want, b...)
	}
	bufs = append(bufs, nil) // empty buffers are skipped
	rest, err := TryWrite(rc, bufs)
	if err != nil || rest != nil {
		t.Fatalf("TryWrite = %d buffers left, %v; want everything written", len(rest), err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes differ")
	}
}

// A socket whose peer does not read fills up: TryWrite returns what did not
// fit instead of waiting, and writing that rest later completes the stream.
func TestTryWriteReturnsTheRestWhenTheSocketIsFull(t *testing.T) {
	c, peer := testenv.TCPPair(t)
	if err := c.SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	rc := rawConn(t, c)
	chunk := bytes.Repeat([]byte{'x'}, 64<<10)
	var bufs [][]byte
	for i := range 64 { // 4 MiB: more than loopback buffers take
		b := bytes.Clone(chunk)
		b[0] = byte(i)
		bufs = append(bufs, b)
	}
	rest, err := TryWrite(rc, bufs)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) == 0 {
		t.Fatal("4 MiB to a peer that does not read all went at once")
	}
	left := 0
	for _, b := range rest {
		left += len(b)
	}
	done := make(chan error, 1)
	go func() {
		_, err := (*net.Buffers)(&rest).WriteTo(c)
		done <- err
	}()
	got, err := io.ReadAll(io.LimitReader(peer, int64(64*len(chunk))))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i := range 64 {
		if got[i*len(chunk)] != byte(i) {
			t.Fatalf("chunk %d out of place", i)
		}
	}
	if left == 0 || len(got) != 64*len(chunk) {
		t.Fatalf("got %d bytes", len(got))
	}
}

func TestTryWriteOnAClosedSocketFails(t *testing.T) {
	c, _ := testenv.TCPPair(t)
	rc := rawConn(t, c)
	c.Close()
	bufs := [][]byte{[]byte("hello")}
	rest, err := TryWrite(rc, bufs)
	if err == nil || len(rest) != 1 {
		t.Fatalf("TryWrite on a closed socket = %d left, %v", len(rest), err)
	}
}

func BenchmarkTryWrite(b *testing.B) {
	c, peer := testenv.TCPPair(b)
	rc := rawConn(b, c)
	go func() { _, _ = io.Copy(io.Discard, peer) }()
	frame := bytes.Repeat([]byte{'m'}, 100)
	bufs := make([][]byte, 1)
	b.ReportAllocs()
	for b.Loop() {
		bufs[0] = frame
		if _, err := TryWrite(rc, bufs); err != nil {
			b.Fatal(err)
		}
	}
}
