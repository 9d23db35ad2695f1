package client

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// readLoop is the connection's only reader. It answers pings, routes
// replies to their requests and queues messages for the handlers, until the
// connection ends.
func (c *wire) readLoop() {
	var err error
	for {
		var payload []byte
		if payload, err = c.readMessage(); err != nil {
			break
		}
		if err = c.handleFrame(payload); err != nil {
			break
		}
	}
	c.finish(err)
}

// finish ends the connection after the reader stopped with err.
func (c *wire) finish(err error) {
	if code, ok := closeCodeFor(err); ok {
		_ = c.writeClose(code, "")
	}
	if c.closing.Load() && !errors.Is(err, ErrClosed) {
		// Close raced with a read error or the server's acknowledgement.
		err = ErrClosed
	}
	c.setErr(err)
	_ = c.conn.Close()
	c.pendingMu.Lock()
	c.ended = true
	c.pendingMu.Unlock()
	close(c.readerDone) // requests in flight now fail with Err

	final := c.Err()
	if errors.Is(final, ErrClosed) {
		c.log.Debug("roomcast: connection closed", "connection_id", c.info.ConnectionID)
	} else {
		c.log.Info("roomcast: connection lost", "connection_id", c.info.ConnectionID, "err", final)
	}
}

// closeCodeFor is the close code the client sends when it gives up on the
// connection because of err; ok is false when no close frame is due (the
// server closed, or the transport failed).
func closeCodeFor(err error) (ws.StatusCode, bool) {
	switch {
	case errors.Is(err, ErrMessageBufferFull):
		// "Going away" rather than normal: the session is worth resuming.
		return ws.StatusGoingAway, true
	case errors.Is(err, ErrMessageTooLarge):
		return ws.StatusMessageTooBig, true
	case errors.Is(err, wsutil.ErrInvalidUTF8):
		return ws.StatusInvalidFramePayloadData, true
	case errors.Is(err, errBinaryFrame):
		return ws.StatusUnsupportedData, true
	case errors.Is(err, ErrProtocol):
		return ws.StatusProtocolError, true
	}
	return 0, false
}

// errBinaryFrame is a data frame of the other kind than the negotiated
// codec's (binary on JSON, text on msgpack).
var errBinaryFrame = errors.New("frame type does not match the negotiated subprotocol")

// readMessage returns the payload of the next data message, handling the
// control frames before it.
func (c *wire) readMessage() ([]byte, error) {
	for {
		if c.readTimeout > 0 {
			// Moving the deadline costs a timer update: do it at most every
			// eighth of the timeout (a dead server is noticed up to that
			// much sooner), not on every frame.
			// time.Since reads only the monotonic clock: half a time.Now.
			if time.Since(c.deadlineAt) >= c.readTimeout/8 {
				now := time.Now()
				_ = c.conn.SetReadDeadline(now.Add(c.readTimeout))
				c.deadlineAt = now
			}
		}
		hdr, err := c.rd.NextFrame()
		if err != nil {
			return nil, c.readError(err)
		}
		switch {
		case hdr.OpCode.IsControl():
			// CheckHeader limited control frames to 125 bytes.
			p, err := io.ReadAll(c.rd)
			if err != nil {
				return nil, c.readError(err)
			}
			if err := c.handleControl(hdr.OpCode, p); err != nil {
				return nil, err
			}
		case hdr.OpCode == ws.OpText && !c.codec.Binary(), hdr.OpCode == ws.OpBinary && c.codec.Binary():
			var p []byte
			var err error
			if hdr.Fin {
				// One frame: its length is known (and within
				// MaxMessageBytes, which NextFrame checked).
				p = make([]byte, hdr.Length)
				if _, err = io.ReadFull(c.rd, p); err == nil {
					err = c.rd.Discard() // ends the frame (UTF-8 check)
				}
			} else {
				p, err = io.ReadAll(c.rd)
			}
			if err != nil {
				return nil, c.readError(err)
			}
			return p, nil
		default:
			return nil, fmt.Errorf("%w: %w", ErrProtocol, errBinaryFrame)
		}
	}
}

