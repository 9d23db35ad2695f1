package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// specialRooms are room names that must survive the codec byte for byte:
// the separators that AMQP topic routing would treat specially (they never
// reach a routing key), JSON-sensitive characters and non-ASCII text.
var specialRooms = []string{
	"lobby",
	"chat.general.2024",
	"cursors.*",
	"orders.#",
	"team:42:doc",
	"files/a/b/c",
	"комната",
	"部屋-東京",
	"🎉 party",
	`quote"back\slash`,
	"<html>&amp;</html>",
	"line\u2028sep\u2029para",
	"a b\tc",
}

// payloads are Data values in compact form, so that they survive the
// encoder's compaction unchanged.
var payloads = []string{
	`{"text":"héllo 🌍","n":[1,2,{"deep":{"x":null}}]}`,
	`123456789012345678901234567890`,
	`-1.5e300`,
	`18446744073709551615`,
	`"just a string with \"escapes\" and \u0000"`,
	`"<b>&</b>"`,
	`null`,
	`true`,
	`[]`,
	`{}`,
	strings.Repeat(`[`, 200) + strings.Repeat(`]`, 200),
}

func TestJSONCodecIdentity(t *testing.T) {
	if got := protocol.JSON.Subprotocol(); got != protocol.SubprotocolJSON {
		t.Errorf("Subprotocol() = %q, want %q", got, protocol.SubprotocolJSON)
	}
	if protocol.JSON.Binary() {
		t.Error("JSON codec must use text frames")
	}
	if protocol.CodecFor(protocol.SubprotocolJSON) != protocol.JSON {
		t.Error("CodecFor(SubprotocolJSON) is not protocol.JSON")
	}
	for _, sp := range []string{"", "roomcast.v1", "roomcast.v2.json", "ROOMCAST.V1.JSON", protocol.TokenSubprotocolPrefix + "abc"} {
		if c := protocol.CodecFor(sp); c != nil {
			t.Errorf("CodecFor(%q) = %v, want nil", sp, c)
		}
	}
}

func roundTripCommand(t *testing.T, in protocol.Command) {
	t.Helper()
	frame, err := protocol.JSON.AppendCommand(nil, &in)
	if err != nil {
		t.Fatalf("AppendCommand(%+v): %v", in, err)
	}
	if !json.Valid(frame) {
		t.Fatalf("AppendCommand produced invalid JSON: %q", frame)
	}
	if !utf8.Valid(frame) {
		t.Fatalf("AppendCommand produced a text frame that is not UTF-8: %q", frame)
	}
	out, err := protocol.JSON.DecodeCommand(frame)
	if err != nil {
		t.Fatalf("DecodeCommand(%s): %v", frame, err)
	}
	if len(in.Data) == 0 {
		in.Data = nil // empty and absent data are the same on the wire
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip mismatch\n in: %+v\nout: %+v\nframe: %s", in, out, frame)
	}
}

func TestCommandRoundTrip(t *testing.T) {
	ops := []protocol.Op{protocol.OpJoin, protocol.OpLeave, protocol.OpPublish}
	ids := []uint64{1, 42, 1<<53 + 1, math.MaxUint64}
	for _, op := range ops {
		for _, id := range ids {
			for _, room := range specialRooms {
				roundTripCommand(t, protocol.Command{ID: id, Op: op, Room: room})
			}
		}
	}
	for _, data := range payloads {
		roundTripCommand(t, protocol.Command{ID: 7, Op: protocol.OpPublish, Room: "r", Data: []byte(data)})
		roundTripCommand(t, protocol.Command{ID: 8, Op: protocol.OpPublish, Room: "r", Data: []byte(data), Transient: true})
	}
	// Every field at once, with unicode everywhere.
	roundTripCommand(t, protocol.Command{
		ID:             math.MaxUint64,
		Op:             protocol.OpPublish,
		Room:           "部屋.*:#/🎉",
		Event:          "cursor.moved ✓",
		Data:           []byte(`{"x":1.25,"y":-3,"who":"ünïcödé"}`),
		Transient:      true,
		IdempotencyKey: "key-😀-\u00e9",
	})
	// Absent and empty data both come back as nil.
	roundTripCommand(t, protocol.Command{ID: 1, Op: protocol.OpPublish, Room: "r"})
	roundTripCommand(t, protocol.Command{ID: 1, Op: protocol.OpPublish, Room: "r", Data: []byte{}})
	// A room with no name round-trips too; validation is ValidateRoom's job.
	roundTripCommand(t, protocol.Command{ID: 1, Op: protocol.OpLeave})
}

