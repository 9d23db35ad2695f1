package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Msgpack is the codec for SubprotocolMsgpack: one MessagePack map per
// binary frame, with the keys and values of the JSON encoding, except that
// a payload ("data") is a bin of opaque bytes (Binary) or a str holding the
// text of one JSON value. Payload bytes thus travel as they are, without
// base64. docs/protocol.md states the mapping.
var Msgpack Codec = msgpackCodec{}

type msgpackCodec struct{}

func (msgpackCodec) Subprotocol() string { return SubprotocolMsgpack }
func (msgpackCodec) Binary() bool        { return true }

// mpDecoder is a pooled decoder reading one frame.
type mpDecoder struct {
	d     *msgpack.Decoder
	r     bytes.Reader
	frame []byte // what r reads
	// typeErr is the first field of the wrong type (its value skipped):
	// the frame is refused, but its request id can still be read.
	typeErr string
	// recent is the last value read in each slot (see recentStr).
	recent [numSlots]string
	kbuf   [32]byte // a key's bytes (a local array would escape)
}

// Slots of mpDecoder.recent: str fields whose value repeats frame after
// frame on a connection (a room's name and epoch, the frame type, the
// sender), so that decoding them again allocates nothing.
const (
	slotType = iota
	slotOp
	slotRoom
	slotEpoch
	slotEvent
	slotFrom
	slotAction
	numSlots
)

var mpDecoders = sync.Pool{New: func() any { return &mpDecoder{d: msgpack.NewDecoder(nil)} }}

func getMPDecoder(frame []byte) *mpDecoder {
	m := mpDecoders.Get().(*mpDecoder)
	m.reset(frame)
	return m
}

func (m *mpDecoder) reset(frame []byte) {
	m.r.Reset(frame)
	m.frame = frame
	m.d.Reset(&m.r) // a *bytes.Reader is read directly, without a bufio layer
	m.typeErr = ""
}

func putMPDecoder(m *mpDecoder) {
	m.r.Reset(nil)
	m.frame = nil
	m.d.Reset(nil)
	mpDecoders.Put(m)
}

// errNotMsgpack is a structural error: truncated or invalid MessagePack.
var errNotMsgpack = errors.New("frame is not valid msgpack")

// mismatch records that field has the wrong type and skips its value.
func (m *mpDecoder) mismatch(field, want string) error {
	if m.typeErr == "" {
		m.typeErr = fmt.Sprintf("field %q must be %s", truncate(field, 64), want)
	}
	return m.skip()
}

// skip skips one value of any kind. It walks nested arrays and maps with a
// count of values still to skip instead of recursing (as Decoder.Skip
// does), so a frame of 90,000 nested arrays costs no deep stack.
func (m *mpDecoder) skip() error {
	for pending := 1; pending > 0; pending-- {
		c, err := m.peek()
		if err != nil {
			return err
		}
		switch {
		case isMPMap(c):
			n, err := m.d.DecodeMapLen()
			if err != nil {
				return errNotMsgpack
			}
			pending += 2 * n
		case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
			n, err := m.d.DecodeArrayLen()
			if err != nil {
				return errNotMsgpack
			}
			pending += n
		default: // a scalar, str, bin or ext: no nesting
			if !m.lenFits() || m.d.Skip() != nil {
				return errNotMsgpack
			}
		}
	}
	return nil
}

// lenFits reports whether the str, bin or ext value at the read position
// declares no more bytes than the frame has left (anything else fits).
// msgpack's decoder grows its reusable buffer by up to 1 MiB towards a
// declared length before it finds the frame short, and keeps that buffer:
// without this check every frame that claims a 4 GiB string would grow a
// pooled decoder by another MiB, for good.
func (m *mpDecoder) lenFits() bool {
	b, p := m.frame, len(m.frame)-m.r.Len()
	if p >= len(b) || !(isMPStr(b[p]) || isMPBin(b[p]) || isMPExt(b[p])) {
		return true // the read fails by itself, or the value has a fixed size
	}
	n, start, ok := declaredLen(b, p)
	return ok && n <= len(b)-start
}

func (m *mpDecoder) peek() (byte, error) {
	c, err := m.d.PeekCode()
	if err != nil {
		return 0, errNotMsgpack
	}
	return c, nil
}

func isMPUnsigned(c byte) bool {
	return msgpcode.IsFixedNum(c) && c <= msgpcode.PosFixedNumHigh ||
		c == msgpcode.Uint8 || c == msgpcode.Uint16 || c == msgpcode.Uint32 || c == msgpcode.Uint64
}

func isMPSigned(c byte) bool {
	return msgpcode.IsFixedNum(c) && c >= msgpcode.NegFixedNumLow ||
		c == msgpcode.Int8 || c == msgpcode.Int16 || c == msgpcode.Int32 || c == msgpcode.Int64
}

func isMPStr(c byte) bool {
	return msgpcode.IsFixedString(c) || c == msgpcode.Str8 || c == msgpcode.Str16 || c == msgpcode.Str32
}

func isMPBin(c byte) bool { return c == msgpcode.Bin8 || c == msgpcode.Bin16 || c == msgpcode.Bin32 }

