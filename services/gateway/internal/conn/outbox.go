package conn

import (
	"net"
	"sync"
	"time"

	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/services/gateway/internal/wsframe"
)

// The outbox is the connection's bounded outbound queue with one writer at a
// time: whoever queues a frame on a connection with nothing waiting becomes
// the writer and flushes.
//
// Flushing writes at once on the flushing goroutine, without waiting: one
// non-blocking write (a writev for several frames) on the socket. Only when
// the socket's send buffer is full does a goroutine take over, wait for it
// with the write timeout and drain what is queued meanwhile. So a delivery
// to a healthy connection costs one syscall and no goroutine hand-off, and
// an idle connection holds no writer goroutine and no queue.
//
// The hub queues a message on all its members first and flushes each
// afterwards (QueueFrame, then Flush), taking every message already waiting
// before it flushes: frames that arrive together for a connection go out in
// one write, and a busy room coalesces.

// queues recycles outbox queues: a connection holds one only while frames
// are waiting.
var queues = sync.Pool{New: func() any { q := make([][]byte, 0, 8); return &q }}

func releaseQueue(q *[][]byte) {
	if cap(*q) > 1024 {
		return // a burst's queue: let it go
	}
	clear(*q)
	*q = (*q)[:0]
	queues.Put(q)
}

// QueueFrame implements hub.Member: it queues without writing and reports
// whether the caller must call Flush (the connection had nothing waiting).
// It never blocks: a connection whose queue is over its cap is a slow
// consumer and is closed with 4007.
func (c *Conn) QueueFrame(frame []byte) bool {
	_, first := c.push(frame, false)
	return first
}

// enqueue queues a frame and flushes at once if the caller became the
// writer. It reports whether the frame was taken.
func (c *Conn) enqueue(frame []byte, final bool) bool {
	ok, first := c.push(frame, final)
	if first {
		c.Flush()
	}
	return ok
}

// push appends frame to the queue. first reports that the caller is now the
// writer and must flush.
func (c *Conn) push(frame []byte, final bool) (ok, first bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false, false
	}
	if !final && c.queue != nil && (len(*c.queue) >= c.d.Config.OutboxFrames || c.queued+len(frame) > c.d.Config.OutboxBytes) {
		c.mu.Unlock()
		c.d.Metrics.SlowConsumers.Inc()
		c.Close(protocol.CloseSlowConsumer, "outbound buffer overflow")
		return false, false
	}
	if c.queue == nil {
		c.queue = queues.Get().(*[][]byte)
	}
	*c.queue = append(*c.queue, frame)
	c.queued += len(frame)
	if final {
		c.closing = true
	}
	first = !c.writing
	c.writing = true
	c.mu.Unlock()
	return true, first
}

// take hands the writer everything queued and its byte count. When nothing
// is queued it ends the writer's turn and returns nil; if the close frame
// was the last thing written, the read side then gets its grace.
func (c *Conn) take() (*[][]byte, int) {
	c.mu.Lock()
	q, n, closing := c.queue, c.queued, c.closing
	c.queue, c.queued = nil, 0
	if q == nil {
		c.writing = false
	}
	c.mu.Unlock()
	if q == nil && closing {
		c.closeWritten()
	}
	return q, n
}

// Flush implements hub.Member: the writer writes what is queued without
// waiting, and hands over to a goroutine only when the socket is full.
func (c *Conn) Flush() {
	for {
		q, n := c.take()
		if q == nil {
			return
		}
		if c.poll == nil {
			go c.drain(q, *q, n)
			return
		}
		rest, err := c.poll.tryWrite(*q)
		c.d.Metrics.Writes.Inc()
		if err != nil {
			releaseQueue(q)
			c.writeFailed()
			return
		}
		if len(rest) > 0 {
			go c.drain(q, rest, n)
			return
		}
		c.wrote(len(*q), n)
		releaseQueue(q)
	}
}

// drain writes rest (the unwritten tail of q) waiting as long as the write
// timeout allows, then goes on writing whatever was queued meanwhile.
func (c *Conn) drain(q *[][]byte, rest [][]byte, n int) {
	for {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.d.Config.WriteTimeout))
		// One writev for the whole batch; WriteTo consumes the slice.
		bufs := net.Buffers(rest)
		_, err := bufs.WriteTo(c.nc)
		c.d.Metrics.Writes.Inc()
		if err != nil {
			releaseQueue(q)
			c.writeFailed()
			return
		}
		c.wrote(len(*q), n)
		releaseQueue(q)
		if q, n = c.take(); q == nil {
			return
		}
		rest = *q
	}
}

func (c *Conn) wrote(frames, bytes int) {
	c.d.Metrics.FramesOut.Add(float64(frames))
	c.d.Metrics.BytesOut.Add(float64(bytes))
}

// writeFailed: the peer is gone or stuck, nothing more can be written.
func (c *Conn) writeFailed() {
	c.mu.Lock()
	c.closing = true
	if c.queue != nil {
		releaseQueue(c.queue)
		c.queue, c.queued = nil, 0
	}
	c.writing = false
	c.mu.Unlock()
	_ = c.nc.Close()
}

// Close starts the closing handshake: the close frame is queued behind
// whatever is queued already, then the read side gets a short deadline to
// see the peer's close frame. Safe to call from any goroutine, many times.
func (c *Conn) Close(code protocol.CloseCode, reason string) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closeCode = code
	c.mu.Unlock()
	if c.enqueue(wsframe.Close(code, reason), true) {
		c.d.Metrics.Closes.WithLabelValues(code.String()).Inc()
	}
}

// closeWritten runs once the close frame is on the wire.
func (c *Conn) closeWritten() {
	// Give the peer a moment to answer with its close frame; the read loop
	// ends on that, on EOF, or at this deadline, and then closes the socket.
	_ = c.nc.SetReadDeadline(time.Now().Add(closeGrace))
}

// closeGrace is how long a closing connection waits for the peer's close.
const closeGrace = 2 * time.Second