// TestCommandWireFormat pins the exact JSON keys: clients in other languages
// depend on them, and docs/protocol.md documents them.
func TestCommandWireFormat(t *testing.T) {
	tests := []struct {
		cmd  protocol.Command
		want string
	}{
		{protocol.Command{ID: 1, Op: protocol.OpJoin, Room: "a"}, `{"id":1,"op":"join","room":"a"}`},
		{protocol.Command{ID: 2, Op: protocol.OpLeave, Room: "a"}, `{"id":2,"op":"leave","room":"a"}`},
		{
			protocol.Command{ID: 3, Op: protocol.OpPublish, Room: "a", Event: "e", Data: []byte(`{"k":"<v>"}`), Transient: true, IdempotencyKey: "k1"},
			`{"id":3,"op":"publish","room":"a","event":"e","data":{"k":"<v>"},"transient":true,"idempotency_key":"k1"}`,
		},
		// Data is compacted on the way out.
		{protocol.Command{ID: 4, Op: protocol.OpPublish, Room: "a", Data: []byte(" [1, 2,\n3] ")}, `{"id":4,"op":"publish","room":"a","data":[1,2,3]}`},
		{protocol.Command{ID: math.MaxUint64, Op: protocol.OpJoin, Room: "x"}, `{"id":18446744073709551615,"op":"join","room":"x"}`},
	}
	for _, tc := range tests {
		got, err := protocol.JSON.AppendCommand(nil, &tc.cmd)
		if err != nil {
			t.Fatalf("AppendCommand(%+v): %v", tc.cmd, err)
		}
		if string(got) != tc.want {
			t.Errorf("AppendCommand(%+v)\n got %s\nwant %s", tc.cmd, got, tc.want)
		}
	}
}

func TestAppendCommandRejectsInvalidData(t *testing.T) {
	for _, data := range []string{`{`, `hello`, `{"a":1}{"b":2}`, `'x'`, `NaN`, `01`} {
		prefix := []byte("prefix")
		out, err := protocol.JSON.AppendCommand(prefix, &protocol.Command{ID: 1, Op: protocol.OpPublish, Room: "r", Data: []byte(data)})
		if err == nil {
			t.Errorf("AppendCommand with data %q: no error, got %s", data, out)
			continue
		}
		if string(out) != "prefix" {
			t.Errorf("AppendCommand with data %q changed dst on error: %q", data, out)
		}
	}
}

func TestAppendCommandAppendsToDst(t *testing.T) {
	dst := make([]byte, 0, 256)
	dst = append(dst, "HEAD"...)
	out, err := protocol.JSON.AppendCommand(dst, &protocol.Command{ID: 9, Op: protocol.OpJoin, Room: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `HEAD{"id":9,"op":"join","room":"r"}`; string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}
	if &out[0] != &dst[:1][0] {
		t.Error("AppendCommand did not reuse dst's spare capacity")
	}
}

// TestDecodeCommandDoesNotAliasFrame matters because the gateway reuses its
// read buffer for the next frame while the decoded command is still queued.
func TestDecodeCommandDoesNotAliasFrame(t *testing.T) {
	frame := []byte(`{"id":5,"op":"publish","room":"room","event":"ev","data":{"a":"bcdef"},"idempotency_key":"idem"}`)
	c, err := protocol.JSON.DecodeCommand(frame)
	if err != nil {
		t.Fatal(err)
	}
	for i := range frame {
		frame[i] = 'X'
	}
	want := protocol.Command{ID: 5, Op: protocol.OpPublish, Room: "room", Event: "ev", Data: []byte(`{"a":"bcdef"}`), IdempotencyKey: "idem"}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("decoded command changed when the frame buffer was reused:\n got %+v\nwant %+v", c, want)
	}
}