// readError classifies an error from the frame reader.
func (c *wire) readError(err error) error {
	var ce *CloseError
	switch {
	case errors.As(err, &ce):
		return err // from handleIntermediate
	case errors.Is(err, wsutil.ErrFrameTooLarge), errors.Is(err, wsutil.ErrMessageTooLarge):
		return fmt.Errorf("%w (%d bytes): %w", ErrMessageTooLarge, c.cfg.MaxMessageBytes, err)
	case errors.Is(err, wsutil.ErrInvalidUTF8):
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	case errors.Is(err, os.ErrDeadlineExceeded) && c.readTimeout > 0:
		return fmt.Errorf("%w (%s): %w", ErrHeartbeatTimeout, c.readTimeout, err)
	case isProtocolError(err):
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return fmt.Errorf("roomcast: read: %w", err)
}

// isProtocolError reports the frame-header violations ws.CheckHeader finds.
func isProtocolError(err error) bool {
	var pe ws.ProtocolError
	return errors.As(err, &pe)
}

// handleIntermediate handles a control frame that arrives between the
// fragments of a message.
func (c *wire) handleIntermediate(h ws.Header, r io.Reader) error {
	p, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return c.handleControl(h.OpCode, p)
}

// handleControl answers pings with pongs and turns a close frame into a
// *CloseError after acknowledging it.
func (c *wire) handleControl(op ws.OpCode, p []byte) error {
	switch op {
	case ws.OpPing:
		return c.writeFrame(ws.OpPong, p)
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(p)
		if len(p) < 2 {
			code = ws.StatusNoStatusRcvd
		}
		_ = c.writeClose(echoCode(code), "")
		return &CloseError{Code: protocol.CloseCode(code), Reason: reason}
	}
	return nil // pong: nothing to do
}

// echoCode is the code to echo in the close acknowledgement (RFC 6455
// 5.5.1): the server's, unless it is one that must never be sent on the wire.
func echoCode(code ws.StatusCode) ws.StatusCode {
	switch {
	case code == ws.StatusNoStatusRcvd, code == ws.StatusAbnormalClosure, code == ws.StatusTLSHandshake:
		return 0
	case code.IsProtocolSpec(), code.IsApplicationSpec(), code.IsPrivateSpec():
		return code
	}
	return 0
}

// handleFrame dispatches one decoded server frame.
func (c *wire) handleFrame(payload []byte) error {
	f, err := c.codec.DecodeServerFrame(payload)
	if err != nil {
		// Skip rather than fail: a newer server may send frame types this
		// client does not know yet.
		c.log.Warn("roomcast: skipping a server frame that could not be decoded", "err", err)
		return nil
	}
	switch {
	case f.Reply != nil:
		c.routeReply(f.Reply)
	case f.Error != nil:
		if f.Error.ID != 0 {
			// A command the server could not decode but could find the id of.
			c.routeReply(&protocol.Reply{ID: f.Error.ID, Error: f.Error})
			return nil
		}
		c.log.Warn("roomcast: server reported an error", "code", f.Error.Code, "message", f.Error.Message)
	case f.Message != nil:
		if !c.accept(f.Message, nil) {
			return ErrMessageBufferFull
		}
	case f.Presence != nil:
		// A presence event is ordered and recovered like a message of the
		// room's presence channel: m carries its place there.
		p := f.Presence
		m := &protocol.Message{Room: protocol.PresenceChannel(p.Room), Offset: p.Offset, Epoch: p.Epoch, Timestamp: p.Timestamp}
		if !c.accept(m, p) {
			return ErrMessageBufferFull
		}
	case f.Metrics != nil:
		if c.metrics != nil {
			c.metrics(f.Metrics)
		}
	case f.Connected != nil:
		c.log.Warn("roomcast: ignoring a repeated connected frame")
	}
	return nil
}

func (c *wire) routeReply(r *protocol.Reply) {
	c.pendingMu.Lock()
	cl := c.pending[r.ID]
	c.pendingMu.Unlock()
	if cl == nil {
		// The request's context was cancelled; nobody waits any more.
		c.log.Debug("roomcast: dropping a reply nobody waits for", "id", r.ID)
		return
	}
	if cl.hook != nil {
		cl.hook(r)
	}
	select {
	case cl.ch <- r:
	default:
		c.log.Warn("roomcast: server sent a second reply for one request", "id", r.ID)
	}
}

// writeFrame writes one frame, masking p in place (p must not be used
// afterwards). A write error ends the connection.
func (c *wire) writeFrame(op ws.OpCode, p []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closeSent {
		if op == ws.OpPong {
			return nil // no frames after a close frame; the close is on its way
		}
		return c.errOrClosed()
	}
	return c.writeLocked(op, p)
}

// writeClose writes a close frame with code (none when code is 0), once.
func (c *wire) writeClose(code ws.StatusCode, reason string) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closeSent {
		return nil
	}
	c.closeSent = true
	var body []byte
	if code != 0 {
		body = ws.NewCloseFrameBody(code, reason)
	}
	return c.writeLocked(ws.OpClose, body)
}

func (c *wire) writeLocked(op ws.OpCode, p []byte) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	f := ws.MaskFrameInPlace(ws.NewFrame(op, true, p))
	err := ws.WriteFrame(c.bw, f)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		c.setErr(fmt.Errorf("roomcast: write: %w", err))
		_ = c.conn.Close() // the reader fails next and ends the connection
		return c.errOrClosed()
	}
	return nil
}

// errOrClosed is the error for an operation on a connection that is ending.
func (c *wire) errOrClosed() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.err != nil {
		return c.err
	}
	return ErrClosed
}
