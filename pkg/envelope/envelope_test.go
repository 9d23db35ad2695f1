package envelope

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	cases := []Envelope{
		{},
		{App: "demo", Room: "chat.*#:/ünï", Offset: 1<<63 + 5, Epoch: "e1", Event: "msg", From: "u1", Timestamp: -1, Data: []byte(`{"a":1}`)},
		{App: "a", Room: "r", Transient: true, Timestamp: 1700000000000, Data: bytes.Repeat([]byte{0, 255}, 40000)},
		{App: "a", Room: "r", Offset: 7, Binary: true, Data: []byte{0, 0xff, 0xc3, 0x28}},
		{App: "a", Room: "r", Transient: true, Binary: true, Data: []byte{0}},
	}
	for _, want := range cases {
		got, err := Decode(want.Marshal())
		if err != nil {
			t.Fatalf("Decode(%+v): %v", want, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip: got %+v, want %+v", got, want)
		}
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	good := (&Envelope{App: "a", Room: "r", Data: []byte("x")}).Marshal()
	bad := [][]byte{
		nil,
		{Version},
		{Version + 1, 0, 0, 0},
		good[:len(good)-1],
		append(append([]byte{}, good...), 0),
		{Version, 0, 0x80}, // unterminated varint
		{Version, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for _, b := range bad {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%x) = %v, want ErrMalformed", b, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add((&Envelope{App: "a", Room: "r", Offset: 3, Epoch: "e", Data: []byte(`{}`)}).Marshal())
	f.Add([]byte{Version, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(e.Marshal())
		if err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("re-encode mismatch: %+v vs %+v (%v)", again, e, err)
		}
	})
}

func BenchmarkMarshalDecode(b *testing.B) {
	e := Envelope{App: "demo", Room: "room-42", Offset: 123456, Epoch: "a1b2c3d4e5f60718", Event: "chat", From: "user-1", Timestamp: 1700000000000, Data: bytes.Repeat([]byte("x"), 200)}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.Append(buf[:0])
		if _, err := Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// The binary flag reaches the client-facing message, and a flag on no data
// does not.
func TestBinaryFlag(t *testing.T) {
	e := Envelope{App: "a", Room: "r", Binary: true, Data: []byte{0, 1}}
	got, err := Decode(e.Marshal())
	if err != nil || !got.Binary {
		t.Fatalf("Decode: %+v, %v", got, err)
	}
	if m := got.Message(); !m.Binary || !bytes.Equal(m.Data, []byte{0, 1}) {
		t.Fatalf("Message() = %+v", m)
	}
	if m := (&Envelope{Binary: true}).Message(); m.Binary {
		t.Fatal("binary flag on a message without data")
	}
	if m := (&Envelope{Data: []byte(`{}`)}).Message(); m.Binary {
		t.Fatal("JSON data marked binary")
	}
}