func TestDecodeCommandAccepts(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		want  protocol.Command
	}{
		{"join", `{"id":1,"op":"join","room":"a"}`, protocol.Command{ID: 1, Op: protocol.OpJoin, Room: "a"}},
		{"leave", `{"op":"leave","room":"a","id":2}`, protocol.Command{ID: 2, Op: protocol.OpLeave, Room: "a"}},
		{"publish all fields", `{"id":3,"op":"publish","room":"a","event":"e","data":[1,"2",{"3":null}],"transient":true,"idempotency_key":"k"}`,
			protocol.Command{ID: 3, Op: protocol.OpPublish, Room: "a", Event: "e", Data: []byte(`[1,"2",{"3":null}]`), Transient: true, IdempotencyKey: "k"}},
		{"whitespace around", " \t\r\n{ \"id\" : 4 , \"op\" : \"join\" , \"room\" : \"a\" }\n ", protocol.Command{ID: 4, Op: protocol.OpJoin, Room: "a"}},
		{"data keeps inner whitespace", `{"id":5,"op":"publish","data": [1, 2] }`, protocol.Command{ID: 5, Op: protocol.OpPublish, Data: []byte(`[1, 2]`)}},
		{"data large number verbatim", `{"id":6,"op":"publish","data":123456789012345678901234567890.5e-7}`, protocol.Command{ID: 6, Op: protocol.OpPublish, Data: []byte(`123456789012345678901234567890.5e-7`)}},
		{"data null is kept", `{"id":7,"op":"publish","data":null}`, protocol.Command{ID: 7, Op: protocol.OpPublish, Data: []byte(`null`)}},
		{"data empty string", `{"id":8,"op":"publish","data":""}`, protocol.Command{ID: 8, Op: protocol.OpPublish, Data: []byte(`""`)}},
		{"max id", `{"id":18446744073709551615,"op":"join","room":"a"}`, protocol.Command{ID: math.MaxUint64, Op: protocol.OpJoin, Room: "a"}},
		{"unknown fields ignored (forward compatible)", `{"id":9,"op":"join","room":"a","later":{"offset":3},"v":2}`, protocol.Command{ID: 9, Op: protocol.OpJoin, Room: "a"}},
		{"escaped unicode room", `{"id":10,"op":"join","room":"\u00e9\ud83c\udf89.*#:/"}`, protocol.Command{ID: 10, Op: protocol.OpJoin, Room: "é🎉.*#:/"}},
		{"transient false", `{"id":11,"op":"publish","room":"a","transient":false}`, protocol.Command{ID: 11, Op: protocol.OpPublish, Room: "a"}},
		{"null strings are empty", `{"id":12,"op":"join","room":null,"event":null}`, protocol.Command{ID: 12, Op: protocol.OpJoin}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := protocol.JSON.DecodeCommand([]byte(tc.frame))
			if err != nil {
				t.Fatalf("DecodeCommand(%s): %v", tc.frame, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("DecodeCommand(%s)\n got %+v\nwant %+v", tc.frame, got, tc.want)
			}
		})
	}
}

