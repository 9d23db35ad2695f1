package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// Fuzzing in the style of nats-server's parser fuzz tests: the decoders face
// arbitrary bytes from the network, so they must never panic, must classify
// every failure with a documented code, and whatever they accept must survive
// a re-encode unchanged.
//
//	cd pkg && go test ./protocol -run '^$' -fuzz FuzzDecodeCommand -fuzztime 60s
//	cd pkg && go test ./protocol -run '^$' -fuzz FuzzDecodeServerFrame -fuzztime 60s
//
// The seeds below are also stored in testdata/fuzz/<Target>/ (the format go
// test reads); `go test ./protocol -run TestFuzzSeedCorpus -update-corpus`
// rewrites those files from these lists.

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz seed files from the seed lists")

type seed struct{ name, frame string }

var commandSeeds = []seed{
	{"join", `{"id":1,"op":"join","room":"lobby"}`},
	{"leave", `{"id":2,"op":"leave","room":"lobby"}`},
	{"join_since", `{"id":40,"op":"join","room":"lobby","since":{"offset":41,"epoch":"5d1c9e0a7b2f4e11"}}`},
	{"resume", `{"id":41,"op":"resume","session_id":"s-1","resume_token":"tok_abc-123"}`},
	{"publish_full", `{"id":3,"op":"publish","room":"chat.general","event":"msg","data":{"text":"hi"},"transient":false,"idempotency_key":"k-1"}`},
	{"publish_transient", `{"id":4,"op":"publish","room":"cursors","event":"move","data":{"x":1,"y":2},"transient":true}`},
	{"publish_special_rooms", `{"id":5,"op":"publish","room":"a.*.#:/b/комната/🎉","data":"x"}`},
	{"publish_nested_unicode", `{"id":6,"op":"publish","room":"r","data":{"a":[1,{"b":[null,true,"\u00e9\ud83c\udf89"]}],"c":"部屋"}}`},
	{"publish_large_number", `{"id":7,"op":"publish","room":"r","data":123456789012345678901234567890.123e-45}`},
	{"publish_data_null", `{"id":8,"op":"publish","room":"r","data":null}`},
	{"publish_data_whitespace", "{\"id\":9,\"op\":\"publish\",\"room\":\"r\",\"data\": [ 1 ,\n 2 ] }"},
	{"publish_data_deep", `{"id":10,"op":"publish","room":"r","data":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`},
	{"id_max", `{"id":18446744073709551615,"op":"join","room":"r"}`},
	{"id_overflow", `{"id":18446744073709551616,"op":"join","room":"r"}`},
	{"id_zero", `{"id":0,"op":"join","room":"r"}`},
	{"id_negative", `{"id":-1,"op":"join","room":"r"}`},
	{"id_string", `{"id":"1","op":"join","room":"r"}`},
	{"id_float", `{"id":1.5e0,"op":"join","room":"r"}`},
	{"id_missing", `{"op":"join","room":"r"}`},
	{"op_unknown", `{"id":11,"op":"subscribe","room":"r"}`},
	{"op_empty", `{"id":12,"op":""}`},
	{"op_missing", `{"id":13,"room":"r"}`},
	{"op_number", `{"id":14,"op":7}`},
	{"op_long_unicode", `{"id":15,"op":"` + strings.Repeat("é", 40) + `"}`},
	{"room_number", `{"id":16,"op":"join","room":5}`},
	{"transient_string", `{"id":17,"op":"publish","room":"r","transient":"yes"}`},
	{"data_not_json", `{"id":18,"op":"publish","room":"r","data":hello}`},
	{"truncated", `{"id":19,"op":"publish","room":"r","data":{"a":`},
	{"top_array", `[{"id":20,"op":"join"}]`},
	{"top_string", `"join"`},
	{"top_number", `20`},
	{"top_null", `null`},
	{"empty", ``},
	{"trailing_garbage", `{"id":21,"op":"join","room":"r"}x`},
	{"invalid_utf8_room", "{\"id\":22,\"op\":\"join\",\"room\":\"a\xffb\"}"},
	{"invalid_utf8_data", "{\"id\":23,\"op\":\"publish\",\"room\":\"r\",\"data\":\"\xc3\x28\"}"},
	{"lone_surrogate", `{"id":24,"op":"join","room":"\ud800"}`},
	{"control_chars_escaped", `{"id":25,"op":"join","room":"a\u0000\u001f\u007fb"}`},
	{"keys_other_case", `{"ID":26,"Op":"join","ROOM":"r"}`},
	{"duplicate_keys", `{"id":27,"op":"join","op":"leave","id":28,"room":"r"}`},
	{"unknown_fields", `{"id":29,"op":"join","room":"r","since":{"offset":4,"epoch":"e"}}`},
	{"bom", "\xef\xbb\xbf{\"id\":30,\"op\":\"join\"}"},
	{"presence_enter", `{"id":31,"op":"presence.enter","room":"r","data":{"name":"ada","status":"away"}}`},
	{"presence_get_page", `{"id":32,"op":"presence.get","room":"r","cursor":"c2Vzcw","limit":1000}`},
	{"presence_limit_negative", `{"id":33,"op":"presence.get","room":"r","limit":-1}`},
	{"presence_limit_huge", `{"id":34,"op":"presence.get","room":"r","limit":99999999999999999999}`},
	{"refresh", `{"id":36,"op":"refresh","token":"eyJhbGciOiJIUzI1NiJ9.e30.x"}`},
	{"refresh_token_number", `{"id":37,"op":"refresh","token":7}`},
	{"presence_subscribe_since", `{"id":35,"op":"presence.subscribe","room":"r","since":{"offset":3,"epoch":"e"}}`},
	{"history_full", `{"id":50,"op":"history","room":"chat","epoch":"5d1c9e0a7b2f4e11","from_offset":10,"to_offset":90,"start":1700000000000,"end":1700000999999,"direction":"backward","limit":100,"cursor":"AQAAAAAAAAAqBzVk"}`},
	{"history_bad_direction", `{"id":51,"op":"history","room":"chat","direction":"sideways"}`},
	{"history_negative_start", `{"id":52,"op":"history","room":"chat","start":-1}`},
	{"history_offset_string", `{"id":53,"op":"history","room":"chat","from_offset":"1"}`},
	{"publish_base64", `{"id":60,"op":"publish","room":"r","data":"AP/DKAA=","encoding":"base64"}`},
	{"publish_base64_empty", `{"id":61,"op":"publish","room":"r","data":"","encoding":"base64"}`},
	{"publish_base64_invalid", `{"id":62,"op":"publish","room":"r","data":"AP/DKA","encoding":"base64"}`},
	{"publish_base64_not_string", `{"id":63,"op":"publish","room":"r","data":{"a":1},"encoding":"base64"}`},
	{"publish_encoding_unknown", `{"id":64,"op":"publish","room":"r","data":"00ff","encoding":"hex"}`},
	{"encoding_without_data", `{"id":65,"op":"publish","room":"r","encoding":"base64"}`},
}

