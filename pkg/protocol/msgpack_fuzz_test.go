package protocol_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// The msgpack decoders face arbitrary bytes from the network like the JSON
// ones (fuzz_test.go): never panic, classify every failure with a
// documented code, and whatever they accept survives a re-encode — in
// msgpack and in JSON, since a message crosses between the two.
//
//	cd pkg && go test ./protocol -run '^$' -fuzz FuzzDecodeCommandMsgpack -fuzztime 60s
//	cd pkg && go test ./protocol -run '^$' -fuzz FuzzDecodeServerFrameMsgpack -fuzztime 60s

// kv is an ordered msgpack map: keys and values alternate. Values are
// encoded by the msgpack library (string → str, []byte → bin, ints, bools,
// nil, nested kv, []any).
type kv []any

// mp encodes v the way the seeds need: maps in the order written.
func mp(v any) string {
	var b bytes.Buffer
	enc := msgpack.NewEncoder(&b)
	enc.UseCompactInts(true)
	if err := encodeOrdered(enc, v); err != nil {
		panic(err)
	}
	return b.String()
}

func encodeOrdered(enc *msgpack.Encoder, v any) error {
	switch v := v.(type) {
	case kv:
		if err := enc.EncodeMapLen(len(v) / 2); err != nil {
			return err
		}
		for _, x := range v {
			if err := encodeOrdered(enc, x); err != nil {
				return err
			}
		}
		return nil
	case []any:
		if err := enc.EncodeArrayLen(len(v)); err != nil {
			return err
		}
		for _, x := range v {
			if err := encodeOrdered(enc, x); err != nil {
				return err
			}
		}
		return nil
	}
	return enc.Encode(v)
}

