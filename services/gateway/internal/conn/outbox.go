package conn

import (
	"net"
	"time"

	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/services/gateway/internal/wsframe"
)

// The outbox is the connection's bounded outbound queue with one writer at a
// time. A frame queued on an idle connection starts a writer goroutine that
// drains everything queued meanwhile in one vectored write, then exits, so
// an idle connection holds no writer goroutine and a busy one coalesces
// frames into few syscalls.

// SendFrame implements hub.Member. It never blocks: a connection whose
// queue is over its cap is a slow consumer and is closed with 4007.
func (c *Conn) SendFrame(frame []byte) {
	c.enqueue(frame, false)
}

func (c *Conn) enqueue(frame []byte, final bool) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	if !final && (len(c.queue) >= c.d.Config.OutboxFrames || c.queued+len(frame) > c.d.Config.OutboxBytes) {
		c.mu.Unlock()
		c.d.Metrics.SlowConsumers.Inc()
		c.Close(protocol.CloseSlowConsumer, "outbound buffer overflow")
		return false
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	if final {
		c.closing = true
	}
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.flush()
	}
	return true
}

func (c *Conn) flush() {
	var batch net.Buffers
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.writing = false
			closing := c.closing
			c.mu.Unlock()
			if closing {
				c.closeWritten()
			}
			return
		}
		batch = append(batch[:0], c.queue...)
		clear(c.queue)
		c.queue = c.queue[:0]
		c.queued = 0
		c.mu.Unlock()

		frames := len(batch)
		var n int
		for _, b := range batch {
			n += len(b)
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.d.Config.WriteTimeout))
		// WriteTo is one writev for the whole batch; it consumes batch.
		if _, err := batch.WriteTo(c.nc); err != nil {
			// The peer is gone or stuck: nothing more can be written.
			c.mu.Lock()
			c.closing = true
			c.queue = nil
			c.writing = false
			c.mu.Unlock()
			_ = c.nc.Close()
			return
		}
		c.d.Metrics.FramesOut.Add(float64(frames))
		c.d.Metrics.Writes.Inc()
		c.d.Metrics.BytesOut.Add(float64(n))
	}
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