func TestDecodeCommandRejects(t *testing.T) {
	const (
		bad     = protocol.CodeBadRequest
		unknown = protocol.CodeUnknownOp
		missing = protocol.CodeMissingID
	)
	deep := `{"id":1,"op":"publish","data":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`
	tests := []struct {
		name  string
		frame string
		code  protocol.Code
		// id is the expected Error.ID. It is checked for every code except
		// bad_request, where the id may or may not be readable (see
		// found_bugs_test.go).
		id uint64
	}{
		// Not JSON at all, or cut short.
		{"empty frame", ``, bad, 0},
		{"whitespace only", " \n\t", bad, 0},
		{"garbage", `hello`, bad, 0},
		{"open brace", `{`, bad, 0},
		{"truncated in key", `{"id":1,"o`, bad, 0},
		{"truncated in value", `{"id":1,"op":"jo`, bad, 0},
		{"missing close brace", `{"id":1,"op":"join"`, bad, 0},
		{"trailing comma", `{"id":1,"op":"join",}`, bad, 0},
		{"single quotes", `{'id':1,'op':'join'}`, bad, 0},
		{"unquoted key", `{id:1,op:"join"}`, bad, 0},
		{"trailing garbage", `{"id":1,"op":"join"} x`, bad, 0},
		{"two objects", `{"id":1,"op":"join"}{"id":2,"op":"join"}`, bad, 0},
		{"byte order mark", "\xef\xbb\xbf{\"id\":1,\"op\":\"join\"}", bad, 0},
		{"invalid escape", `{"id":1,"op":"join","room":"\x"}`, bad, 0},
		{"raw newline in string", "{\"id\":1,\"op\":\"join\",\"room\":\"a\nb\"}", bad, 0},
		{"NUL byte", "{\"id\":1,\x00\"op\":\"join\"}", bad, 0},

		// Valid JSON, not an object.
		{"top-level array", `[]`, bad, 0},
		{"top-level array of command", `[{"id":1,"op":"join"}]`, bad, 0},
		{"top-level string", `"join"`, bad, 0},
		{"top-level number", `42`, bad, 0},
		{"top-level bool", `true`, bad, 0},

		// The request id.
		{"empty object", `{}`, missing, 0},
		{"no id", `{"op":"join","room":"a"}`, missing, 0},
		{"id zero", `{"id":0,"op":"join","room":"a"}`, missing, 0},
		{"id null", `{"id":null,"op":"join","room":"a"}`, missing, 0},
		{"no id and unknown op", `{"op":"subscribe"}`, missing, 0},
		{"negative id", `{"id":-1,"op":"join","room":"a"}`, bad, 0},
		{"id as string", `{"id":"1","op":"join","room":"a"}`, bad, 0},
		{"id 2^64", `{"id":18446744073709551616,"op":"join","room":"a"}`, bad, 0},
		{"id huge", `{"id":1000000000000000000000000000000,"op":"join"}`, bad, 0},
		{"id fraction", `{"id":1.5,"op":"join","room":"a"}`, bad, 0},
		{"id 1.0", `{"id":1.0,"op":"join","room":"a"}`, bad, 0},
		{"id exponent", `{"id":1e3,"op":"join","room":"a"}`, bad, 0},
		{"id bool", `{"id":true,"op":"join"}`, bad, 0},
		{"id object", `{"id":{},"op":"join"}`, bad, 0},
		{"id leading zero", `{"id":01,"op":"join"}`, bad, 0},

		// The op.
		{"no op", `{"id":3,"room":"a"}`, unknown, 3},
		{"empty op", `{"id":4,"op":""}`, unknown, 4},
		{"null op", `{"id":5,"op":null}`, unknown, 5},
		{"unknown op", `{"id":6,"op":"subscribe","room":"a"}`, unknown, 6},
		{"op wrong case", `{"id":7,"op":"JOIN","room":"a"}`, unknown, 7},
		{"op with space", `{"id":8,"op":"join ","room":"a"}`, unknown, 8},
		{"op max id", `{"id":18446744073709551615,"op":"bogus.op"}`, unknown, math.MaxUint64},
		{"op as number", `{"id":9,"op":1}`, bad, 0},
		{"op as array", `{"id":9,"op":["join"]}`, bad, 0},

		// Other fields with the wrong type.
		{"room number", `{"id":10,"op":"join","room":5}`, bad, 0},
		{"room object", `{"id":10,"op":"join","room":{"name":"a"}}`, bad, 0},
		{"event array", `{"id":10,"op":"publish","room":"a","event":[]}`, bad, 0},
		{"transient string", `{"id":10,"op":"publish","room":"a","transient":"yes"}`, bad, 0},
		{"transient number", `{"id":10,"op":"publish","room":"a","transient":1}`, bad, 0},
		{"idempotency key object", `{"id":10,"op":"publish","room":"a","idempotency_key":{}}`, bad, 0},

		// Data that is not one JSON value.
		{"data bare word", `{"id":11,"op":"publish","room":"a","data":hello}`, bad, 0},
		{"data missing", `{"id":11,"op":"publish","room":"a","data":}`, bad, 0},
		{"data single quoted", `{"id":11,"op":"publish","room":"a","data":'x'}`, bad, 0},
		{"data NaN", `{"id":11,"op":"publish","room":"a","data":NaN}`, bad, 0},
		{"data leading zero", `{"id":11,"op":"publish","room":"a","data":01}`, bad, 0},
		{"data unterminated", `{"id":11,"op":"publish","room":"a","data":{"a":1}`, bad, 0},
		{"data two values", `{"id":11,"op":"publish","room":"a","data":1 2}`, bad, 0},
		{"data too deep", deep, bad, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := protocol.JSON.DecodeCommand([]byte(tc.frame))
			if err == nil {
				t.Fatalf("DecodeCommand(%.80q) = %+v, want error %s", tc.frame, c, tc.code)
			}
			var perr *protocol.Error
			if !errors.As(err, &perr) {
				t.Fatalf("DecodeCommand(%.80q) error %T %v is not a *protocol.Error", tc.frame, err, err)
			}
			if perr.Code != tc.code {
				t.Fatalf("DecodeCommand(%.80q) code = %s (%s), want %s", tc.frame, perr.Code, perr.Message, tc.code)
			}
			if tc.code != protocol.CodeBadRequest && perr.ID != tc.id {
				t.Errorf("DecodeCommand(%.80q) ID = %d, want %d", tc.frame, perr.ID, tc.id)
			}
			if perr.Message == "" {
				t.Error("error has no message")
			}
			if !reflect.DeepEqual(c, protocol.Command{}) {
				t.Errorf("DecodeCommand returned a non-zero command with an error: %+v", c)
			}
		})
	}
}

