package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// fastMessage decodes the frame a receiver gets most, a message, straight
// from the frame's bytes when every key and value is of the plain kind the
// encoder writes: str keys it knows, str values, unsigned offset, integer
// ts, bool transient, bin data or str (JSON) data. It is several times cheaper than the
// general decoder, which goes through the msgpack library value by value.
// ok is false for anything else — another frame type, a nil, an unknown
// key, invalid UTF-8, a truncated or padded frame —
// and the general decoder then reads the frame and judges it, so both
// accept the same frames with the same result (FuzzFastMessage).
func (m *mpDecoder) fastMessage() (msg *Message, ok bool) {
	b := m.frame
	n, p, ok := rawMapLen(b, 0)
	if !ok {
		return nil, false
	}
	var w Message
	isMessage := false
	for range n {
		var k []byte
		if k, p, ok = rawStr(b, p); !ok {
			return nil, false
		}
		switch string(k) { // no allocation: the compiler compares in place
		case "type":
			var v []byte
			if v, p, ok = rawStr(b, p); !ok || string(v) != typeMessage {
				return nil, false
			}
			isMessage = true
		case "room":
			if w.Room, p, ok = m.rawRecentStr(b, p, slotRoom); !ok {
				return nil, false
			}
		case "epoch":
			if w.Epoch, p, ok = m.rawRecentStr(b, p, slotEpoch); !ok {
				return nil, false
			}
		case "event":
			if w.Event, p, ok = m.rawRecentStr(b, p, slotEvent); !ok {
				return nil, false
			}
		case "from":
			if w.From, p, ok = m.rawRecentStr(b, p, slotFrom); !ok {
				return nil, false
			}
		case "offset":
			if w.Offset, p, ok = rawUint(b, p); !ok {
				return nil, false
			}
		case "ts":
			if w.Timestamp, p, ok = rawInt(b, p); !ok {
				return nil, false
			}
		case "transient":
			if p >= len(b) || (b[p] != msgpcode.True && b[p] != msgpcode.False) {
				return nil, false
			}
			w.Transient = b[p] == msgpcode.True
			p++
		case "data":
			// bin: bytes; str: the UTF-8 text of one JSON value.
			isBin := p < len(b) && isMPBin(b[p])
			var d []byte
			if isBin {
				d, p, ok = rawBin(b, p)
			} else {
				d, p, ok = rawStr(b, p)
			}
			if !ok || (!isBin && len(d) > 0 && (!utf8.Valid(d) || !json.Valid(d))) {
				return nil, false
			}
			// A copy: the frame's buffer is reused for the next frame.
			w.Data, w.Binary = nil, false
			if len(d) > 0 {
				w.Data, w.Binary = bytes.Clone(d), isBin
			}
		default:
			return nil, false
		}
	}
	if p != len(b) || !isMessage {
		return nil, false
	}
	return &w, true
}

// rawMapLen reads a map header at b[p:].
func rawMapLen(b []byte, p int) (n, next int, ok bool) {
	if p >= len(b) {
		return 0, 0, false
	}
	switch c := b[p]; {
	case msgpcode.IsFixedMap(c):
		return int(c & 0x0f), p + 1, true
	case c == msgpcode.Map16 && p+3 <= len(b):
		return int(binary.BigEndian.Uint16(b[p+1:])), p + 3, true
	}
	return 0, 0, false // map32 is more keys than a message has
}

// declaredLen reads the header of a str, bin or ext value at b[p:]: the
// length it declares and where the value's bytes start (after an ext's
// type byte). ok is false for any other code and for a truncated header;
// whether the frame holds that many bytes is the caller's to check.
func declaredLen(b []byte, p int) (n, start int, ok bool) {
	if p >= len(b) {
		return 0, 0, false
	}
	c := b[p]
	size := 0 // bytes of the length field
	switch c {
	case msgpcode.Str8, msgpcode.Bin8, msgpcode.Ext8:
		size = 1
	case msgpcode.Str16, msgpcode.Bin16, msgpcode.Ext16:
		size = 2
	case msgpcode.Str32, msgpcode.Bin32, msgpcode.Ext32:
		size = 4
	default:
		if msgpcode.IsFixedString(c) {
			return int(c & 0x1f), p + 1, true
		}
		return 0, 0, false
	}
	start = p + 1 + size
	if isMPExt(c) {
		start++
	}
	if start > len(b) {
		return 0, 0, false
	}
	switch size {
	case 1:
		n = int(b[p+1])
	case 2:
		n = int(binary.BigEndian.Uint16(b[p+1:]))
	default:
		n = int(binary.BigEndian.Uint32(b[p+1:]))
	}
	return n, start, true
}

