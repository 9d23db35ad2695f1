package protocol_test

// Regression tests for bugs found while testing the codec; each failed
// against the first version of json.go/protocol.go.

import (
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// Regression 1 (medium): Codec.DecodeCommand promises "an *Error whose ID is set
// when the request id could still be read", and every command "gets exactly
// one Reply". When one field other than id has the wrong type, encoding/json
// still fills ID, but DecodeCommand returns bad_request with ID 0, so the
// client cannot correlate the failure with its request and its pending call
// hangs until its own timeout.
func TestRegressionBadRequestDropsReadableID(t *testing.T) {
	for _, frame := range []string{
		`{"id":7,"op":"publish","room":"a","transient":"yes"}`,
		`{"id":7,"op":"join","room":5}`,
		`{"id":7,"op":"publish","room":"a","event":[]}`,
		`{"id":7,"op":"publish","room":"a","idempotency_key":{}}`,
		`{"room":5,"id":7,"op":"join"}`, // the bad field comes before the id
	} {
		_, err := protocol.JSON.DecodeCommand([]byte(frame))
		var perr *protocol.Error
		if !errors.As(err, &perr) || perr.Code != protocol.CodeBadRequest {
			t.Fatalf("DecodeCommand(%s) = %v, want bad_request", frame, err)
		}
		if perr.ID != 7 {
			t.Errorf("DecodeCommand(%s): bad_request has ID %d, want 7 (the id was readable)", frame, perr.ID)
		}
	}
}

// Regression 2 (high): the JSON codec uses text frames, which RFC 6455 requires to
// be valid UTF-8, but AppendServerFrame (and AppendCommand) copy Data
// verbatim: json.Valid accepts invalid UTF-8 inside JSON strings. Data with
// invalid UTF-8 can reach a Message through any path that does not go
// through a UTF-8-checked text frame (REST publish decoding into
// json.RawMessage, a binary codec, the broker). Browsers then fail the whole
// WebSocket (close 1007) on that frame; because the message is also in the
// recovery stream, every resume replays it and the room's subscribers loop
// forever. Fix: reject (or reject at publish time, in DecodeCommand and the
// REST handler) data that is not valid UTF-8, e.g. check utf8.Valid(data)
// next to json.Valid.
func TestRegressionEncodersEmitInvalidUTF8(t *testing.T) {
	data := []byte("{\"text\":\"caf\xe9\"}") // Latin-1 é: valid JSON syntax, invalid UTF-8

	out, err := protocol.JSON.AppendServerFrame(nil, &protocol.ServerFrame{Message: &protocol.Message{Room: "r", Offset: 1, Epoch: "e", Data: data}})
	if err == nil && !utf8.Valid(out) {
		t.Errorf("AppendServerFrame produced a text frame that is not valid UTF-8: %q", out)
	}

	out, err = protocol.JSON.AppendCommand(nil, &protocol.Command{ID: 1, Op: protocol.OpPublish, Room: "r", Data: data})
	if err == nil && !utf8.Valid(out) {
		t.Errorf("AppendCommand produced a text frame that is not valid UTF-8: %q", out)
	}

	// DecodeCommand accepts the same data (it replaces invalid UTF-8 in
	// room/event with U+FFFD but copies data byte for byte), so a gateway
	// that forgets to check text frames republishes it to every member.
	c, err := protocol.JSON.DecodeCommand([]byte("{\"id\":1,\"op\":\"publish\",\"room\":\"r\",\"data\":\"caf\xe9\"}"))
	if err == nil && !utf8.Valid(c.Data) {
		t.Errorf("DecodeCommand accepted data that is not valid UTF-8: %q", c.Data)
	}
}

// Regression 3 (low): a top-level JSON null is not a command, like a top-level
// array, string or number (all bad_request), but json.Unmarshal treats null
// as "leave the struct alone", so DecodeCommand reports missing_id.
func TestRegressionTopLevelNullIsMissingID(t *testing.T) {
	for _, frame := range []string{`null`, ` null `} {
		_, err := protocol.JSON.DecodeCommand([]byte(frame))
		var perr *protocol.Error
		if !errors.As(err, &perr) {
			t.Fatalf("DecodeCommand(%q) = %v, want a *protocol.Error", frame, err)
		}
		if perr.Code != protocol.CodeBadRequest {
			t.Errorf("DecodeCommand(%q) code = %s, want bad_request (not an object)", frame, perr.Code)
		}
	}
}

// Regression 4 (low): ValidateRoom documents "no control characters" (and
// CodeInvalidRoom says "with control characters") but only rejects C0 and
// DEL. The C1 controls U+0080–U+009F are control characters too
// (unicode.IsControl); U+0085 NEL is a line break for many log viewers and
// terminals, which makes room names a log-injection vector. Fix: reject
// unicode.IsControl(r).
func TestRegressionValidateRoomAllowsC1Controls(t *testing.T) {
	for _, room := range []string{"a\u0080b", "a\u0085b", "\u009b31m", "a\u009fb"} {
		if err := protocol.ValidateRoom(room, 64); err == nil {
			t.Errorf("ValidateRoom(%q) = nil, want invalid_room (C1 control character)", room)
		}
	}
}
