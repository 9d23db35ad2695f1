package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// binaryPayload has what text encodings choke on: zero bytes, invalid
// UTF-8, a msgpack nil code and bytes that look like a str header.
var binaryPayload = []byte{0x00, 0xff, 0xfe, 0xc3, 0x28, 0xc0, 0xa1, 0x00}

func TestCodecForSubprotocols(t *testing.T) {
	for _, c := range []protocol.Codec{protocol.JSON, protocol.Msgpack} {
		if got := protocol.CodecFor(c.Subprotocol()); got != c {
			t.Errorf("CodecFor(%q) = %v", c.Subprotocol(), got)
		}
	}
	if protocol.Msgpack.Subprotocol() != "roomcast.v1.msgpack" || !protocol.Msgpack.Binary() {
		t.Errorf("msgpack codec: %q, binary %v", protocol.Msgpack.Subprotocol(), protocol.Msgpack.Binary())
	}
	if protocol.JSON.Binary() {
		t.Error("the JSON codec uses text frames")
	}
}

// Everything the JSON codec accepts survives the msgpack codec unchanged:
// the two carry one model.
func TestMsgpackCarriesWhatJSONCarries(t *testing.T) {
	n := 0
	for _, s := range commandSeeds {
		c, err := protocol.JSON.DecodeCommand([]byte(s.frame))
		if err != nil {
			continue
		}
		n++
		enc, err := protocol.Msgpack.AppendCommand(nil, &c)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got, err := protocol.Msgpack.DecodeCommand(enc)
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("%s: msgpack round trip: %+v, %v; want %+v", s.name, got, err, c)
		}
	}
	for _, s := range serverFrameSeeds {
		f, err := protocol.JSON.DecodeServerFrame([]byte(s.frame))
		if err != nil {
			continue
		}
		n++
		enc, err := protocol.Msgpack.AppendServerFrame(nil, &f)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got, err := protocol.Msgpack.DecodeServerFrame(enc)
		if err != nil || !reflect.DeepEqual(got, f) {
			t.Errorf("%s: msgpack round trip: %+v, %v; want %+v", s.name, got, err, f)
		}
	}
	if n < 40 {
		t.Fatalf("only %d seeds were accepted by the JSON codec", n)
	}
}