var serverFrameSeeds = []seed{
	{"connected", `{"type":"connected","connection_id":"c","session_id":"s","resume_token":"t","client_id":"u","node":"n","heartbeat_ms":25000,"limits":{"max_message_bytes":65536,"max_room_name_bytes":200,"max_rooms":100,"publish_rate":10.5,"publish_burst":20}}`},
	{"connected_no_limits", `{"type":"connected"}`},
	{"reply_ok", `{"type":"reply","id":1,"room":"r","position":{"offset":5,"epoch":"e"}}`},
	{"reply_error", `{"type":"reply","id":2,"error":{"code":"forbidden","message":"no"}}`},
	{"reply_recovered", `{"type":"reply","id":4,"room":"r","position":{"offset":9,"epoch":"e"},"recovered":true}`},
	{"reply_resume", `{"type":"reply","id":5,"session_id":"s","resume_token":"t2","rooms":["a","b.c"]}`},
	{"reply_empty_error", `{"type":"reply","id":3,"error":{}}`},
	{"reply_history", `{"type":"reply","id":6,"room":"r","messages":[{"offset":1,"epoch":"e","event":"m","data":{"t":"hi"},"from":"u","ts":1700000000000},{"offset":2,"epoch":"e","ts":1}],"cursor":"AQAAAAAAAAAqBzVk"}`},
	{"reply_history_bad", `{"type":"reply","id":7,"messages":[{"offset":-1,"data":}]}`},
	{"message", `{"type":"message","room":"r","offset":9,"epoch":"e","event":"ev","data":{"a":[1, 2]},"from":"u","ts":1700000000000}`},
	{"message_transient", `{"type":"message","room":"c","data":null,"transient":true}`},
	{"message_big_numbers", `{"type":"message","offset":18446744073709551615,"ts":-9223372036854775808,"data":1e400}`},
	{"error_with_id", `{"type":"error","id":4,"error":{"code":"unknown_op","message":"m"}}`},
	{"error_without_error", `{"type":"error"}`},
	{"unknown_type", `{"type":"bogus"}`},
	{"limits_wrong_type", `{"type":"connected","limits":[]}`},
	{"publish_rate_huge", `{"type":"connected","limits":{"publish_rate":1e309}}`},
	{"not_json", `{"type":`},
	{"presence", `{"type":"presence","room":"r","action":"join","member":{"client_id":"u","connection_id":"s","data":{"n":1},"since":1700000000000},"offset":3,"epoch":"e","ts":1700000000001}`},
	{"presence_no_member", `{"type":"presence","action":"leave"}`},
	{"reply_members", `{"type":"reply","id":6,"room":"r","members":[{"client_id":"u","connection_id":"s","since":1}],"cursor":"x"}`},
	{"reply_count", `{"type":"reply","id":7,"room":"r","count":{"clients":2,"connections":3}}`},
	{"message_base64", `{"type":"message","room":"r","offset":9,"epoch":"e","data":"AP/DKAA=","encoding":"base64","from":"u","ts":1}`},
	{"message_base64_bad", `{"type":"message","room":"r","offset":9,"epoch":"e","data":7,"encoding":"base64"}`},
	{"reply_history_base64", `{"type":"reply","id":8,"room":"r","messages":[{"offset":1,"epoch":"e","data":"AAE=","encoding":"base64","ts":1}]}`},
}