// isMPExt is true for the ext codes that carry a length (not fixext).
func isMPExt(c byte) bool { return c == msgpcode.Ext8 || c == msgpcode.Ext16 || c == msgpcode.Ext32 }

func isMPMap(c byte) bool {
	return msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32
}

// uint reads a non-negative integer (nil is 0).
func (m *mpDecoder) uint(field string) (uint64, error) {
	c, err := m.peek()
	if err != nil {
		return 0, err
	}
	switch {
	case c == msgpcode.Nil:
		return 0, m.skip()
	case isMPUnsigned(c):
		v, err := m.d.DecodeUint64()
		if err != nil {
			return 0, errNotMsgpack
		}
		return v, nil
	case isMPSigned(c):
		v, err := m.d.DecodeInt64()
		if err != nil {
			return 0, errNotMsgpack
		}
		if v < 0 {
			m.setTypeErr(field, "a non-negative integer")
			return 0, nil
		}
		return uint64(v), nil
	}
	return 0, m.mismatch(field, "a non-negative integer")
}

// int reads an integer that fits in an int64 (nil is 0).
func (m *mpDecoder) int(field string) (int64, error) {
	c, err := m.peek()
	if err != nil {
		return 0, err
	}
	switch {
	case c == msgpcode.Nil:
		return 0, m.skip()
	case c == msgpcode.Uint64:
		v, err := m.d.DecodeUint64()
		if err != nil {
			return 0, errNotMsgpack
		}
		if v > math.MaxInt64 {
			m.setTypeErr(field, "an integer within int64")
			return 0, nil
		}
		return int64(v), nil
	case isMPUnsigned(c) || isMPSigned(c):
		v, err := m.d.DecodeInt64()
		if err != nil {
			return 0, errNotMsgpack
		}
		return v, nil
	}
	return 0, m.mismatch(field, "an integer")
}

// smallInt reads an integer that fits in an int.
func (m *mpDecoder) smallInt(field string) (int, error) {
	v, err := m.int(field)
	if v > math.MaxInt || v < math.MinInt {
		m.setTypeErr(field, "an integer within int")
		return 0, err
	}
	return int(v), err
}

func (m *mpDecoder) setTypeErr(field, want string) {
	if m.typeErr == "" {
		m.typeErr = fmt.Sprintf("field %q must be %s", truncate(field, 64), want)
	}
}

// float reads any number as a float64 (nil is 0).
func (m *mpDecoder) float(field string) (float64, error) {
	c, err := m.peek()
	if err != nil {
		return 0, err
	}
	switch {
	case c == msgpcode.Nil:
		return 0, m.skip()
	case c == msgpcode.Float || c == msgpcode.Double:
		v, err := m.d.DecodeFloat64()
		if err != nil {
			return 0, errNotMsgpack
		}
		return v, nil
	case c == msgpcode.Uint64:
		v, err := m.d.DecodeUint64()
		if err != nil {
			return 0, errNotMsgpack
		}
		return float64(v), nil
	case isMPUnsigned(c) || isMPSigned(c):
		v, err := m.d.DecodeInt64()
		if err != nil {
			return 0, errNotMsgpack
		}
		return float64(v), nil
	}
	return 0, m.mismatch(field, "a number")
}

// str reads a UTF-8 str (nil is "").
func (m *mpDecoder) str(field string) (string, error) {
	c, err := m.peek()
	if err != nil {
		return "", err
	}
	switch {
	case c == msgpcode.Nil:
		return "", m.skip()
	case isMPStr(c):
		if !m.lenFits() {
			return "", errNotMsgpack
		}
		s, err := m.d.DecodeString()
		if err != nil {
			return "", errNotMsgpack
		}
		if !utf8.ValidString(s) {
			m.setTypeErr(field, "valid UTF-8")
			return "", nil
		}
		return s, nil
	}
	return "", m.mismatch(field, "a string")
}

// recentStr reads a str like str, but returns the string it returned for
// the same slot last time when the bytes are the same, instead of
// allocating it again: the receiving side of a busy room decodes the same
// room, epoch and type in every frame. It reads the bytes in place, in the
// frame (the decoder reads m.r directly, so moving m.r moves it too).
func (m *mpDecoder) recentStr(field string, slot int) (string, error) {
	c, err := m.peek()
	if err != nil {
		return "", err
	}
	if !isMPStr(c) {
		return m.str(field) // nil, or the wrong type
	}
	v, next, ok := rawStr(m.frame, len(m.frame)-m.r.Len())
	if !ok {
		return "", errNotMsgpack // truncated, or longer than the frame
	}
	if _, err := m.r.Seek(int64(next), io.SeekStart); err != nil {
		return "", errNotMsgpack
	}
	s, ok := m.remember(slot, v)
	if !ok {
		m.setTypeErr(field, "valid UTF-8")
	}
	return s, nil
}

// remember returns v as a string: the slot's last one when the bytes are
// the same (comparing allocates nothing), else a new one that the slot
// keeps. ok is false, and s "", when v is not UTF-8.
func (m *mpDecoder) remember(slot int, v []byte) (s string, ok bool) {
	if s := m.recent[slot]; s == string(v) {
		return s, true
	}
	if !utf8.Valid(v) {
		return "", false
	}
	s = string(v)
	m.recent[slot] = s
	return s, true
}