// The msgpack encoding uses the JSON encoding's keys, nesting included.
func TestMsgpackKeysAreTheJSONKeys(t *testing.T) {
	cmds := []protocol.Command{
		{ID: 1, Op: protocol.OpPublish, Room: "r", Event: "e", Data: []byte(`{"a":1}`), Transient: true},
		{ID: 2, Op: protocol.OpPublish, Room: "r", Data: binaryPayload, Binary: true, IdempotencyKey: "k"},
		{ID: 3, Op: protocol.OpJoin, Room: "r", Since: &protocol.Position{Offset: 4, Epoch: "e"}},
		{ID: 4, Op: protocol.OpResume, SessionID: "s", ResumeToken: "t"},
		{ID: 5, Op: protocol.OpHistory, Room: "r", Cursor: "c", Limit: 9, History: &protocol.HistoryQuery{Epoch: "e", FromOffset: 1, ToOffset: 2, Start: 3, End: 4, Backward: true}},
		{ID: 6, Op: protocol.OpRefresh, Token: "x"},
		{ID: 7, Op: protocol.OpMetricsSubscribe, Room: "r", IntervalMS: 2000},
	}
	for _, c := range cmds {
		j, err := protocol.JSON.AppendCommand(nil, &c)
		if err != nil {
			t.Fatal(err)
		}
		m, err := protocol.Msgpack.AppendCommand(nil, &c)
		if err != nil {
			t.Fatal(err)
		}
		compareKeys(t, string(c.Op), j, m)
	}
	member := protocol.PresenceMember{ClientID: "u", ConnectionID: "s", Data: []byte(`{"n":1}`), Since: 5}
	frames := []protocol.ServerFrame{
		{Connected: &protocol.Connected{ConnectionID: "c", SessionID: "s", ResumeToken: "t", ClientID: "u", Node: "n", HeartbeatMS: 1, Limits: protocol.Limits{MaxMessageBytes: 1, MaxRoomNameBytes: 2, MaxRooms: 3, PublishRate: 4.5, PublishBurst: 6}}},
		{Reply: &protocol.Reply{ID: 1, Room: "r", Position: &protocol.Position{Offset: 2, Epoch: "e"}, Recovered: true}},
		{Reply: &protocol.Reply{ID: 2, Error: protocol.NewError(protocol.CodeForbidden, "no")}},
		{Reply: &protocol.Reply{ID: 3, SessionID: "s", ResumeToken: "t", Rooms: []string{"a"}}},
		{Reply: &protocol.Reply{ID: 4, Room: "r", Members: []protocol.PresenceMember{member}, Cursor: "c", Count: &protocol.PresenceCount{Clients: 1, Connections: 2}}},
		{Reply: &protocol.Reply{ID: 5, Room: "r", Messages: []protocol.Message{{Offset: 1, Epoch: "e", Event: "v", Data: binaryPayload, Binary: true, From: "u", Timestamp: 7}}, Cursor: "c"}},
		{Message: &protocol.Message{Room: "r", Offset: 1, Epoch: "e", Event: "v", Data: binaryPayload, Binary: true, From: "u", Timestamp: 2}},
		{Message: &protocol.Message{Room: "r", Data: []byte(`[1]`), From: "u", Timestamp: 2, Transient: true}},
		{Presence: &protocol.PresenceEvent{Room: "r", Action: protocol.PresenceJoin, Member: member, Offset: 1, Epoch: "e", Timestamp: 2}},
		{Metrics: &protocol.RoomMetrics{Room: "r", Members: 1, Clients: 2, Connections: 3, MessageRate: 1.5, Timestamp: 9}},
		{Error: &protocol.Error{Code: protocol.CodeMissingID, Message: "m", ID: 3}},
	}
	for _, f := range frames {
		j, err := protocol.JSON.AppendServerFrame(nil, &f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := protocol.Msgpack.AppendServerFrame(nil, &f)
		if err != nil {
			t.Fatal(err)
		}
		compareKeys(t, string(j), j, m)
	}
}

// compareKeys checks that a JSON and a msgpack encoding have the same key
// paths. The JSON encoding's "encoding" marker is the one key msgpack does
// not need (bin is the marker there); data values are not descended into.
func compareKeys(t *testing.T, what string, j, m []byte) {
	t.Helper()
	var jv, mv any
	if err := json.Unmarshal(j, &jv); err != nil {
		t.Fatal(err)
	}
	if err := msgpack.Unmarshal(m, &mv); err != nil {
		t.Fatalf("%s: msgpack.Unmarshal: %v", what, err)
	}
	jk, mk := keyPaths("", jv, nil), keyPaths("", mv, nil)
	var want []string
	for _, k := range jk {
		if !strings.HasSuffix(k, "encoding") {
			want = append(want, k)
		}
	}
	if !reflect.DeepEqual(want, mk) {
		t.Errorf("%s: keys differ\n json: %v\n msgpack: %v", what, want, mk)
	}
}

func keyPaths(prefix string, v any, out []string) []string {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, prefix+k)
			if k != "data" {
				out = keyPaths(prefix+k+".", v[k], out)
			}
		}
	case []any:
		for _, x := range v {
			out = keyPaths(prefix+"[].", x, out)
		}
	}
	return out
}

