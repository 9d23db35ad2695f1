package loadgen

import (
	"bytes"
	"strconv"
)

// Payloads are JSON objects whose first member is the send time:
//
//	{"t":1763900000123456789,"p":3,"s":42,"x":"...."}
//
// t is the message's scheduled send time in Unix nanoseconds, p the
// publisher's index, s its sequence number, and x pads the object to the
// configured size. Receivers run on the same machine (same clock) and take
// latency = receive time − t.

// minPayloadBytes is the size of a payload without padding for the largest
// numbers it carries; smaller sizes are raised to it.
const minPayloadBytes = len(`{"t":1763900000123456789,"p":99999,"s":9999999999,"x":""}`)

// appendPayload appends a payload of about size bytes (exactly size when
// size ≥ the unpadded length) to dst.
func appendPayload(dst []byte, sendUnixNano int64, publisher int, seq int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"t":`...)
	dst = strconv.AppendInt(dst, sendUnixNano, 10)
	dst = append(dst, `,"p":`...)
	dst = strconv.AppendInt(dst, int64(publisher), 10)
	dst = append(dst, `,"s":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"x":"`...)
	for pad := size - (len(dst) - start) - 2; pad > 0; pad-- {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

var sendTimeKey = []byte(`"t":`)

// parseSendTime returns the send time embedded in a payload. It does not
// decode the JSON: the receivers must stay cheap, and the gateway passes
// data through byte for byte.
func parseSendTime(data []byte) (int64, bool) {
	i := bytes.Index(data, sendTimeKey)
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(data[i+len(sendTimeKey):], " \t\r\n")
	var v int64
	n := 0
	for _, c := range rest {
		if c < '0' || c > '9' {
			break
		}
		if n == 19 {
			return 0, false // would overflow int64
		}
		v = v*10 + int64(c-'0')
		n++
	}
	return v, n > 0
}