// TestDecodeCommandErrorsDoNotEchoPayload: decode errors are sent back to
// the client and logged; they must not copy the frame's content (which may
// hold tokens or personal data) into the message.
func TestDecodeCommandErrorsDoNotEchoPayload(t *testing.T) {
	const secret = "SECRETsecretSECRET"
	frames := []string{
		`{"id":1,"op":"publish","room":"a","data":{"token":"` + secret,
		`{"id":1,"op":"publish","room":"a","data":` + secret + `}`,
		`{"id":1,"op":"publish","room":"a","event":"` + secret + `","transient":"` + secret + `"}`,
		`{"id":"` + secret + `","op":"join"}`,
		`"` + secret + `"`,
	}
	for _, f := range frames {
		_, err := protocol.JSON.DecodeCommand([]byte(f))
		if err == nil {
			t.Fatalf("DecodeCommand(%s): no error", f)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("DecodeCommand(%s) error echoes the payload: %v", f, err)
		}
	}
}

func TestDecodeCommandUnknownOpMessageIsBounded(t *testing.T) {
	op := strings.Repeat("x", 10000)
	_, err := protocol.JSON.DecodeCommand([]byte(`{"id":77,"op":"` + op + `"}`))
	var perr *protocol.Error
	if !errors.As(err, &perr) || perr.Code != protocol.CodeUnknownOp || perr.ID != 77 {
		t.Fatalf("got %v, want unknown_op with id 77", err)
	}
	if len(perr.Message) > 200 {
		t.Errorf("unknown_op message is %d bytes; it must stay short however long the op is", len(perr.Message))
	}
	// Truncation that lands inside a multi-byte rune must not leak broken
	// UTF-8 into the message.
	op = strings.Repeat("a", 63) + "éééé"
	_, err = protocol.JSON.DecodeCommand([]byte(`{"id":3,"op":"` + op + `"}`))
	if !errors.As(err, &perr) || !utf8.ValidString(perr.Message) {
		t.Errorf("unknown_op message is not valid UTF-8: %v", err)
	}
	_, err = protocol.JSON.DecodeServerFrame([]byte(`{"type":"` + op + `"}`))
	if err == nil || !utf8.ValidString(err.Error()) {
		t.Errorf("unknown server frame type error is not valid UTF-8: %v", err)
	}
}

func roundTripServerFrame(t *testing.T, in, want protocol.ServerFrame) {
	t.Helper()
	frame, err := protocol.JSON.AppendServerFrame(nil, &in)
	if err != nil {
		t.Fatalf("AppendServerFrame: %v", err)
	}
	if !json.Valid(frame) {
		t.Fatalf("AppendServerFrame produced invalid JSON: %q", frame)
	}
	if !utf8.Valid(frame) {
		t.Fatalf("AppendServerFrame produced a text frame that is not UTF-8: %q", frame)
	}
	out, err := protocol.JSON.DecodeServerFrame(frame)
	if err != nil {
		t.Fatalf("DecodeServerFrame(%s): %v", frame, err)
	}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("round trip mismatch\nframe: %s\n got: %s\nwant: %s", frame, dump(out), dump(want))
	}
}

// dump prints a frame with its pointers followed, for failure messages.
func dump(f protocol.ServerFrame) string {
	b, _ := json.Marshal(f)
	return string(b)
}

