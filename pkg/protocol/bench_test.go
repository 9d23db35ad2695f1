package protocol_test

import (
	"strings"
	"testing"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// benchData is a 200-byte JSON payload, the size of a typical chat message.
var benchData = func() []byte {
	const head, tail = `{"text":"`, `","user":{"id":"u-123","name":"Ada"},"ts":1700000000000}`
	return []byte(head + strings.Repeat("x", 200-len(head)-len(tail)) + tail)
}()

// publishFrame is a typical publish command of about 200 bytes.
var publishFrame = func() []byte {
	const head, tail = `{"id":12345,"op":"publish","room":"chat.general","event":"message","data":{"text":"`, `"},"idempotency_key":"c1-12345"}`
	return []byte(head + strings.Repeat("y", 200-len(head)-len(tail)) + tail)
}()

func TestBenchInputsAreTheAdvertisedSize(t *testing.T) {
	if len(benchData) != 200 {
		t.Errorf("benchData is %d bytes, want 200", len(benchData))
	}
	if len(publishFrame) != 200 {
		t.Errorf("publishFrame is %d bytes, want 200", len(publishFrame))
	}
	if _, err := protocol.JSON.DecodeCommand(publishFrame); err != nil {
		t.Errorf("publishFrame does not decode: %v", err)
	}
}

func BenchmarkDecodeCommandPublish(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(publishFrame)))
	for b.Loop() {
		c, err := protocol.JSON.DecodeCommand(publishFrame)
		if err != nil || c.ID != 12345 {
			b.Fatal(c, err)
		}
	}
}

func BenchmarkEncodeMessage(b *testing.B) {
	f := &protocol.ServerFrame{Message: &protocol.Message{
		Room: "chat.general", Offset: 123456, Epoch: "e-1f3a", Event: "message",
		Data: benchData, From: "user-42", Timestamp: 1700000000000,
	}}
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		dst, err = protocol.JSON.AppendServerFrame(dst[:0], f)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(dst)))
}

func BenchmarkEncodeReply(b *testing.B) {
	f := &protocol.ServerFrame{Reply: &protocol.Reply{
		ID: 12345, Room: "chat.general", Position: &protocol.Position{Offset: 123456, Epoch: "e-1f3a"},
	}}
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		dst, err = protocol.JSON.AppendServerFrame(dst[:0], f)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(dst)))
}

func BenchmarkEncodeCommandPublish(b *testing.B) {
	c := &protocol.Command{ID: 12345, Op: protocol.OpPublish, Room: "chat.general", Event: "message", Data: benchData, IdempotencyKey: "c1-12345"}
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		dst, err = protocol.JSON.AppendCommand(dst[:0], c)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(dst)))
}

func BenchmarkDecodeServerFrameMessage(b *testing.B) {
	frame, err := protocol.JSON.AppendServerFrame(nil, &protocol.ServerFrame{Message: &protocol.Message{
		Room: "chat.general", Offset: 123456, Epoch: "e-1f3a", Event: "message",
		Data: benchData, From: "user-42", Timestamp: 1700000000000,
	}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := protocol.JSON.DecodeServerFrame(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// The msgpack codec on the same inputs; "Binary" variants carry the
// 200-byte payload as bin instead of JSON text.

// msgpackPublishFrame is publishFrame's command in msgpack (data as str).
var msgpackPublishFrame = func() []byte {
	c, err := protocol.JSON.DecodeCommand(publishFrame)
	if err != nil {
		panic(err)
	}
	b, err := protocol.Msgpack.AppendCommand(nil, &c)
	if err != nil {
		panic(err)
	}
	return b
}()

func benchMessage(binary bool) *protocol.ServerFrame {
	return &protocol.ServerFrame{Message: &protocol.Message{
		Room: "chat.general", Offset: 123456, Epoch: "e-1f3a", Event: "message",
		Data: benchData, Binary: binary, From: "user-42", Timestamp: 1700000000000,
	}}
}

func BenchmarkMsgpackDecodeCommandPublish(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(msgpackPublishFrame)))
	for b.Loop() {
		c, err := protocol.Msgpack.DecodeCommand(msgpackPublishFrame)
		if err != nil || c.ID != 12345 {
			b.Fatal(c, err)
		}
	}
}

func BenchmarkMsgpackDecodeCommandPublishBinary(b *testing.B) {
	frame, err := protocol.Msgpack.AppendCommand(nil, &protocol.Command{ID: 12345, Op: protocol.OpPublish, Room: "chat.general",
		Event: "message", Data: benchData, Binary: true, IdempotencyKey: "c1-12345"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		c, err := protocol.Msgpack.DecodeCommand(frame)
		if err != nil || !c.Binary {
			b.Fatal(c, err)
		}
	}
}

func benchEncode(b *testing.B, codec protocol.Codec, f *protocol.ServerFrame) {
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		dst, err = codec.AppendServerFrame(dst[:0], f)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(dst)))
}

func BenchmarkMsgpackEncodeMessage(b *testing.B) {
	benchEncode(b, protocol.Msgpack, benchMessage(false))
}

func BenchmarkMsgpackEncodeMessageBinary(b *testing.B) {
	benchEncode(b, protocol.Msgpack, benchMessage(true))
}

// BenchmarkEncodeMessageBinary is what a JSON member of a room costs for a
// message published as binary: base64.
func BenchmarkEncodeMessageBinary(b *testing.B) { benchEncode(b, protocol.JSON, benchMessage(true)) }

func BenchmarkMsgpackEncodeReply(b *testing.B) {
	benchEncode(b, protocol.Msgpack, &protocol.ServerFrame{Reply: &protocol.Reply{
		ID: 12345, Room: "chat.general", Position: &protocol.Position{Offset: 123456, Epoch: "e-1f3a"},
	}})
}

func BenchmarkMsgpackEncodeCommandPublishBinary(b *testing.B) {
	c := &protocol.Command{ID: 12345, Op: protocol.OpPublish, Room: "chat.general", Event: "message", Data: benchData, Binary: true, IdempotencyKey: "c1-12345"}
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		dst, err = protocol.Msgpack.AppendCommand(dst[:0], c)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(dst)))
}

func BenchmarkMsgpackDecodeServerFrameMessageBinary(b *testing.B) {
	frame, err := protocol.Msgpack.AppendServerFrame(nil, benchMessage(true))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := protocol.Msgpack.DecodeServerFrame(frame); err != nil {
			b.Fatal(err)
		}
	}
}