var msgpackCommandSeeds = []seed{
	{"join", mp(kv{"id", 1, "op", "join", "room", "lobby"})},
	{"leave", mp(kv{"id", 2, "op", "leave", "room", "lobby"})},
	{"join_since", mp(kv{"id", 40, "op", "join", "room", "lobby", "since", kv{"offset", 41, "epoch", "5d1c9e0a7b2f4e11"}})},
	{"resume", mp(kv{"id", 41, "op", "resume", "session_id", "s-1", "resume_token", "tok_abc-123"})},
	{"publish_binary", mp(kv{"id", 3, "op", "publish", "room", "chat", "event", "state", "data", []byte{0, 1, 0xff, 0xfe, 0xc3, 0x28, 0}, "idempotency_key", "k-1"})},
	{"publish_json_text", mp(kv{"id", 4, "op", "publish", "room", "chat", "data", `{"text":"hi"}`, "transient", true})},
	{"publish_json_text_invalid", mp(kv{"id", 5, "op", "publish", "room", "chat", "data", `{"text":`})},
	{"publish_str_invalid_utf8", mp(kv{"id", 6, "op", "publish", "room", "chat", "data", "\"\xff\""})},
	{"publish_data_map", mp(kv{"id", 7, "op", "publish", "room", "chat", "data", kv{"text", "hi"}})},
	{"publish_data_int", mp(kv{"id", 8, "op", "publish", "room", "chat", "data", 42})},
	{"publish_data_nil", mp(kv{"id", 9, "op", "publish", "room", "chat", "data", nil})},
	{"publish_data_empty_bin", mp(kv{"id", 10, "op", "publish", "room", "chat", "data", []byte{}})},
	{"publish_big_binary", mp(kv{"id", 11, "op", "publish", "room", "chat", "data", bytes.Repeat([]byte{0, 0xff}, 300)})},
	{"id_max", mp(kv{"id", uint64(18446744073709551615), "op", "join", "room", "r"})},
	{"id_zero", mp(kv{"id", 0, "op", "join", "room", "r"})},
	{"id_negative", mp(kv{"id", -1, "op", "join", "room", "r"})},
	{"id_string", mp(kv{"id", "1", "op", "join", "room", "r"})},
	{"id_float", mp(kv{"id", 1.5, "op", "join", "room", "r"})},
	{"id_nil", mp(kv{"id", nil, "op", "join", "room", "r"})},
	{"id_missing", mp(kv{"op", "join", "room", "r"})},
	{"id_last", mp(kv{"room", 5, "op", "join", "id", 12})},
	{"op_unknown", mp(kv{"id", 13, "op", "subscribe", "room", "r"})},
	{"op_missing", mp(kv{"id", 14, "room", "r"})},
	{"op_bin", mp(kv{"id", 15, "op", []byte("join"), "room", "r"})},
	{"room_invalid_utf8", mp(kv{"id", 16, "op", "join", "room", "a\xffb"})},
	{"room_control_chars", mp(kv{"id", 17, "op", "join", "room", "a\x00\x1f\x7fb"})},
	{"transient_string", mp(kv{"id", 18, "op", "publish", "room", "r", "transient", "yes"})},
	{"key_not_string", mp(kv{"id", 19, "op", "join", 7, "r"})},
	{"key_long_unknown", mp(kv{"id", 20, "op", "join", "room", "r", strings.Repeat("k", 100), "v"})},
	{"unknown_keys_nested", mp(kv{"id", 21, "op", "join", "room", "r", "future", kv{"a", []any{1, "b", nil}}})},
	{"duplicate_keys", mp(kv{"id", 22, "op", "join", "op", "leave", "id", 23, "room", "r"})},
	{"top_array", mp([]any{kv{"id", 24, "op", "join"}})},
	{"top_str", mp("join")},
	{"top_nil", mp(nil)},
	{"empty", ""},
	{"truncated", mp(kv{"id", 25, "op", "publish", "room", "r", "data", []byte("abcdef")})[:20]},
	{"trailing_bytes", mp(kv{"id", 26, "op", "join", "room", "r"}) + "\x00"},
	{"map32_header", "\xdf\xff\xff\xff\xff"},
	{"str32_header", "\x81\xa2id\xdb\xff\xff\xff\xff"},
	{"ext_value", mp(kv{"id", 27, "op", "join", "room", "r"})[:len(mp(kv{"id", 27, "op", "join", "room", "r"}))-2] + "\xd4\x01\x02"},
	{"deep_nesting", "\x82\xa2id\x1c\xa6future" + strings.Repeat("\x91", 200) + "\xc0"},
	{"presence_enter", mp(kv{"id", 28, "op", "presence.enter", "room", "r", "data", `{"name":"ada"}`})},
	{"presence_enter_binary", mp(kv{"id", 29, "op", "presence.enter", "room", "r", "data", []byte{1, 2}})},
	{"presence_get_page", mp(kv{"id", 30, "op", "presence.get", "room", "r", "cursor", "c2Vzcw", "limit", 1000})},
	{"limit_negative", mp(kv{"id", 31, "op", "presence.get", "room", "r", "limit", -1})},
	{"limit_huge", mp(kv{"id", 32, "op", "presence.get", "room", "r", "limit", uint64(1) << 63})},
	{"refresh", mp(kv{"id", 33, "op", "refresh", "token", "eyJhbGciOiJIUzI1NiJ9.e30.x"})},
	{"history_full", mp(kv{"id", 34, "op", "history", "room", "chat", "epoch", "5d1c", "from_offset", 10, "to_offset", 90, "start", int64(1700000000000), "end", int64(1700000999999), "direction", "backward", "limit", 100, "cursor", "AQAA"})},
	{"history_bad_direction", mp(kv{"id", 35, "op", "history", "room", "chat", "direction", "sideways"})},
	{"history_negative_offset", mp(kv{"id", 36, "op", "history", "room", "chat", "from_offset", -5})},
	{"metrics_subscribe", mp(kv{"id", 37, "op", "metrics.subscribe", "room", "r", "interval_ms", 2000})},
	{"metrics_interval_low", mp(kv{"id", 38, "op", "metrics.subscribe", "room", "r", "interval_ms", 10})},
	{"json_frame", `{"id":1,"op":"join","room":"lobby"}`},
}