func TestServerFrameRoundTrip(t *testing.T) {
	same := func(f protocol.ServerFrame) { t.Helper(); roundTripServerFrame(t, f, f) }

	// connected
	same(protocol.ServerFrame{Connected: &protocol.Connected{
		ConnectionID: "c-1", SessionID: "s-1", ResumeToken: "rt.secret+/=", ClientID: "user:42 ✓", Node: "gw-a",
		HeartbeatMS: 25000,
		Limits:      protocol.Limits{MaxMessageBytes: 65536, MaxRoomNameBytes: 200, MaxRooms: 100, PublishRate: 12.5, PublishBurst: 40},
	}})
	same(protocol.ServerFrame{Connected: &protocol.Connected{}})
	same(protocol.ServerFrame{Connected: &protocol.Connected{Limits: protocol.Limits{PublishRate: math.MaxFloat64, MaxMessageBytes: math.MaxInt}}})

	// reply: success, with and without a position
	for _, room := range specialRooms {
		same(protocol.ServerFrame{Reply: &protocol.Reply{ID: 1, Room: room, Position: &protocol.Position{Offset: 17, Epoch: "ep-ü"}}})
	}
	same(protocol.ServerFrame{Reply: &protocol.Reply{ID: math.MaxUint64, Room: "r", Position: &protocol.Position{Offset: math.MaxUint64, Epoch: "e"}}})
	same(protocol.ServerFrame{Reply: &protocol.Reply{ID: 2, Room: "r", Position: &protocol.Position{}}}) // offset 0 is still a position
	same(protocol.ServerFrame{Reply: &protocol.Reply{ID: 3}})                                            // transient publish, leave
	// reply: error. The decoder fills Error.ID from the reply's id.
	roundTripServerFrame(t,
		protocol.ServerFrame{Reply: &protocol.Reply{ID: 4, Room: "r", Error: protocol.NewError(protocol.CodeForbidden, "no publish on r — ✗")}},
		protocol.ServerFrame{Reply: &protocol.Reply{ID: 4, Room: "r", Error: &protocol.Error{Code: protocol.CodeForbidden, Message: "no publish on r — ✗", ID: 4}}})

	// message
	for _, data := range payloads {
		same(protocol.ServerFrame{Message: &protocol.Message{
			Room: "chat.*", Offset: 99, Epoch: "e1", Event: "msg", Data: []byte(data), From: "u1", Timestamp: 1700000000123,
		}})
	}
	for _, room := range specialRooms {
		same(protocol.ServerFrame{Message: &protocol.Message{Room: room, Offset: 1, Epoch: "e", Data: []byte(`"x"`)}})
	}
	same(protocol.ServerFrame{Message: &protocol.Message{Room: "cursors", Event: "move", Data: []byte(`{"x":1,"y":2}`), From: "u2", Timestamp: 1, Transient: true}})
	same(protocol.ServerFrame{Message: &protocol.Message{Room: "r", Offset: math.MaxUint64, Timestamp: math.MinInt64}})
	same(protocol.ServerFrame{Message: &protocol.Message{Room: "r", Timestamp: math.MaxInt64}})
	same(protocol.ServerFrame{Message: &protocol.Message{}})
	roundTripServerFrame(t,
		protocol.ServerFrame{Message: &protocol.Message{Room: "r", Data: []byte{}}},
		protocol.ServerFrame{Message: &protocol.Message{Room: "r"}})

	// error, with and without the request id
	same(protocol.ServerFrame{Error: &protocol.Error{Code: protocol.CodeUnknownOp, Message: `unknown op "x"`, ID: 12}})
	same(protocol.ServerFrame{Error: protocol.NewError(protocol.CodeBadRequest, "frame is not a valid command")})
	same(protocol.ServerFrame{Error: &protocol.Error{Code: protocol.CodeMissingID, Message: "", ID: math.MaxUint64}})
}

// TestServerFrameWireFormat pins the JSON keys clients depend on.
func TestServerFrameWireFormat(t *testing.T) {
	tests := []struct {
		frame protocol.ServerFrame
		want  string
	}{
		{
			protocol.ServerFrame{Connected: &protocol.Connected{ConnectionID: "c", SessionID: "s", ResumeToken: "t", ClientID: "u", Node: "n", HeartbeatMS: 25000,
				Limits: protocol.Limits{MaxMessageBytes: 1, MaxRoomNameBytes: 2, MaxRooms: 3, PublishRate: 4.5, PublishBurst: 6}}},
			`{"type":"connected","connection_id":"c","session_id":"s","resume_token":"t","client_id":"u","node":"n","heartbeat_ms":25000,` +
				`"limits":{"max_message_bytes":1,"max_room_name_bytes":2,"max_rooms":3,"publish_rate":4.5,"publish_burst":6}}`,
		},
		{
			protocol.ServerFrame{Reply: &protocol.Reply{ID: 7, Room: "r", Position: &protocol.Position{Offset: 0, Epoch: "e"}}},
			`{"type":"reply","id":7,"position":{"offset":0,"epoch":"e"},"room":"r"}`,
		},
		{
			protocol.ServerFrame{Reply: &protocol.Reply{ID: 8, Error: protocol.NewError(protocol.CodeRateLimited, "slow down")}},
			`{"type":"reply","id":8,"error":{"code":"rate_limited","message":"slow down"}}`,
		},
		{
			protocol.ServerFrame{Message: &protocol.Message{Room: "r", Offset: 5, Epoch: "e1", Event: "ev", Data: []byte(`{"a": [1, 2]}`), From: "u1", Timestamp: 1700000000000}},
			`{"type":"message","room":"r","offset":5,"epoch":"e1","event":"ev","data":{"a":[1,2]},"from":"u1","ts":1700000000000}`,
		},
		{
			protocol.ServerFrame{Message: &protocol.Message{Room: "c", Data: []byte(`"<&>"`), Transient: true}},
			`{"type":"message","room":"c","data":"<&>","transient":true}`,
		},
		{
			protocol.ServerFrame{Error: &protocol.Error{Code: protocol.CodeBadRequest, Message: "m"}},
			`{"type":"error","error":{"code":"bad_request","message":"m"}}`,
		},
		{
			protocol.ServerFrame{Error: &protocol.Error{Code: protocol.CodeUnknownOp, Message: "m", ID: 3}},
			`{"type":"error","id":3,"error":{"code":"unknown_op","message":"m"}}`,
		},
	}
	for _, tc := range tests {
		got, err := protocol.JSON.AppendServerFrame(nil, &tc.frame)
		if err != nil {
			t.Fatalf("AppendServerFrame(%s): %v", dump(tc.frame), err)
		}
		if string(got) != tc.want {
			t.Errorf("AppendServerFrame\n got %s\nwant %s", got, tc.want)
		}
	}
}

