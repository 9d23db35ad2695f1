package loadgen

import (
	"encoding/json"
	"testing"
)

func TestPayload(t *testing.T) {
	const sent = int64(1763900000123456789)
	for _, size := range []int{0, minPayloadBytes, 64, 100, 1000} {
		p := appendPayload(nil, sent, 3, 42, size)
		if size >= minPayloadBytes && len(p) != size {
			t.Errorf("size %d: payload is %d bytes", size, len(p))
		}
		var v struct {
			T int64  `json:"t"`
			P int    `json:"p"`
			S int64  `json:"s"`
			X string `json:"x"`
		}
		if err := json.Unmarshal(p, &v); err != nil {
			t.Fatalf("size %d: payload %s is not JSON: %v", size, p, err)
		}
		if v.T != sent || v.P != 3 || v.S != 42 {
			t.Errorf("payload %s decodes to %+v", p, v)
		}
		got, ok := parseSendTime(p)
		if !ok || got != sent {
			t.Errorf("parseSendTime(%s) = %d, %v; want %d", p, got, ok, sent)
		}
	}
	// The largest numbers fit in the minimum size.
	if p := appendPayload(nil, sent, 99999, 9999999999, 0); len(p) > minPayloadBytes {
		t.Errorf("unpadded payload %d bytes > minPayloadBytes %d", len(p), minPayloadBytes)
	}
}

func TestParseSendTime(t *testing.T) {
	tests := []struct {
		data string
		want int64
		ok   bool
	}{
		{`{"t":5}`, 5, true},
		{`{ "t": 123 , "x":1}`, 123, true},
		{`{"x":1,"t":77}`, 77, true},
		{`{"text":"hi"}`, 0, false},
		{`{"t":"5"}`, 0, false},
		{`{"t":}`, 0, false},
		{`{"t":99999999999999999999}`, 0, false}, // overflows int64
		{``, 0, false},
	}
	for _, tt := range tests {
		got, ok := parseSendTime([]byte(tt.data))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseSendTime(%s) = %d, %v; want %d, %v", tt.data, got, ok, tt.want, tt.ok)
		}
	}
}