var msgpackServerFrameSeeds = []seed{
	{"connected", mp(kv{"type", "connected", "connection_id", "c", "session_id", "s", "resume_token", "t", "client_id", "u", "node", "n", "heartbeat_ms", 25000, "limits", kv{"max_message_bytes", 65536, "max_room_name_bytes", 200, "max_rooms", 100, "publish_rate", 10.5, "publish_burst", 20}})},
	{"connected_no_limits", mp(kv{"type", "connected"})},
	{"reply_ok", mp(kv{"type", "reply", "id", 1, "room", "r", "position", kv{"offset", 5, "epoch", "e"}})},
	{"reply_error", mp(kv{"type", "reply", "id", 2, "error", kv{"code", "forbidden", "message", "no"}})},
	{"reply_resume", mp(kv{"type", "reply", "id", 5, "session_id", "s", "resume_token", "t2", "rooms", []any{"a", "b.c"}})},
	{"reply_history", mp(kv{"type", "reply", "id", 6, "room", "r", "messages", []any{kv{"offset", 1, "epoch", "e", "event", "m", "data", `{"t":"hi"}`, "from", "u", "ts", int64(1700000000000)}, kv{"offset", 2, "epoch", "e", "data", []byte{0, 0xff}, "ts", 1}}, "cursor", "AQAA"})},
	{"reply_members", mp(kv{"type", "reply", "id", 7, "room", "r", "members", []any{kv{"client_id", "u", "connection_id", "s", "data", `{"n":1}`, "since", 1}}, "cursor", "x"})},
	{"reply_count", mp(kv{"type", "reply", "id", 8, "room", "r", "count", kv{"clients", 2, "connections", 3}})},
	{"message_binary", mp(kv{"type", "message", "room", "r", "offset", 9, "epoch", "e", "event", "ev", "data", []byte{0, 1, 0xc3, 0x28}, "from", "u", "ts", int64(1700000000000)})},
	{"message_json", mp(kv{"type", "message", "room", "r", "offset", 9, "epoch", "e", "data", `{"a":[1, 2]}`, "from", "u", "ts", 1})},
	{"message_transient", mp(kv{"type", "message", "room", "c", "data", "null", "transient", true})},
	{"message_big_numbers", mp(kv{"type", "message", "offset", uint64(18446744073709551615), "ts", int64(-9223372036854775808)})},
	{"message_data_map", mp(kv{"type", "message", "room", "r", "data", kv{"a", 1}})},
	{"presence", mp(kv{"type", "presence", "room", "r", "action", "join", "member", kv{"client_id", "u", "connection_id", "s", "data", `{"n":1}`, "since", 1}, "offset", 3, "epoch", "e", "ts", 4})},
	{"metrics", mp(kv{"type", "metrics", "room", "r", "metrics", kv{"members", 1, "clients", 1, "connections", 2, "message_rate", 3.5}, "ts", 5})},
	{"error_with_id", mp(kv{"type", "error", "id", 4, "error", kv{"code", "unknown_op", "message", "m"}})},
	{"error_without_error", mp(kv{"type", "error"})},
	{"unknown_type", mp(kv{"type", "bogus"})},
	{"limits_wrong_type", mp(kv{"type", "connected", "limits", []any{}})},
	{"truncated", mp(kv{"type", "message", "room", "r", "data", []byte("abcdef")})[:18]},
	{"not_a_map", mp([]any{"message"})},
}