func TestAppendServerFrameErrors(t *testing.T) {
	tests := []struct {
		name  string
		frame protocol.ServerFrame
	}{
		{"empty frame", protocol.ServerFrame{}},
		{"message data not JSON", protocol.ServerFrame{Message: &protocol.Message{Room: "r", Data: []byte(`{"a":`)}}},
		{"message data two values", protocol.ServerFrame{Message: &protocol.Message{Room: "r", Data: []byte(`1 2`)}}},
		{"publish rate NaN", protocol.ServerFrame{Connected: &protocol.Connected{Limits: protocol.Limits{PublishRate: math.NaN()}}}},
		{"publish rate +Inf", protocol.ServerFrame{Connected: &protocol.Connected{Limits: protocol.Limits{PublishRate: math.Inf(1)}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := protocol.JSON.AppendServerFrame(dst, &tc.frame)
			if err == nil {
				t.Fatalf("no error; encoded %s", out)
			}
			if string(out) != "keep" {
				t.Errorf("dst changed on error: %q", out)
			}
		})
	}
}

func TestAppendServerFrameReusesDst(t *testing.T) {
	buf := make([]byte, 0, 1024)
	m := &protocol.ServerFrame{Message: &protocol.Message{Room: "r", Offset: 1, Epoch: "e", Data: []byte(`{"n":1}`)}}
	first, err := protocol.JSON.AppendServerFrame(buf[:0], m)
	if err != nil {
		t.Fatal(err)
	}
	firstCopy := string(first)
	second, err := protocol.JSON.AppendServerFrame(first[:0], m)
	if err != nil {
		t.Fatal(err)
	}
	if string(second) != firstCopy {
		t.Fatalf("re-encoding into the same buffer gave %q, want %q", second, firstCopy)
	}
	if &second[0] != &buf[:1][0] {
		t.Error("AppendServerFrame did not reuse dst's capacity")
	}
	// Appending after existing frames keeps them.
	two, err := protocol.JSON.AppendServerFrame(append([]byte(nil), first...), m)
	if err != nil {
		t.Fatal(err)
	}
	if string(two) != firstCopy+firstCopy {
		t.Fatalf("appending gave %q", two)
	}
}

// TestAppendServerFrameFirstFieldWins documents what happens when a caller
// breaks the "exactly one field" rule: the first of Connected, Reply,
// Message, Error is encoded and the rest are ignored.
func TestAppendServerFrameFirstFieldWins(t *testing.T) {
	f := protocol.ServerFrame{
		Reply:   &protocol.Reply{ID: 1},
		Message: &protocol.Message{Room: "r"},
		Error:   protocol.NewError(protocol.CodeInternal, "x"),
	}
	b, err := protocol.JSON.AppendServerFrame(nil, &f)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"reply","id":1}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
}