func TestBinaryPayloadTravelsAsBytes(t *testing.T) {
	msg := &protocol.ServerFrame{Message: &protocol.Message{Room: "r", Offset: 3, Epoch: "e", Data: binaryPayload, Binary: true, From: "u", Timestamp: 1}}

	// msgpack: a bin 8 header and the bytes, as they are.
	m, err := protocol.Msgpack.AppendServerFrame(nil, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(m, append([]byte{0xc4, byte(len(binaryPayload))}, binaryPayload...)) {
		t.Fatalf("msgpack frame %x does not carry the payload as bin", m)
	}
	got, err := protocol.Msgpack.DecodeServerFrame(m)
	if err != nil || !reflect.DeepEqual(got.Message, msg.Message) {
		t.Fatalf("decode: %+v, %v", got.Message, err)
	}

	// JSON: a base64 string and the marker; the rest as always.
	j, err := protocol.JSON.AppendServerFrame(nil, msg)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"message","room":"r","offset":3,"epoch":"e","data":"AP/+wyjAoQA=","encoding":"base64","from":"u","ts":1}`
	if string(j) != want {
		t.Fatalf("JSON frame\n got %s\nwant %s", j, want)
	}
	got, err = protocol.JSON.DecodeServerFrame(j)
	if err != nil || !reflect.DeepEqual(got.Message, msg.Message) {
		t.Fatalf("JSON decode: %+v, %v", got.Message, err)
	}

	// A JSON message without the marker is unchanged from before.
	j, err = protocol.JSON.AppendServerFrame(nil, &protocol.ServerFrame{Message: &protocol.Message{Room: "r", Offset: 3, Epoch: "e", Data: []byte(`{"text":"hi"}`), From: "u", Timestamp: 1}})
	if err != nil || string(j) != `{"type":"message","room":"r","offset":3,"epoch":"e","data":{"text":"hi"},"from":"u","ts":1}` {
		t.Fatalf("JSON message changed: %s (%v)", j, err)
	}
}

func TestPublishBinary(t *testing.T) {
	want := protocol.Command{ID: 9, Op: protocol.OpPublish, Room: "r", Data: binaryPayload, Binary: true}
	// JSON clients publish bytes as base64 with the marker.
	c, err := protocol.JSON.DecodeCommand([]byte(`{"id":9,"op":"publish","room":"r","data":"AP/+wyjAoQA=","encoding":"base64"}`))
	if err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("JSON: %+v, %v", c, err)
	}
	enc, err := protocol.JSON.AppendCommand(nil, &want)
	if err != nil || string(enc) != `{"id":9,"op":"publish","room":"r","data":"AP/+wyjAoQA=","encoding":"base64"}` {
		t.Fatalf("JSON encode: %s, %v", enc, err)
	}
	// msgpack clients as bin.
	c, err = protocol.Msgpack.DecodeCommand([]byte(mp(kv{"id", 9, "op", "publish", "room", "r", "data", binaryPayload})))
	if err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("msgpack: %+v, %v", c, err)
	}
	// and JSON values as a str of their text.
	c, err = protocol.Msgpack.DecodeCommand([]byte(mp(kv{"id", 9, "op", "publish", "room", "r", "data", `{"a": [1]}`})))
	if err != nil || c.Binary || string(c.Data) != `{"a": [1]}` {
		t.Fatalf("msgpack JSON text: %+v, %v", c, err)
	}
}

func TestMsgpackDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		code  protocol.Code
		id    uint64
	}{
		{"not a map", mp([]any{1}), protocol.CodeBadRequest, 0},
		{"a JSON text frame", `{"id":1,"op":"join"}`, protocol.CodeBadRequest, 0},
		{"empty", "", protocol.CodeBadRequest, 0},
		{"truncated", mp(kv{"id", 3, "op", "join", "room", "lobby"})[:12], protocol.CodeBadRequest, 0},
		{"trailing bytes", mp(kv{"id", 3, "op", "join", "room", "r"}) + "\xc0", protocol.CodeBadRequest, 0},
		{"invalid code", "\x81\xa2id\xc1", protocol.CodeBadRequest, 0},
		{"id a string", mp(kv{"id", "3", "op", "join", "room", "r"}), protocol.CodeBadRequest, 0},
		{"id negative", mp(kv{"id", -3, "op", "join", "room", "r"}), protocol.CodeBadRequest, 0},
		{"room an int, id after it", mp(kv{"room", 5, "op", "join", "id", 3}), protocol.CodeBadRequest, 3},
		{"data a map", mp(kv{"id", 3, "op", "publish", "room", "r", "data", kv{"a", 1}}), protocol.CodeBadRequest, 3},
		{"data str not JSON", mp(kv{"id", 3, "op", "publish", "room", "r", "data", "hello"}), protocol.CodeBadRequest, 3},
		{"event invalid UTF-8", mp(kv{"id", 3, "op", "publish", "room", "r", "event", "\xff"}), protocol.CodeBadRequest, 3},
		{"transient a string", mp(kv{"id", 3, "op", "publish", "room", "r", "transient", "yes"}), protocol.CodeBadRequest, 3},
		{"key not a string", mp(kv{"id", 3, "op", "join", 1, "r"}), protocol.CodeBadRequest, 3},
		{"limit negative", mp(kv{"id", 3, "op", "presence.get", "room", "r", "limit", -1}), protocol.CodeBadRequest, 3},
		{"since not a map", mp(kv{"id", 3, "op", "join", "room", "r", "since", 4}), protocol.CodeBadRequest, 3},
		{"missing id", mp(kv{"op", "join", "room", "r"}), protocol.CodeMissingID, 0},
		{"zero id", mp(kv{"id", 0, "op", "join", "room", "r"}), protocol.CodeMissingID, 0},
		{"unknown op", mp(kv{"id", 3, "op", "subscribe"}), protocol.CodeUnknownOp, 3},
		{"missing op", mp(kv{"id", 3}), protocol.CodeUnknownOp, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := protocol.Msgpack.DecodeCommand([]byte(tc.frame))
			var perr *protocol.Error
			if !errors.As(err, &perr) {
				t.Fatalf("DecodeCommand = %+v, %v; want %s", c, err, tc.code)
			}
			if perr.Code != tc.code || perr.ID != tc.id {
				t.Fatalf("DecodeCommand error %s (id %d): %s; want %s (id %d)", perr.Code, perr.ID, perr.Message, tc.code, tc.id)
			}
		})
	}
}

func TestMsgpackAcceptsWhatItShould(t *testing.T) {
	c, err := protocol.Msgpack.DecodeCommand([]byte(mp(kv{
		"room", "chat", "future", kv{"x", []any{1, nil}}, strings.Repeat("k", 40), 1,
		"id", uint64(1) << 63, "op", "publish", "data", nil, "event", "", "transient", nil,
	})))
	want := protocol.Command{ID: 1 << 63, Op: protocol.OpPublish, Room: "chat"}
	if err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("DecodeCommand = %+v, %v; want %+v", c, err, want)
	}
	// An empty bin is no data.
	c, err = protocol.Msgpack.DecodeCommand([]byte(mp(kv{"id", 1, "op", "publish", "room", "r", "data", []byte{}})))
	if err != nil || c.Data != nil || c.Binary {
		t.Fatalf("empty bin: %+v, %v", c, err)
	}
}

func TestMsgpackRefusesToEncodeBadData(t *testing.T) {
	for _, f := range []protocol.ServerFrame{
		{Message: &protocol.Message{Room: "r", Data: []byte("\xff")}},
		{Message: &protocol.Message{Room: "r", Data: []byte("not json")}},
		{Presence: &protocol.PresenceEvent{Room: "r", Member: protocol.PresenceMember{Data: []byte("{")}}},
		{},
	} {
		if b, err := protocol.Msgpack.AppendServerFrame([]byte("x"), &f); err == nil || string(b) != "x" {
			t.Errorf("AppendServerFrame(%+v) = %q, %v; want an error and dst unchanged", f, b, err)
		}
	}
	if _, err := protocol.Msgpack.AppendCommand(nil, &protocol.Command{ID: 1, Op: protocol.OpPublish, Data: []byte("nope")}); err == nil {
		t.Error("AppendCommand accepted data that is neither binary nor JSON")
	}
}

// A map with 16 or more entries needs a map16 header; fewer, a fixmap.
func TestMsgpackMapHeaders(t *testing.T) {
	c := protocol.Command{ID: 1, Op: protocol.OpHistory, Room: "r", Event: "e", Data: []byte("1"), Transient: true,
		IdempotencyKey: "k", Since: &protocol.Position{Offset: 1, Epoch: "e"}, SessionID: "s", ResumeToken: "t",
		Cursor: "c", Limit: 1, Token: "t", IntervalMS: 1000,
		History: &protocol.HistoryQuery{Epoch: "e", FromOffset: 1, ToOffset: 2, Start: 3, End: 4, Backward: true}}
	b, err := protocol.Msgpack.AppendCommand(nil, &c)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0xde || b[1] != 0 || b[2] != 20 {
		t.Fatalf("header % x, want map16 of 20", b[:3])
	}
	var m map[string]any
	if err := msgpack.Unmarshal(b, &m); err != nil || len(m) != 20 {
		t.Fatalf("msgpack.Unmarshal: %d keys, %v", len(m), err)
	}
	got, err := protocol.Msgpack.DecodeCommand(b)
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	b, _ = protocol.Msgpack.AppendCommand([]byte("prefix"), &protocol.Command{ID: 1, Op: protocol.OpJoin, Room: "r"})
	if string(b[:6]) != "prefix" || b[6] != 0x83 {
		t.Fatalf("appended % x", b)
	}
}

// Skipping a deeply nested unknown value does not recurse: a frame of
// nested arrays as large as a gateway accepts decodes with a small stack.
func TestMsgpackSkipsDeepNesting(t *testing.T) {
	head := mp(kv{"id", 1, "op", "join", "room", "r"})
	frame := []byte{0x84}
	frame = append(frame, head[1:]...)
	frame = append(frame, 0xa6)
	frame = append(frame, "future"...)
	frame = append(frame, bytes.Repeat([]byte{0x91}, 95000)...)
	frame = append(frame, 0xc0)
	c, err := protocol.Msgpack.DecodeCommand(frame)
	if err != nil || c.ID != 1 || c.Room != "r" {
		t.Fatalf("DecodeCommand = %+v, %v", c, err)
	}
	// Truncated inside the nesting: bad_request, no panic.
	if _, err := protocol.Msgpack.DecodeCommand(frame[:len(frame)-1]); err == nil {
		t.Fatal("accepted a truncated frame")
	}
	// Declared lengths far beyond the frame end the walk at the frame's end.
	if _, err := protocol.Msgpack.DecodeCommand([]byte{0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff, 0xdf, 0xff, 0xff, 0xff, 0xff}); err == nil {
		t.Fatal("accepted huge declared lengths")
	}
}

// TestMsgpackRepeatedStrings: whatever strings the decoder keeps from
// earlier frames (TestRecentStrAllocations), a changed, long or invalid
// value is still read as it is.
func TestMsgpackRepeatedStrings(t *testing.T) {
	msg := func(room, epoch string) []byte {
		f, err := protocol.Msgpack.AppendServerFrame(nil, &protocol.ServerFrame{Message: &protocol.Message{
			Room: room, Offset: 7, Epoch: epoch, Event: "move", From: "user-1", Timestamp: 1, Data: []byte{1, 2}, Binary: true}})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	same := msg("game-42", "e1")
	decode := func(frame []byte) *protocol.Message {
		f, err := protocol.Msgpack.DecodeServerFrame(frame)
		if err != nil || f.Message == nil {
			t.Fatalf("decode: %+v, %v", f, err)
		}
		return f.Message
	}
	if m := decode(same); m.Room != "game-42" || m.Epoch != "e1" {
		t.Errorf("decoded as %+v", m)
	}
	if m := decode(msg("game-43", "e2")); m.Room != "game-43" || m.Epoch != "e2" || m.Event != "move" || m.From != "user-1" {
		t.Errorf("changed values decoded as %+v", m)
	}
	long := strings.Repeat("r", 100) // longer than the comparison buffer
	if m := decode(msg(long, "e2")); m.Room != long {
		t.Errorf("long room decoded as %q", m.Room)
	}
	cmd := mp(kv{"id", 3, "op", "publish", "room", "game-43", "event", "\xff"})
	if _, err := protocol.Msgpack.DecodeCommand([]byte(cmd)); err == nil {
		t.Error("an event of invalid UTF-8 was accepted")
	}
}
