package protocol

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// jsonMessageFrames are message frames as the encoder writes them, in
// every shape the fast path must take.
func jsonMessageFrames(t testing.TB) [][]byte {
	msgs := []Message{
		{Room: "chat.lobby", Offset: 42, Epoch: "9f3a", Event: "msg", Data: []byte(`{"text":"hi","n":[1,2.5,null,true],"s":"a\"b\\c"}`), From: "alice", Timestamp: 1700000000000},
		{Room: "cursor", Data: []byte(`"just a string"`), From: "bob", Timestamp: 1, Transient: true},
		{Room: "game.7", Offset: 18446744073709551615, Epoch: "e", Data: []byte{0, 1, 2, 0xff}, Binary: true, Timestamp: -5},
		{Room: "empty", Offset: 1, Epoch: "e"},
		{Room: "ünïcode ✓", Offset: 3, Epoch: "e", Event: "ev", Data: []byte(`["ü",{}]`), From: "zoë"},
		{Room: "n", Offset: 2, Epoch: "e", Data: []byte(`-0.5e+3`)},
		{Room: "null", Offset: 2, Epoch: "e", Data: []byte(`null`)},
	}
	var frames [][]byte
	for i := range msgs {
		b, err := JSON.AppendServerFrame(nil, &ServerFrame{Message: &msgs[i]})
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, b)
	}
	return frames
}

// TestFastJSONMessageTakesWhatTheEncoderWrites: every message frame the
// encoder writes goes through the fast path, to the general decoder's
// result.
func TestFastJSONMessageTakesWhatTheEncoderWrites(t *testing.T) {
	for _, frame := range jsonMessageFrames(t) {
		m, ok := fastJSONMessage(frame)
		if !ok {
			t.Errorf("fast path refused %s", frame)
			continue
		}
		want := slowJSONMessage(t, frame)
		if want == nil || !reflect.DeepEqual(*m, *want) {
			t.Errorf("fast path read %s as %+v; the general decoder as %+v", frame, *m, want)
		}
	}
}

// Shapes the encoder never writes are left to the general decoder.
func TestFastJSONMessageDeclines(t *testing.T) {
	for _, frame := range []string{
		`{"type":"reply","id":1}`,
		`{"type":"message", "room":"r"}`,
		`{"type":"message","offset":1,"room":"r"}`,
		`{"type":"message","room":"r","room":"s"}`,
		`{"type":"message","room":"a\nb"}`,
		`{"type":"message","room":"a\u00e9"}`,
		`{"type":"message","offset":01}`,
		`{"type":"message","offset":-1}`,
		`{"type":"message","offset":1.0}`,
		`{"type":"message","offset":18446744073709551616}`,
		`{"type":"message","ts":9223372036854775808}`,
		`{"type":"message","data":{"a":1} }`,
		`{"type":"message","data":[1,2}`,
		`{"type":"message","data":tru}`,
		`{"type":"message","Room":"r"}`,
		`{"type":"message","extra":1}`,
		`{"type":"message","room":"r"`,
		`{"type":"message","room":"r"}x`,
	} {
		if m, ok := fastJSONMessage([]byte(frame)); ok {
			t.Errorf("fast path took %s as %+v", frame, *m)
		}
	}
}

// slowJSONMessage decodes frame with encoding/json alone.
func slowJSONMessage(t testing.TB, frame []byte) *Message {
	var w jsonServerFrame
	if err := json.Unmarshal(frame, &w); err != nil || w.Type != typeMessage {
		return nil
	}
	m := &Message{Room: w.Room, Offset: w.Offset, Epoch: w.Epoch, Event: w.Event, From: w.From, Timestamp: w.Timestamp, Transient: w.Transient}
	if w.Encoding != "" {
		data, binary, err := dataFromJSON(w.Data, w.Encoding)
		if err != nil {
			return nil
		}
		m.Data, m.Binary = data, binary
	} else if len(w.Data) > 0 {
		m.Data = []byte(w.Data)
	}
	return m
}

// FuzzFastJSONMessage: whatever the fast path takes, encoding/json reads
// as a message frame to the same Message.
func FuzzFastJSONMessage(f *testing.F) {
	for _, frame := range jsonMessageFrames(f) {
		f.Add(frame)
	}
	f.Add([]byte(`{"type":"message","data":"\u2028","ts":-0}`))
	f.Add([]byte(`{"type":"message","data":[{"a":"]"},"}"],"transient":false}`))
	f.Fuzz(func(t *testing.T, frame []byte) {
		if !utf8.Valid(frame) {
			return // DecodeServerFrame refuses it before the fast path
		}
		m, ok := fastJSONMessage(frame)
		if !ok {
			return
		}
		want := slowJSONMessage(t, frame)
		if want == nil {
			t.Fatalf("fast path took %q; encoding/json refuses it", frame)
		}
		if !reflect.DeepEqual(*m, *want) {
			t.Fatalf("fast path read %q as %+v; encoding/json as %+v", frame, *m, *want)
		}
	})
}