func TestDecodeServerFrame(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		want  protocol.ServerFrame
	}{
		{"connected without limits", `{"type":"connected","connection_id":"c"}`, protocol.ServerFrame{Connected: &protocol.Connected{ConnectionID: "c"}}},
		{"error frame without error object", `{"type":"error"}`, protocol.ServerFrame{Error: protocol.NewError(protocol.CodeInternal, "error frame without error")}},
		{"error frame unknown code kept", `{"type":"error","id":4,"error":{"code":"new_code_v2","message":"m"}}`,
			protocol.ServerFrame{Error: &protocol.Error{Code: "new_code_v2", Message: "m", ID: 4}}},
		{"unknown fields ignored", `{"type":"reply","id":1,"future":[1,2,3]}`, protocol.ServerFrame{Reply: &protocol.Reply{ID: 1}}},
		{"message data null kept", `{"type":"message","room":"r","data":null}`, protocol.ServerFrame{Message: &protocol.Message{Room: "r", Data: []byte("null")}}},
		{"message data large number verbatim", `{"type":"message","room":"r","data":1e400}`, protocol.ServerFrame{Message: &protocol.Message{Room: "r", Data: []byte("1e400")}}},
		{"message does not alias frame", `{"type":"message","room":"r","data":{"k":"v"}}`, protocol.ServerFrame{Message: &protocol.Message{Room: "r", Data: []byte(`{"k":"v"}`)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frame := []byte(tc.frame)
			got, err := protocol.JSON.DecodeServerFrame(frame)
			if err != nil {
				t.Fatal(err)
			}
			for i := range frame {
				frame[i] = 0
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %s, want %s", dump(got), dump(tc.want))
			}
		})
	}
}

func TestDecodeServerFrameRejects(t *testing.T) {
	for _, frame := range []string{
		``, `{`, `[]`, `null`, `{}`, `{"type":""}`, `{"type":"bogus"}`, `{"type":"REPLY"}`, `{"type":1}`,
		`{"type":"reply","id":-1}`, `{"type":"reply","id":"1"}`, `{"type":"message","offset":18446744073709551616}`,
		`{"type":"message","data":nope}`, `{"type":"connected","limits":[]}`, `{"type":"error","error":"boom"}`,
		`{"type":"reply"} trailing`,
	} {
		f, err := protocol.JSON.DecodeServerFrame([]byte(frame))
		if err == nil {
			t.Errorf("DecodeServerFrame(%q) = %s, want error", frame, dump(f))
			continue
		}
		if !reflect.DeepEqual(f, protocol.ServerFrame{}) {
			t.Errorf("DecodeServerFrame(%q) returned a frame with its error: %s", frame, dump(f))
		}
	}
	// The unknown type is reported, but bounded.
	_, err := protocol.JSON.DecodeServerFrame([]byte(`{"type":"` + strings.Repeat("z", 5000) + `"}`))
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("unknown type error should be short, got %d bytes", len(err.Error()))
	}
}

// TestDecodeCommandInputUnchanged: decoding must never write to the frame.
func TestDecodeCommandInputUnchanged(t *testing.T) {
	frame := []byte(`{"id":1,"op":"publish","room":"\u00e9","data":{"a":"\n"}}`)
	orig := bytes.Clone(frame)
	if _, err := protocol.JSON.DecodeCommand(frame); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(frame, orig) {
		t.Fatalf("frame modified: %q", frame)
	}
}

func TestRecoveryFieldsRoundTrip(t *testing.T) {
	cmds := []protocol.Command{
		{ID: 1, Op: protocol.OpJoin, Room: "r", Since: &protocol.Position{Offset: 41, Epoch: "e1"}},
		{ID: 2, Op: protocol.OpResume, SessionID: "s-1", ResumeToken: "tok"},
	}
	for _, want := range cmds {
		b, err := protocol.JSON.AppendCommand(nil, &want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := protocol.JSON.DecodeCommand(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip %s: got %+v, want %+v", b, got, want)
		}
	}
	replies := []protocol.Reply{
		{ID: 3, Room: "r", Position: &protocol.Position{Offset: 9, Epoch: "e"}, Recovered: true},
		{ID: 4, SessionID: "s", ResumeToken: "t2", Rooms: []string{"a", "b.c"}},
	}
	for _, want := range replies {
		b, err := protocol.JSON.AppendServerFrame(nil, &protocol.ServerFrame{Reply: &want})
		if err != nil {
			t.Fatal(err)
		}
		f, err := protocol.JSON.DecodeServerFrame(b)
		if err != nil || f.Reply == nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if !reflect.DeepEqual(*f.Reply, want) {
			t.Fatalf("round trip %s: got %+v, want %+v", b, *f.Reply, want)
		}
	}
}
