package protocol

import (
	"bytes"
	"encoding/json"
	"math"
)

// Message frames are most of what a client decodes, and encoding/json
// spends most of its time on reflection there. fastJSONMessage reads a
// message frame in exactly the shape jsonCodec.AppendServerFrame writes it
// — compact, keys in the encoder's order, strings without escapes — and
// declines anything else, which the general decoder then reads (to the
// same result: FuzzFastJSONMessage holds the two to that).

const jsonMessagePrefix = `{"type":"message"`

// The keys of a message frame in the encoder's order (jsonServerFrame).
var jsonMessageKeys = [...]string{"room", "offset", "epoch", "event", "data", "encoding", "from", "ts", "transient"}

// fastJSONMessage decodes frame if it is a message frame in the encoder's
// shape; ok is false otherwise (not an error: use the general decoder).
// frame must be valid UTF-8.
func fastJSONMessage(frame []byte) (m *Message, ok bool) {
	if !bytes.HasPrefix(frame, []byte(jsonMessagePrefix)) {
		return nil, false
	}
	p := frame[len(jsonMessagePrefix):]
	m = &Message{}
	var data []byte
	var encoding string
	next := 0 // index of the first key still allowed
	for {
		if len(p) == 1 && p[0] == '}' {
			break
		}
		if len(p) < 2 || p[0] != ',' || p[1] != '"' {
			return nil, false
		}
		end := bytes.IndexByte(p[2:], '"')
		if end < 0 || len(p) < 2+end+2 || p[2+end+1] != ':' {
			return nil, false
		}
		key := p[2 : 2+end]
		p = p[2+end+2:]
		k := next
		for k < len(jsonMessageKeys) && jsonMessageKeys[k] != string(key) {
			k++
		}
		if k == len(jsonMessageKeys) {
			return nil, false // unknown, repeated or out of order
		}
		next = k + 1
		switch jsonMessageKeys[k] {
		case "room":
			m.Room, p, ok = fastJSONString(p)
		case "offset":
			m.Offset, p, ok = fastJSONUint(p)
		case "epoch":
			m.Epoch, p, ok = fastJSONString(p)
		case "event":
			m.Event, p, ok = fastJSONString(p)
		case "data":
			var n int
			if n, ok = skipJSONValue(p); ok && json.Valid(p[:n]) {
				data, p = p[:n], p[n:]
			} else {
				ok = false
			}
		case "encoding":
			encoding, p, ok = fastJSONString(p)
		case "from":
			m.From, p, ok = fastJSONString(p)
		case "ts":
			m.Timestamp, p, ok = fastJSONInt(p)
		case "transient":
			m.Transient, p, ok = fastJSONBool(p)
		}
		if !ok {
			return nil, false
		}
	}
	switch {
	case encoding != "":
		d, binary, err := dataFromJSON(data, encoding)
		if err != nil {
			return nil, false // the general decoder reports it
		}
		m.Data, m.Binary = d, binary
	case len(data) > 0:
		m.Data = bytes.Clone(data)
	}
	return m, true
}

// fastJSONString reads a string without escapes or control characters.
func fastJSONString(p []byte) (string, []byte, bool) {
	if len(p) == 0 || p[0] != '"' {
		return "", p, false
	}
	for i := 1; i < len(p); i++ {
		switch c := p[i]; {
		case c == '"':
			return string(p[1:i]), p[i+1:], true
		case c == '\\' || c < 0x20:
			return "", p, false
		}
	}
	return "", p, false
}

// fastJSONUint reads a JSON integer that fits a uint64.
func fastJSONUint(p []byte) (uint64, []byte, bool) {
	i := 0
	var n uint64
	for i < len(p) && p[i] >= '0' && p[i] <= '9' {
		d := uint64(p[i] - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, p, false
		}
		n = n*10 + d
		i++
	}
	if i == 0 || (p[0] == '0' && i > 1) {
		return 0, p, false // no digits, or a leading zero
	}
	return n, p[i:], true
}

// fastJSONInt reads a JSON integer that fits an int64.
func fastJSONInt(p []byte) (int64, []byte, bool) {
	neg := len(p) > 0 && p[0] == '-'
	q := p
	if neg {
		q = p[1:]
	}
	u, rest, ok := fastJSONUint(q)
	switch {
	case !ok:
		return 0, p, false
	case neg && u == 0:
		return 0, rest, true
	case neg && u <= 1<<63:
		return -int64(u-1) - 1, rest, true
	case !neg && u <= math.MaxInt64:
		return int64(u), rest, true
	}
	return 0, p, false
}

func fastJSONBool(p []byte) (bool, []byte, bool) {
	switch {
	case bytes.HasPrefix(p, []byte("true")):
		return true, p[4:], true
	case bytes.HasPrefix(p, []byte("false")):
		return false, p[5:], true
	}
	return false, p, false
}

// skipJSONValue returns the length of the compact JSON value p starts
// with, assuming it is well formed (the caller checks with json.Valid):
// strings are skipped with their escapes, brackets are counted, and a
// scalar ends at the first ',', '}' or ']'.
func skipJSONValue(p []byte) (int, bool) {
	depth := 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '"':
			for i++; i < len(p) && p[i] != '"'; i++ {
				if p[i] == '\\' {
					i++
				}
			}
			if i >= len(p) {
				return 0, false
			}
			if depth == 0 {
				return i + 1, true
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i, i > 0
			}
			if depth--; depth == 0 {
				return i + 1, true
			}
		case ',':
			if depth == 0 {
				return i, i > 0
			}
		case ' ', '\t', '\n', '\r':
			if depth == 0 {
				return 0, false // not the encoder's compact shape
			}
		}
	}
	return 0, false
}