func (m *mpDecoder) bool(field string) (bool, error) {
	c, err := m.peek()
	if err != nil {
		return false, err
	}
	switch c {
	case msgpcode.Nil:
		return false, m.skip()
	case msgpcode.True, msgpcode.False:
		v, err := m.d.DecodeBool()
		if err != nil {
			return false, errNotMsgpack
		}
		return v, nil
	}
	return false, m.mismatch(field, "a boolean")
}

// data reads a payload: bin (binary bytes; an empty bin is no data), str
// (the UTF-8 text of one JSON value) or nil (no data).
func (m *mpDecoder) data(field string) (data []byte, binary bool, err error) {
	c, err := m.peek()
	if err != nil {
		return nil, false, err
	}
	switch {
	case c == msgpcode.Nil:
		return nil, false, m.skip()
	case isMPBin(c), isMPStr(c):
		if !m.lenFits() {
			return nil, false, errNotMsgpack
		}
		// DecodeBytes copies: the frame buffer is reused for the next frame.
		b, err := m.d.DecodeBytes()
		if err != nil {
			return nil, false, errNotMsgpack
		}
		if len(b) == 0 {
			return nil, false, nil
		}
		if isMPBin(c) {
			return b, true, nil
		}
		if !utf8.Valid(b) || !json.Valid(b) {
			m.setTypeErr(field, "bin, or a str of UTF-8 JSON text")
			return nil, false, nil
		}
		return b, false, nil
	}
	return nil, false, m.mismatch(field, "bin, or a str of UTF-8 JSON text")
}

// mapLen reads a map header; ok is false (and the value skipped) for
// anything else. nil is an empty map.
func (m *mpDecoder) mapLen(field string) (n int, ok bool, err error) {
	c, err := m.peek()
	if err != nil {
		return 0, false, err
	}
	switch {
	case c == msgpcode.Nil:
		return 0, false, m.skip()
	case isMPMap(c):
		n, err := m.d.DecodeMapLen()
		if err != nil {
			return 0, false, errNotMsgpack
		}
		return n, true, nil
	}
	return 0, false, m.mismatch(field, "a map")
}

// mpKeys interns every key the decoders know, so reading a key allocates
// nothing.
var mpKeys = func() map[string]string {
	keys := map[string]string{}
	for _, k := range []string{
		"id", "op", "room", "event", "data", "transient", "idempotency_key", "since", "session_id",
		"resume_token", "cursor", "limit", "token", "epoch", "from_offset", "to_offset", "start", "end",
		"direction", "interval_ms", "offset", "type", "connection_id", "client_id", "node", "heartbeat_ms",
		"limits", "error", "position", "recovered", "rooms", "members", "count", "messages", "action",
		"member", "metrics", "from", "ts", "max_message_bytes", "max_room_name_bytes", "max_rooms",
		"publish_rate", "publish_burst", "code", "message", "clients", "connections", "message_rate",
	} {
		keys[k] = k
	}
	return keys
}()

// key reads a map key, which must be a str. A key no decoder knows comes
// back as "" (its value is then skipped).
func (m *mpDecoder) key() (string, error) {
	buf := &m.kbuf
	c, err := m.peek()
	if err != nil {
		return "", err
	}
	if !isMPStr(c) {
		if err := m.skip(); err != nil {
			return "", err
		}
		m.setTypeErr("(key)", "a string")
		return "", nil
	}
	n, err := m.d.DecodeBytesLen()
	if err != nil || n < 0 {
		return "", errNotMsgpack
	}
	if n > len(buf) {
		// Unknown: discard its bytes in pieces.
		for n > 0 {
			k := min(n, len(buf))
			if m.d.ReadFull(buf[:k]) != nil {
				return "", errNotMsgpack
			}
			n -= k
		}
		return "", nil
	}
	if m.d.ReadFull(buf[:n]) != nil {
		return "", errNotMsgpack
	}
	return mpKeys[string(buf[:n])], nil
}

