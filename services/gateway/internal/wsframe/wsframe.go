// Package wsframe builds complete server-side WebSocket frames (header and
// payload in one slice). A message fanned out to many members is encoded
// once into such a frame and the same bytes are written to every socket.
package wsframe

import (
	"bytes"

	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// Data wraps payload into one final data frame (text or binary).
func Data(binary bool, payload []byte) []byte {
	op := ws.OpText
	if binary {
		op = ws.OpBinary
	}
	return frame(op, payload)
}

// Close builds a close frame with a code and a reason (truncated so the
// control frame stays within 125 bytes).
func Close(code protocol.CloseCode, reason string) []byte {
	if len(reason) > 120 {
		reason = reason[:120]
	}
	return frame(ws.OpClose, ws.NewCloseFrameBody(ws.StatusCode(code), reason))
}

// Ping is a ping frame with an empty payload.
var Ping = frame(ws.OpPing, nil)

// Pong answers a ping with its payload.
func Pong(payload []byte) []byte { return frame(ws.OpPong, payload) }

// Encode encodes a server frame with codec into a complete WebSocket frame.
func Encode(codec protocol.Codec, f *protocol.ServerFrame) ([]byte, error) {
	// Reserve the largest header in front so the payload is encoded in
	// place and the header is written just before it: one allocation.
	buf := make([]byte, ws.MaxHeaderSize, ws.MaxHeaderSize+256)
	buf, err := codec.AppendServerFrame(buf, f)
	if err != nil {
		return nil, err
	}
	payload := buf[ws.MaxHeaderSize:]
	op := ws.OpText
	if codec.Binary() {
		op = ws.OpBinary
	}
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(payload))}
	start := ws.MaxHeaderSize - ws.HeaderSize(h)
	w := bytes.NewBuffer(buf[start:start])
	if err := ws.WriteHeader(w, h); err != nil {
		return nil, err
	}
	return buf[start:], nil
}

func frame(op ws.OpCode, payload []byte) []byte {
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(payload))}
	buf := bytes.NewBuffer(make([]byte, 0, ws.HeaderSize(h)+len(payload)))
	_ = ws.WriteHeader(buf, h) // writes to a bytes.Buffer cannot fail
	buf.Write(payload)
	return buf.Bytes()
}
