// Package envelope is the form a room message takes between Roomcast
// processes: in the AMQP body that carries it to gateway nodes and in the
// room's recovery stream in Redis. It is internal to the cluster; clients see
// protocol.Message.
//
// The encoding is a small versioned binary layout (version byte, flags,
// varints and length-prefixed fields) so that payload bytes travel without
// re-escaping and decoding allocates only the strings and the payload.
package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// Version is the current encoding version; Decode rejects others.
const Version = 1

const (
	flagTransient = 1 << 0
	// flagBinary marks Data as opaque bytes rather than JSON text. Nodes
	// that predate it ignore the bit (and cannot pass such data to JSON
	// clients, which they never receive from those nodes' own clients).
	flagBinary = 1 << 1
)

// Envelope is one room message.
type Envelope struct {
	App       string
	Room      string
	Offset    uint64 // 0 until the room log assigns one; always 0 when Transient
	Epoch     string
	Event     string
	From      string
	Timestamp int64 // unix milliseconds at the publishing node
	Transient bool
	// Binary marks Data as opaque bytes (protocol.Message.Binary).
	Binary bool
	Data   []byte
}

// ErrMalformed reports bytes that are not an envelope.
var ErrMalformed = errors.New("envelope: malformed")

// Append encodes e onto dst.
func (e *Envelope) Append(dst []byte) []byte {
	dst = e.AppendHead(dst)
	dst = binary.AppendUvarint(dst, uint64(len(e.Data)))
	return append(dst, e.Data...)
}

// AppendHead encodes everything of e but its data, which comes last as a
// uvarint length and the bytes. A Redis script that builds the data itself
// (presence events) appends those two to the head to get what Append gives.
func (e *Envelope) AppendHead(dst []byte) []byte {
	var flags byte
	if e.Transient {
		flags |= flagTransient
	}
	if e.Binary {
		flags |= flagBinary
	}
	dst = append(dst, Version, flags)
	dst = binary.AppendUvarint(dst, e.Offset)
	dst = binary.AppendVarint(dst, e.Timestamp)
	for _, s := range [...]string{e.App, e.Room, e.Epoch, e.Event, e.From} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// Marshal encodes e into a new slice.
func (e *Envelope) Marshal() []byte {
	n := 24 + len(e.App) + len(e.Room) + len(e.Epoch) + len(e.Event) + len(e.From) + len(e.Data)
	return e.Append(make([]byte, 0, n))
}

// Decode parses b. Data aliases b; callers that keep the envelope must not
// modify b afterwards.
func Decode(b []byte) (Envelope, error) {
	var e Envelope
	if len(b) < 2 {
		return e, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if b[0] != Version {
		return e, fmt.Errorf("%w: version %d", ErrMalformed, b[0])
	}
	e.Transient = b[1]&flagTransient != 0
	e.Binary = b[1]&flagBinary != 0
	b = b[2:]
	var n int
	if e.Offset, n = binary.Uvarint(b); n <= 0 {
		return e, fmt.Errorf("%w: offset", ErrMalformed)
	}
	b = b[n:]
	if e.Timestamp, n = binary.Varint(b); n <= 0 {
		return e, fmt.Errorf("%w: timestamp", ErrMalformed)
	}
	b = b[n:]
	for _, s := range [...]*string{&e.App, &e.Room, &e.Epoch, &e.Event, &e.From} {
		var field []byte
		var err error
		if field, b, err = lengthPrefixed(b); err != nil {
			return e, err
		}
		*s = string(field)
	}
	data, rest, err := lengthPrefixed(b)
	if err != nil {
		return e, err
	}
	if len(rest) != 0 {
		return e, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	if len(data) > 0 {
		e.Data = data
	}
	return e, nil
}

func lengthPrefixed(b []byte) (field, rest []byte, err error) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return nil, nil, fmt.Errorf("%w: field length", ErrMalformed)
	}
	return b[n : n+int(l)], b[n+int(l):], nil
}

// Message converts e to the client-facing message.
func (e *Envelope) Message() protocol.Message {
	return protocol.Message{
		Room:      e.Room,
		Offset:    e.Offset,
		Epoch:     e.Epoch,
		Event:     e.Event,
		Data:      e.Data,
		Binary:    e.Binary && len(e.Data) > 0,
		From:      e.From,
		Timestamp: e.Timestamp,
		Transient: e.Transient,
	}
}