func FuzzDecodeCommand(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add([]byte(s.frame))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		orig := bytes.Clone(frame)
		c, err := protocol.JSON.DecodeCommand(frame)
		if !bytes.Equal(frame, orig) {
			t.Fatal("DecodeCommand modified its input")
		}
		if err != nil {
			checkDecodeError(t, frame, c, err)
			return
		}
		if c.ID == 0 {
			t.Fatalf("accepted a command with id 0: %q", frame)
		}
		if !c.Op.Known() {
			t.Fatalf("accepted unknown op %q from %q", c.Op, frame)
		}
		if c.Limit < 0 {
			t.Fatalf("accepted negative limit from %q", frame)
		}
		if c.Binary && len(c.Data) == 0 {
			t.Fatalf("accepted empty binary data from %q", frame)
		}
		if !c.Binary && c.Data != nil && (len(c.Data) == 0 || !json.Valid(c.Data)) {
			t.Fatalf("accepted data %q that is not one JSON value, from %q", c.Data, frame)
		}

		enc, err := protocol.JSON.AppendCommand(nil, &c)
		if err != nil {
			t.Fatalf("AppendCommand of accepted command %+v (from %q): %v", c, frame, err)
		}
		c2, err := protocol.JSON.DecodeCommand(enc)
		if err != nil {
			t.Fatalf("re-decode of %q (from %q): %v", enc, frame, err)
		}
		// The encoder compacts JSON data; everything else must be identical.
		want := c
		if !c.Binary {
			want.Data = compact(t, c.Data)
		}
		if !reflect.DeepEqual(c2, want) {
			t.Fatalf("round trip changed the command\nframe: %q\nfirst: %+v\n enc: %q\nagain: %+v", frame, c, enc, c2)
		}
		enc2, err := protocol.JSON.AppendCommand(nil, &c2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not a fixed point: %q then %q (%v)", enc, enc2, err)
		}
	})
}