// rawLen reads the length of a str (str codes) or bin (bin codes) header
// at b[p:] and checks that the value fits in b.
func rawLen(b []byte, p int, str bool) (n, next int, ok bool) {
	if p >= len(b) || (str && !isMPStr(b[p])) || (!str && !isMPBin(b[p])) {
		return 0, 0, false
	}
	n, next, ok = declaredLen(b, p)
	if !ok || n > len(b)-next {
		return 0, 0, false
	}
	return n, next, true
}

// rawStr returns the bytes of the str at b[p:] (not copied).
func rawStr(b []byte, p int) (s []byte, next int, ok bool) {
	n, p, ok := rawLen(b, p, true)
	if !ok {
		return nil, 0, false
	}
	return b[p : p+n], p + n, true
}

// rawBin returns the bytes of the bin at b[p:] (not copied).
func rawBin(b []byte, p int) (s []byte, next int, ok bool) {
	n, p, ok := rawLen(b, p, false)
	if !ok {
		return nil, 0, false
	}
	return b[p : p+n], p + n, true
}

// rawRecentStr reads a UTF-8 str like rawStr, as a string, reusing the
// slot's last string when the bytes are the same (see remember).
func (m *mpDecoder) rawRecentStr(b []byte, p, slot int) (s string, next int, ok bool) {
	v, next, ok := rawStr(b, p)
	if !ok {
		return "", 0, false
	}
	if s, ok = m.remember(slot, v); !ok {
		return "", 0, false
	}
	return s, next, true
}

// rawUint reads a non-negative integer in any of msgpack's integer
// encodings.
func rawUint(b []byte, p int) (v uint64, next int, ok bool) {
	i, u, signed, next, ok := rawInteger(b, p)
	switch {
	case !ok:
		return 0, 0, false
	case signed && i < 0:
		return 0, 0, false
	case signed:
		return uint64(i), next, true
	}
	return u, next, true
}

// rawInt reads an integer that fits in an int64.
func rawInt(b []byte, p int) (v int64, next int, ok bool) {
	i, u, signed, next, ok := rawInteger(b, p)
	switch {
	case !ok:
		return 0, 0, false
	case signed:
		return i, next, true
	case u > math.MaxInt64:
		return 0, 0, false
	}
	return int64(u), next, true
}

// rawInteger reads any msgpack integer: unsigned codes into u, signed ones
// (and negative fixints) into i.
func rawInteger(b []byte, p int) (i int64, u uint64, signed bool, next int, ok bool) {
	if p >= len(b) {
		return 0, 0, false, 0, false
	}
	c := b[p]
	size := 0
	switch c {
	case msgpcode.Uint8, msgpcode.Int8:
		size = 1
	case msgpcode.Uint16, msgpcode.Int16:
		size = 2
	case msgpcode.Uint32, msgpcode.Int32:
		size = 4
	case msgpcode.Uint64, msgpcode.Int64:
		size = 8
	default:
		if c <= msgpcode.PosFixedNumHigh {
			return 0, uint64(c), false, p + 1, true
		}
		if c >= msgpcode.NegFixedNumLow {
			return int64(int8(c)), 0, true, p + 1, true
		}
		return 0, 0, false, 0, false
	}
	if p+1+size > len(b) {
		return 0, 0, false, 0, false
	}
	v := b[p+1 : p+1+size]
	switch c {
	case msgpcode.Uint8:
		return 0, uint64(v[0]), false, p + 2, true
	case msgpcode.Uint16:
		return 0, uint64(binary.BigEndian.Uint16(v)), false, p + 3, true
	case msgpcode.Uint32:
		return 0, uint64(binary.BigEndian.Uint32(v)), false, p + 5, true
	case msgpcode.Uint64:
		return 0, binary.BigEndian.Uint64(v), false, p + 9, true
	case msgpcode.Int8:
		return int64(int8(v[0])), 0, true, p + 2, true
	case msgpcode.Int16:
		return int64(int16(binary.BigEndian.Uint16(v))), 0, true, p + 3, true
	case msgpcode.Int32:
		return int64(int32(binary.BigEndian.Uint32(v))), 0, true, p + 5, true
	}
	return int64(binary.BigEndian.Uint64(v)), 0, true, p + 9, true
}