func FuzzDecodeCommandMsgpack(f *testing.F) {
	for _, s := range msgpackCommandSeeds {
		f.Add([]byte(s.frame))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		buf := bytes.Clone(frame)
		c, err := protocol.Msgpack.DecodeCommand(buf)
		if !bytes.Equal(frame, buf) {
			t.Fatal("DecodeCommand modified its input")
		}
		// The gateway reuses its read buffer for the next frame: what was
		// decoded must not change with it.
		clear(buf)
		if again, err2 := protocol.Msgpack.DecodeCommand(frame); !reflect.DeepEqual(again, c) || (err == nil) != (err2 == nil) {
			t.Fatalf("decoded command changed with its input buffer: %+v then %+v", again, c)
		}
		if err != nil {
			checkDecodeError(t, frame, c, err)
			return
		}
		if c.ID == 0 || !c.Op.Known() || c.Limit < 0 {
			t.Fatalf("accepted %+v from %q", c, frame)
		}
		if c.Binary && len(c.Data) == 0 {
			t.Fatalf("accepted empty binary data from %q", frame)
		}
		if !c.Binary && c.Data != nil && (len(c.Data) == 0 || !json.Valid(c.Data)) {
			t.Fatalf("accepted data %q that is not one JSON value, from %q", c.Data, frame)
		}
		enc, err := protocol.Msgpack.AppendCommand(nil, &c)
		if err != nil {
			t.Fatalf("AppendCommand of accepted command %+v (from %q): %v", c, frame, err)
		}
		c2, err := protocol.Msgpack.DecodeCommand(enc)
		if err != nil || !reflect.DeepEqual(c2, c) {
			t.Fatalf("msgpack round trip changed the command\nframe: %q\nfirst: %+v\n enc: %q\nagain: %+v (%v)", frame, c, enc, c2, err)
		}
		enc2, err := protocol.Msgpack.AppendCommand(nil, &c2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not a fixed point: %q then %q (%v)", enc, enc2, err)
		}

		// The same command in JSON: everything survives, JSON data compacted.
		jenc, err := protocol.JSON.AppendCommand(nil, &c)
		if err != nil {
			t.Fatalf("JSON AppendCommand of %+v (from %q): %v", c, frame, err)
		}
		jc, err := protocol.JSON.DecodeCommand(jenc)
		if err != nil {
			t.Fatalf("JSON re-decode of %q (from %q): %v", jenc, frame, err)
		}
		want := c
		if !c.Binary {
			want.Data = compact(t, c.Data)
		}
		if !reflect.DeepEqual(jc, want) {
			t.Fatalf("JSON round trip changed the command\nframe: %q\nfirst: %+v\n json: %s\nagain: %+v", frame, c, jenc, jc)
		}
	})
}

func FuzzDecodeServerFrameMsgpack(f *testing.F) {
	for _, s := range msgpackServerFrameSeeds {
		f.Add([]byte(s.frame))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		sf, err := protocol.Msgpack.DecodeServerFrame(frame)
		if err != nil {
			if !reflect.DeepEqual(sf, protocol.ServerFrame{}) {
				t.Fatalf("DecodeServerFrame(%q) returned a frame with its error", frame)
			}
			return
		}
		set := 0
		for _, p := range []bool{sf.Connected != nil, sf.Reply != nil, sf.Message != nil, sf.Presence != nil, sf.Metrics != nil, sf.Error != nil} {
			if p {
				set++
			}
		}
		if set != 1 {
			t.Fatalf("DecodeServerFrame(%q) set %d fields, want exactly 1", frame, set)
		}
		enc, err := protocol.Msgpack.AppendServerFrame(nil, &sf)
		if err != nil {
			t.Fatalf("AppendServerFrame of a decoded frame (from %q): %v", frame, err)
		}
		sf2, err := protocol.Msgpack.DecodeServerFrame(enc)
		if err != nil {
			t.Fatalf("re-decode of %q (from %q): %v", enc, frame, err)
		}
		if !reflect.DeepEqual(sf, sf2) {
			t.Fatalf("round trip changed the frame\nframe: %q\n enc: %q\nfirst: %+v\nagain: %+v", frame, enc, sf, sf2)
		}
		// What a gateway sends a msgpack connection it can send a JSON one.
		if _, err := protocol.JSON.AppendServerFrame(nil, &sf); err != nil {
			t.Fatalf("JSON AppendServerFrame of %+v (from %q): %v", sf, frame, err)
		}
	})
}