// position reads {"offset": uint, "epoch": str}.
func (m *mpDecoder) position(field string) (*jsonPosition, error) {
	n, ok, err := m.mapLen(field)
	if err != nil || !ok {
		return nil, err
	}
	p := &jsonPosition{}
	for range n {
		k, err := m.key()
		if err != nil {
			return nil, err
		}
		switch k {
		case "offset":
			p.Offset, err = m.uint(field + ".offset")
		case "epoch":
			p.Epoch, err = m.str(field + ".epoch")
		default:
			err = m.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (msgpackCodec) DecodeCommand(frame []byte) (Command, error) {
	m := getMPDecoder(frame)
	defer putMPDecoder(m)
	w, data, binary, idOK, err := m.command()
	switch {
	case err != nil:
		return Command{}, NewError(CodeBadRequest, "frame is not a valid command: "+err.Error())
	case m.r.Len() != 0:
		return Command{}, NewError(CodeBadRequest, "frame is not a valid command: bytes after the command map")
	case m.typeErr != "":
		perr := NewError(CodeBadRequest, "frame is not a valid command: "+m.typeErr)
		if idOK && w.ID != nil {
			perr.ID = *w.ID
		}
		return Command{}, perr
	}
	c, err := w.command()
	if err != nil {
		return Command{}, err
	}
	c.Data, c.Binary = data, binary
	return c, nil
}

// command reads a command map into the JSON encoding's wire shape (the
// same keys) plus its data. idOK is false when "id" was of the wrong type.
func (m *mpDecoder) command() (w jsonCommand, data []byte, binary, idOK bool, err error) {
	c, err := m.peek()
	if err != nil {
		return w, nil, false, false, err
	}
	if !isMPMap(c) {
		return w, nil, false, false, errors.New("a command must be a msgpack map")
	}
	n, err := m.d.DecodeMapLen()
	if err != nil {
		return w, nil, false, false, errNotMsgpack
	}
	idOK = true
	for range n {
		k, err := m.key()
		if err != nil {
			return w, nil, false, false, err
		}
		switch k {
		case "id":
			before := m.typeErr
			var id uint64
			id, err = m.uint(k)
			if m.typeErr != before {
				idOK = false
			}
			w.ID = &id
		case "op":
			var op string
			op, err = m.recentStr(k, slotOp)
			w.Op = Op(op)
		case "room":
			w.Room, err = m.recentStr(k, slotRoom)
		case "event":
			w.Event, err = m.recentStr(k, slotEvent)
		case "data":
			data, binary, err = m.data(k)
		case "transient":
			w.Transient, err = m.bool(k)
		case "idempotency_key":
			w.IdempotencyKey, err = m.str(k)
		case "since":
			w.Since, err = m.position(k)
		case "session_id":
			w.SessionID, err = m.str(k)
		case "resume_token":
			w.ResumeToken, err = m.str(k)
		case "cursor":
			w.Cursor, err = m.str(k)
		case "limit":
			w.Limit, err = m.smallInt(k)
		case "token":
			w.Token, err = m.str(k)
		case "epoch":
			w.Epoch, err = m.str(k)
		case "from_offset":
			w.FromOffset, err = m.uint(k)
		case "to_offset":
			w.ToOffset, err = m.uint(k)
		case "start":
			w.Start, err = m.int(k)
		case "end":
			w.End, err = m.int(k)
		case "direction":
			w.Direction, err = m.str(k)
		case "interval_ms":
			w.IntervalMS, err = m.smallInt(k)
		default:
			err = m.skip() // unknown keys are ignored, as in JSON
		}
		if err != nil {
			return w, nil, false, false, err
		}
	}
	return w, data, binary, idOK, nil
}

// mpEncoder is a pooled encoder appending to a byte slice.
type mpEncoder struct {
	e *msgpack.Encoder
	w appendWriter
}

type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) { a.b = append(a.b, p...); return len(p), nil }
func (a *appendWriter) WriteByte(c byte) error      { a.b = append(a.b, c); return nil }
func (a *appendWriter) WriteString(s string) (int, error) {
	a.b = append(a.b, s...)
	return len(s), nil
}

var mpEncoders = sync.Pool{New: func() any {
	m := &mpEncoder{}
	m.e = msgpack.NewEncoder(&m.w)
	return m
}}

func getMPEncoder(dst []byte) *mpEncoder {
	m := mpEncoders.Get().(*mpEncoder)
	m.w.b = dst
	return m
}

// done returns the encoded bytes and puts the encoder back.
func (m *mpEncoder) done() []byte {
	b := m.w.b
	m.w.b = nil
	mpEncoders.Put(m)
	return b
}

// mpMap writes one map whose entries are counted as they are written: the
// header is reserved as a map16 and shrunk to a fixmap at the end when it
// has fewer than 16 entries (the usual case), so every frame is canonical.
type mpMap struct {
	m     *mpEncoder
	start int
	n     int
}

func (m *mpEncoder) beginMap() mpMap {
	start := len(m.w.b)
	m.w.b = append(m.w.b, msgpcode.Map16, 0, 0)
	return mpMap{m: m, start: start}
}

func (mm *mpMap) end() {
	b := mm.m.w.b
	if mm.n < 16 {
		b[mm.start] = msgpcode.FixedMapLow | byte(mm.n)
		copy(b[mm.start+1:], b[mm.start+3:])
		mm.m.w.b = b[:len(b)-2]
		return
	}
	b[mm.start+1], b[mm.start+2] = byte(mm.n>>8), byte(mm.n)
}

// The encoder's methods cannot fail: they write to a growing slice.

func (mm *mpMap) key(k string) { mm.n++; _ = mm.m.e.EncodeString(k) }

func (mm *mpMap) str(k, v string) { mm.key(k); _ = mm.m.e.EncodeString(v) }
func (mm *mpMap) optStr(k, v string) {
	if v != "" {
		mm.str(k, v)
	}
}
func (mm *mpMap) uint(k string, v uint64) { mm.key(k); _ = mm.m.e.EncodeUint(v) }
func (mm *mpMap) optUint(k string, v uint64) {
	if v != 0 {
		mm.uint(k, v)
	}
}
func (mm *mpMap) int(k string, v int64) { mm.key(k); _ = mm.m.e.EncodeInt(v) }
func (mm *mpMap) optInt(k string, v int64) {
	if v != 0 {
		mm.int(k, v)
	}
}
func (mm *mpMap) float(k string, v float64) { mm.key(k); _ = mm.m.e.EncodeFloat64(v) }
func (mm *mpMap) optTrue(k string, v bool) {
	if v {
		mm.key(k)
		_ = mm.m.e.EncodeBool(true)
	}
}

// data writes a payload: bin when binary, else str of JSON text, which
// must be valid (what reaches a JSON connection as a JSON value).
func (mm *mpMap) data(k string, data []byte, binary bool) error {
	switch {
	case len(data) == 0:
		return nil
	case binary:
		mm.key(k)
		_ = mm.m.e.EncodeBytes(data)
	case !utf8.Valid(data) || !json.Valid(data):
		return errors.New("protocol: data is neither binary nor UTF-8 JSON")
	default:
		mm.key(k)
		mm.m.w.b = appendMPStrHeader(mm.m.w.b, len(data))
		mm.m.w.b = append(mm.m.w.b, data...)
	}
	return nil
}

// appendMPStrHeader writes the header of a str of n bytes (the encoder
// only writes whole strings, and JSON text comes as bytes).
func appendMPStrHeader(b []byte, n int) []byte {
	switch {
	case n < 32:
		return append(b, msgpcode.FixedStrLow|byte(n))
	case n <= math.MaxUint8:
		return append(b, msgpcode.Str8, byte(n))
	case n <= math.MaxUint16:
		return append(b, msgpcode.Str16, byte(n>>8), byte(n))
	}
	return append(b, msgpcode.Str32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func (mm *mpMap) position(k string, p *Position) {
	mm.key(k)
	pm := mm.m.beginMap()
	pm.uint("offset", p.Offset)
	pm.str("epoch", p.Epoch)
	pm.end()
}

func (msgpackCodec) AppendCommand(dst []byte, c *Command) ([]byte, error) {
	m := getMPEncoder(dst)
	mm := m.beginMap()
	mm.uint("id", c.ID)
	mm.str("op", string(c.Op))
	mm.optStr("room", c.Room)
	mm.optStr("event", c.Event)
	if err := mm.data("data", c.Data, c.Binary); err != nil {
		m.done()
		return dst, err
	}
	mm.optTrue("transient", c.Transient)
	mm.optStr("idempotency_key", c.IdempotencyKey)
	if c.Since != nil {
		mm.position("since", c.Since)
	}
	mm.optStr("session_id", c.SessionID)
	mm.optStr("resume_token", c.ResumeToken)
	mm.optStr("cursor", c.Cursor)
	mm.optInt("limit", int64(c.Limit))
	mm.optStr("token", c.Token)
	if h := c.History; h != nil {
		mm.optStr("epoch", h.Epoch)
		mm.optUint("from_offset", h.FromOffset)
		mm.optUint("to_offset", h.ToOffset)
		mm.optInt("start", h.Start)
		mm.optInt("end", h.End)
		if h.Backward {
			mm.str("direction", DirectionBackward)
		}
	}
	mm.optInt("interval_ms", int64(c.IntervalMS))
	mm.end()
	return m.done(), nil
}

func (msgpackCodec) AppendServerFrame(dst []byte, f *ServerFrame) ([]byte, error) {
	m := getMPEncoder(dst)
	if err := m.serverFrame(f); err != nil {
		m.done()
		return dst, err
	}
	return m.done(), nil
}

func (m *mpEncoder) member(mm *mpMap, k string, p *PresenceMember) error {
	mm.key(k)
	return m.memberValue(p)
}

func (m *mpEncoder) memberValue(p *PresenceMember) error {
	pm := m.beginMap()
	pm.str("client_id", p.ClientID)
	pm.str("connection_id", p.ConnectionID)
	if err := pm.data("data", p.Data, false); err != nil {
		return fmt.Errorf("protocol: presence data: %w", err)
	}
	pm.int("since", p.Since)
	pm.end()
	return nil
}

func (m *mpEncoder) serverFrame(f *ServerFrame) error {
	mm := m.beginMap()
	switch {
	case f.Connected != nil:
		c := f.Connected
		mm.str("type", typeConnected)
		mm.optStr("connection_id", c.ConnectionID)
		mm.optStr("session_id", c.SessionID)
		mm.optStr("resume_token", c.ResumeToken)
		mm.optStr("client_id", c.ClientID)
		mm.optStr("node", c.Node)
		mm.optInt("heartbeat_ms", int64(c.HeartbeatMS))
		mm.key("limits")
		lm := m.beginMap()
		lm.int("max_message_bytes", int64(c.Limits.MaxMessageBytes))
		lm.int("max_room_name_bytes", int64(c.Limits.MaxRoomNameBytes))
		lm.int("max_rooms", int64(c.Limits.MaxRooms))
		lm.float("publish_rate", c.Limits.PublishRate)
		lm.int("publish_burst", int64(c.Limits.PublishBurst))
		lm.end()
	case f.Reply != nil:
		r := f.Reply
		mm.str("type", typeReply)
		mm.optUint("id", r.ID)
		if r.Error != nil {
			mm.key("error")
			m.errorValue(r.Error)
		}
		mm.optStr("room", r.Room)
		if r.Position != nil {
			mm.position("position", r.Position)
		}
		mm.optTrue("recovered", r.Recovered)
		mm.optStr("session_id", r.SessionID)
		mm.optStr("resume_token", r.ResumeToken)
		if len(r.Rooms) > 0 {
			mm.key("rooms")
			_ = m.e.EncodeArrayLen(len(r.Rooms))
			for _, room := range r.Rooms {
				_ = m.e.EncodeString(room)
			}
		}
		if len(r.Members) > 0 {
			mm.key("members")
			_ = m.e.EncodeArrayLen(len(r.Members))
			for i := range r.Members {
				if err := m.memberValue(&r.Members[i]); err != nil {
					return err
				}
			}
		}
		mm.optStr("cursor", r.Cursor)
		if r.Count != nil {
			mm.key("count")
			cm := m.beginMap()
			cm.int("clients", int64(r.Count.Clients))
			cm.int("connections", int64(r.Count.Connections))
			cm.end()
		}
		if len(r.Messages) > 0 {
			mm.key("messages")
			_ = m.e.EncodeArrayLen(len(r.Messages))
			for i := range r.Messages {
				h := &r.Messages[i]
				hm := m.beginMap()
				hm.uint("offset", h.Offset)
				hm.str("epoch", h.Epoch)
				hm.optStr("event", h.Event)
				if err := hm.data("data", h.Data, h.Binary); err != nil {
					return fmt.Errorf("protocol: history message: %w", err)
				}
				hm.optStr("from", h.From)
				hm.int("ts", h.Timestamp)
				hm.end()
			}
		}
	case f.Message != nil:
		msg := f.Message
		mm.str("type", typeMessage)
		mm.optStr("room", msg.Room)
		mm.optUint("offset", msg.Offset)
		mm.optStr("epoch", msg.Epoch)
		mm.optStr("event", msg.Event)
		if err := mm.data("data", msg.Data, msg.Binary); err != nil {
			return fmt.Errorf("protocol: message: %w", err)
		}
		mm.optStr("from", msg.From)
		mm.optInt("ts", msg.Timestamp)
		mm.optTrue("transient", msg.Transient)
	case f.Presence != nil:
		p := f.Presence
		mm.str("type", typePresence)
		mm.optStr("room", p.Room)
		mm.optStr("action", string(p.Action))
		if err := m.member(&mm, "member", &p.Member); err != nil {
			return err
		}
		mm.optUint("offset", p.Offset)
		mm.optStr("epoch", p.Epoch)
		mm.optInt("ts", p.Timestamp)
	case f.Metrics != nil:
		x := f.Metrics
		mm.str("type", typeMetrics)
		mm.optStr("room", x.Room)
		// As in the JSON encoding: the numbers in a "metrics" map.
		mm.key("metrics")
		xm := m.beginMap()
		xm.int("members", int64(x.Members))
		xm.int("clients", int64(x.Clients))
		xm.int("connections", int64(x.Connections))
		xm.float("message_rate", x.MessageRate)
		xm.end()
		mm.optInt("ts", x.Timestamp)
	case f.Error != nil:
		mm.str("type", typeError)
		mm.optUint("id", f.Error.ID)
		mm.key("error")
		m.errorValue(f.Error)
	default:
		return errors.New("protocol: empty server frame")
	}
	mm.end()
	return nil
}

func (m *mpEncoder) errorValue(e *Error) {
	em := m.beginMap()
	em.str("code", string(e.Code))
	em.str("message", e.Message)
	em.end()
}

func (msgpackCodec) DecodeServerFrame(frame []byte) (ServerFrame, error) {
	m := getMPDecoder(frame)
	defer putMPDecoder(m)
	if msg, ok := m.fastMessage(); ok {
		return ServerFrame{Message: msg}, nil
	}
	f, err := m.serverFrame()
	switch {
	case err != nil:
		return ServerFrame{}, fmt.Errorf("protocol: decode server frame: %w", err)
	case m.r.Len() != 0:
		return ServerFrame{}, errors.New("protocol: decode server frame: bytes after the frame map")
	case m.typeErr != "":
		return ServerFrame{}, errors.New("protocol: decode server frame: " + m.typeErr)
	}
	return f, nil
}

// mpServerFrame is every key of a server frame, as read.
type mpServerFrame struct {
	typ                                          string
	connectionID, sessionID, resumeToken, client string
	node, room, epoch, event, from, cursor       string
	action                                       string
	heartbeatMS                                  int
	limits                                       *Limits
	id, offset                                   uint64
	err                                          *Error
	position                                     *Position
	recovered, transient, binary                 bool
	rooms                                        []string
	members                                      []PresenceMember
	count                                        *PresenceCount
	messages                                     []Message
	member                                       *PresenceMember
	metrics                                      *RoomMetrics
	data                                         []byte
	ts                                           int64
}

func (m *mpDecoder) serverFrame() (ServerFrame, error) {
	n, ok, err := m.mapLen("frame")
	if err != nil {
		return ServerFrame{}, err
	}
	if !ok {
		return ServerFrame{}, errors.New("a frame must be a msgpack map")
	}
	var w mpServerFrame
	for range n {
		k, err := m.key()
		if err != nil {
			return ServerFrame{}, err
		}
		switch k {
		case "type":
			w.typ, err = m.recentStr(k, slotType)
		case "connection_id":
			w.connectionID, err = m.str(k)
		case "session_id":
			w.sessionID, err = m.str(k)
		case "resume_token":
			w.resumeToken, err = m.str(k)
		case "client_id":
			w.client, err = m.str(k)
		case "node":
			w.node, err = m.str(k)
		case "heartbeat_ms":
			w.heartbeatMS, err = m.smallInt(k)
		case "limits":
			w.limits, err = m.limits(k)
		case "id":
			w.id, err = m.uint(k)
		case "error":
			w.err, err = m.errorBody(k)
		case "position":
			var p *jsonPosition
			if p, err = m.position(k); p != nil {
				w.position = &Position{Offset: p.Offset, Epoch: p.Epoch}
			}
		case "recovered":
			w.recovered, err = m.bool(k)
		case "rooms":
			w.rooms, err = m.strings(k)
		case "members":
			w.members, err = m.members(k)
		case "cursor":
			w.cursor, err = m.str(k)
		case "count":
			w.count, err = m.count(k)
		case "messages":
			w.messages, err = m.historyMessages(k)
		case "action":
			w.action, err = m.recentStr(k, slotAction)
		case "member":
			var n int
			var ok bool
			if n, ok, err = m.mapLen(k); ok && err == nil {
				var pm PresenceMember
				pm, err = m.memberBody(k, n)
				w.member = &pm
			}
		case "metrics":
			w.metrics, err = m.metricsBody(k)
		case "room":
			w.room, err = m.recentStr(k, slotRoom)
		case "offset":
			w.offset, err = m.uint(k)
		case "epoch":
			w.epoch, err = m.recentStr(k, slotEpoch)
		case "event":
			w.event, err = m.recentStr(k, slotEvent)
		case "data":
			w.data, w.binary, err = m.data(k)
		case "from":
			w.from, err = m.recentStr(k, slotFrom)
		case "ts":
			w.ts, err = m.int(k)
		case "transient":
			w.transient, err = m.bool(k)
		default:
			err = m.skip()
		}
		if err != nil {
			return ServerFrame{}, err
		}
	}
	switch w.typ {
	case typeConnected:
		c := &Connected{ConnectionID: w.connectionID, SessionID: w.sessionID, ResumeToken: w.resumeToken,
			ClientID: w.client, Node: w.node, HeartbeatMS: w.heartbeatMS}
		if w.limits != nil {
			c.Limits = *w.limits
		}
		return ServerFrame{Connected: c}, nil
	case typeReply:
		r := &Reply{ID: w.id, Error: w.err, Room: w.room, Position: w.position, Recovered: w.recovered,
			SessionID: w.sessionID, ResumeToken: w.resumeToken, Rooms: w.rooms, Members: w.members,
			Cursor: w.cursor, Count: w.count, Messages: w.messages}
		if r.Error != nil {
			r.Error.ID = w.id
		}
		for i := range r.Messages {
			r.Messages[i].Room = w.room
		}
		return ServerFrame{Reply: r}, nil
	case typeMessage:
		return ServerFrame{Message: &Message{Room: w.room, Offset: w.offset, Epoch: w.epoch, Event: w.event,
			Data: w.data, Binary: w.binary, From: w.from, Timestamp: w.ts, Transient: w.transient}}, nil
	case typePresence:
		p := &PresenceEvent{Room: w.room, Action: PresenceAction(w.action), Offset: w.offset, Epoch: w.epoch, Timestamp: w.ts}
		if w.member != nil {
			p.Member = *w.member
		}
		return ServerFrame{Presence: p}, nil
	case typeMetrics:
		x := &RoomMetrics{Room: w.room, Timestamp: w.ts}
		if w.metrics != nil {
			x.Members, x.Clients, x.Connections, x.MessageRate = w.metrics.Members, w.metrics.Clients, w.metrics.Connections, w.metrics.MessageRate
		}
		return ServerFrame{Metrics: x}, nil
	case typeError:
		e := w.err
		if e == nil {
			e = NewError(CodeInternal, "error frame without error")
		}
		e.ID = w.id
		return ServerFrame{Error: e}, nil
	}
	return ServerFrame{}, fmt.Errorf("unknown server frame type %q", truncate(w.typ, 64))
}

func (m *mpDecoder) limits(field string) (*Limits, error) {
	n, ok, err := m.mapLen(field)
	if err != nil || !ok {
		return nil, err
	}
	l := &Limits{}
	for range n {
		k, err := m.key()
		if err != nil {
			return nil, err
		}
		switch k {
		case "max_message_bytes":
			l.MaxMessageBytes, err = m.smallInt(k)
		case "max_room_name_bytes":
			l.MaxRoomNameBytes, err = m.smallInt(k)
		case "max_rooms":
			l.MaxRooms, err = m.smallInt(k)
		case "publish_rate":
			l.PublishRate, err = m.float(k)
		case "publish_burst":
			l.PublishBurst, err = m.smallInt(k)
		default:
			err = m.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (m *mpDecoder) errorBody(field string) (*Error, error) {
	n, ok, err := m.mapLen(field)
	if err != nil || !ok {
		return nil, err
	}
	e := &Error{}
	for range n {
		k, err := m.key()
		if err != nil {
			return nil, err
		}
		switch k {
		case "code":
			var code string
			code, err = m.str(k)
			e.Code = Code(code)
		case "message":
			e.Message, err = m.str(k)
		default:
			err = m.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (m *mpDecoder) arrayLen(field string) (int, bool, error) {
	c, err := m.peek()
	if err != nil {
		return 0, false, err
	}
	switch {
	case c == msgpcode.Nil:
		return 0, false, m.skip()
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err := m.d.DecodeArrayLen()
		if err != nil {
			return 0, false, errNotMsgpack
		}
		return n, true, nil
	}
	return 0, false, m.mismatch(field, "an array")
}

// maxPreallocated bounds what a declared array length may preallocate: the
// length is the peer's claim, the elements still have to be read.
const maxPreallocated = 64

func (m *mpDecoder) strings(field string) ([]string, error) {
	n, ok, err := m.arrayLen(field)
	if err != nil || !ok || n == 0 {
		return nil, err
	}
	out := make([]string, 0, min(n, maxPreallocated))
	for range n {
		s, err := m.str(field)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (m *mpDecoder) members(field string) ([]PresenceMember, error) {
	n, ok, err := m.arrayLen(field)
	if err != nil || !ok || n == 0 {
		return nil, err
	}
	out := make([]PresenceMember, 0, min(n, maxPreallocated))
	for range n {
		k, ok, err := m.mapLen(field)
		if err != nil {
			return nil, err
		}
		var pm PresenceMember
		if ok {
			if pm, err = m.memberBody(field, k); err != nil {
				return nil, err
			}
		}
		out = append(out, pm)
	}
	return out, nil
}

func (m *mpDecoder) memberBody(field string, n int) (PresenceMember, error) {
	var p PresenceMember
	for range n {
		k, err := m.key()
		if err != nil {
			return p, err
		}
		switch k {
		case "client_id":
			p.ClientID, err = m.str(k)
		case "connection_id":
			p.ConnectionID, err = m.str(k)
		case "data":
			var binary bool
			p.Data, binary, err = m.data(field + ".data")
			if binary {
				m.setTypeErr(field+".data", "a str of UTF-8 JSON text")
			}
		case "since":
			p.Since, err = m.int(k)
		default:
			err = m.skip()
		}
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

func (m *mpDecoder) count(field string) (*PresenceCount, error) {
	n, ok, err := m.mapLen(field)
	if err != nil || !ok {
		return nil, err
	}
	c := &PresenceCount{}
	for range n {
		k, err := m.key()
		if err != nil {
			return nil, err
		}
		switch k {
		case "clients":
			c.Clients, err = m.smallInt(k)
		case "connections":
			c.Connections, err = m.smallInt(k)
		default:
			err = m.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (m *mpDecoder) metricsBody(field string) (*RoomMetrics, error) {
	n, ok, err := m.mapLen(field)
	if err != nil || !ok {
		return nil, err
	}
	x := &RoomMetrics{}
	for range n {
		k, err := m.key()
		if err != nil {
			return nil, err
		}
		switch k {
		case "members":
			x.Members, err = m.smallInt(k)
		case "clients":
			x.Clients, err = m.smallInt(k)
		case "connections":
			x.Connections, err = m.smallInt(k)
		case "message_rate":
			x.MessageRate, err = m.float(k)
		default:
			err = m.skip()
		}
		if err != nil {
			return nil, err
		}
	}
	return x, nil
}

func (m *mpDecoder) historyMessages(field string) ([]Message, error) {
	n, ok, err := m.arrayLen(field)
	if err != nil || !ok || n == 0 {
		return nil, err
	}
	out := make([]Message, 0, min(n, maxPreallocated))
	for range n {
		k, ok, err := m.mapLen(field)
		if err != nil {
			return nil, err
		}
		var h Message
		if !ok {
			k = 0
		}
		for range k {
			key, err := m.key()
			if err != nil {
				return nil, err
			}
			switch key {
			case "offset":
				h.Offset, err = m.uint(key)
			case "epoch":
				h.Epoch, err = m.str(key)
			case "event":
				h.Event, err = m.str(key)
			case "data":
				h.Data, h.Binary, err = m.data(key)
			case "from":
				h.From, err = m.str(key)
			case "ts":
				h.Timestamp, err = m.int(key)
			default:
				err = m.skip()
			}
			if err != nil {
				return nil, err
			}
		}
		out = append(out, h)
	}
	return out, nil
}