func checkDecodeError(t *testing.T, frame []byte, c protocol.Command, err error) {
	t.Helper()
	var perr *protocol.Error
	if !errors.As(err, &perr) {
		t.Fatalf("DecodeCommand(%q) error is %T, not *protocol.Error: %v", frame, err, err)
	}
	switch perr.Code {
	case protocol.CodeUnknownOp:
		if perr.ID == 0 {
			t.Fatalf("unknown_op without the request id for %q", frame)
		}
	case protocol.CodeMissingID:
		if perr.ID != 0 {
			t.Fatalf("missing_id with id %d for %q", perr.ID, frame)
		}
	case protocol.CodeBadRequest:
	default:
		t.Fatalf("DecodeCommand(%q) gave undocumented code %q", frame, perr.Code)
	}
	if perr.Message == "" || len(perr.Message) > 256 {
		t.Fatalf("DecodeCommand(%q) error message has %d bytes", frame, len(perr.Message))
	}
	if !reflect.DeepEqual(c, protocol.Command{}) {
		t.Fatalf("DecodeCommand(%q) returned %+v with its error", frame, c)
	}
}

func FuzzDecodeServerFrame(f *testing.F) {
	for _, s := range serverFrameSeeds {
		f.Add([]byte(s.frame))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		sf, err := protocol.JSON.DecodeServerFrame(frame)
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
		enc, err := protocol.JSON.AppendServerFrame(nil, &sf)
		if err != nil {
			t.Fatalf("AppendServerFrame of a decoded frame (from %q): %v", frame, err)
		}
		sf2, err := protocol.JSON.DecodeServerFrame(enc)
		if err != nil {
			t.Fatalf("re-decode of %q (from %q): %v", enc, frame, err)
		}
		if sf.Message != nil && !sf.Message.Binary {
			m := *sf.Message
			m.Data = compact(t, m.Data)
			sf.Message = &m
		}
		if !reflect.DeepEqual(sf, sf2) {
			t.Fatalf("round trip changed the frame\nframe: %q\n enc: %q", frame, enc)
		}
	})
}

// compact returns data as the encoder writes it: without insignificant
// whitespace. nil stays nil.
func compact(t *testing.T, data []byte) []byte {
	t.Helper()
	if data == nil {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		t.Fatalf("compact %q: %v", data, err)
	}
	return b.Bytes()
}

// TestFuzzSeedCorpus keeps testdata/fuzz in step with the seed lists above,
// so the corpus `go test` replays is the one this file documents.
func TestFuzzSeedCorpus(t *testing.T) {
	for target, seeds := range map[string][]seed{
		"FuzzDecodeCommand":            commandSeeds,
		"FuzzDecodeServerFrame":        serverFrameSeeds,
		"FuzzDecodeCommandMsgpack":     msgpackCommandSeeds,
		"FuzzDecodeServerFrameMsgpack": msgpackServerFrameSeeds,
	} {
		dir := filepath.Join("testdata", "fuzz", target)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		names := map[string]bool{}
		for _, s := range seeds {
			if names[s.name] {
				t.Fatalf("%s: seed name %q repeated", target, s.name)
			}
			names[s.name] = true
			path := filepath.Join(dir, "seed_"+s.name)
			want := "go test fuzz v1\n[]byte(" + strconv.Quote(s.frame) + ")\n"
			if *updateCorpus {
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update-corpus to write the seed files)", err)
			}
			if string(got) != want {
				t.Errorf("%s differs from its seed in fuzz_test.go (run with -update-corpus)", path)
			}
		}
	}
	if n := len(commandSeeds); n < 20 {
		t.Errorf("only %d FuzzDecodeCommand seeds; keep at least 20", n)
	}
	if n := len(msgpackCommandSeeds); n < 20 {
		t.Errorf("only %d FuzzDecodeCommandMsgpack seeds; keep at least 20", n)
	}
}
