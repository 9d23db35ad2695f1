package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/roomlog"
	"github.com/roomcast/roomcast/pkg/sdk/client"
	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/tests/harness"
)

// binaryPayload holds what a text encoding cannot carry as is: zero bytes,
// invalid UTF-8, and bytes that are msgpack codes themselves.
var binaryPayload = []byte{0x00, 0xff, 0xfe, 0xc3, 0x28, 0x00, 0xc0, 0xc1, 0xa5, 0x92, 0xde, 0xad, 0xbe, 0xef, 0x00}

// frameTimeout bounds the wait for one frame: generous, since a message
// crosses RabbitMQ to the other gateway on a machine that may be saturated
// (race-enabled builds of every process on 2 shared cores).
const frameTimeout = 30 * time.Second

// connectCodec dials url offering codec's subprotocol and the token, checks
// the server selected it, and reads the connected frame.
func connectCodec(t *testing.T, url, tok string, codec protocol.Codec) *harness.Raw {
	t.Helper()
	r := harness.DialRaw(t, url, nil, codec.Subprotocol(), protocol.TokenSubprotocolPrefix+tok)
	if r.Protocol != codec.Subprotocol() {
		t.Fatalf("server selected %q, want %q", r.Protocol, codec.Subprotocol())
	}
	f, err := r.Read(frameTimeout)
	if err != nil || f.Server.Connected == nil {
		t.Fatalf("first frame: %+v, %v", f, err)
	}
	if wantOp := frameOp(codec); f.Op != wantOp {
		t.Fatalf("connected came in a %v frame, want %v", f.Op, wantOp)
	}
	return r
}

func frameOp(codec protocol.Codec) ws.OpCode {
	if codec.Binary() {
		return ws.OpBinary
	}
	return ws.OpText
}

// send writes one command in codec's encoding.
func send(t *testing.T, r *harness.Raw, codec protocol.Codec, c protocol.Command) {
	t.Helper()
	b, err := codec.AppendCommand(nil, &c)
	if err != nil {
		t.Fatal(err)
	}
	r.WriteFrame(frameOp(codec), b)
}

// collect reads frames until it has the reply to id and one message, in
// whichever order they come.
func collect(t *testing.T, r *harness.Raw, id uint64) (reply *protocol.Reply, msg harness.Frame) {
	t.Helper()
	for reply == nil || msg.Server.Message == nil {
		f, err := r.Read(frameTimeout)
		if err != nil || f.Op == ws.OpClose {
			t.Fatalf("read: %+v, %v", f, err)
		}
		switch {
		case f.Server.Reply != nil && f.Server.Reply.ID == id:
			reply = f.Server.Reply
		case f.Server.Message != nil:
			msg = f
		}
	}
	return reply, msg
}

// readMessage reads until the next message frame.
func readMessage(t *testing.T, r *harness.Raw) harness.Frame {
	t.Helper()
	for {
		f, err := r.Read(frameTimeout)
		if err != nil || f.Op == ws.OpClose {
			t.Fatalf("read: %+v, %v", f, err)
		}
		if f.Server.Message != nil {
			return f
		}
	}
}

func joinRaw(t *testing.T, r *harness.Raw, codec protocol.Codec, id uint64, room string) {
	t.Helper()
	send(t, r, codec, protocol.Command{ID: id, Op: protocol.OpJoin, Room: room})
	f := r.ReadServer()
	if f.Reply == nil || f.Reply.ID != id || f.Reply.Error != nil {
		t.Fatalf("join: %+v", f)
	}
}

// TestMsgpackAndJSONClientsShareARoom runs a msgpack and a JSON connection
// in one room on two gateway processes: each receives the other's
// messages; binary payloads arrive byte for byte on msgpack (as bin) and
// as base64 with the encoding marker on JSON; JSON payloads arrive as JSON
// text on both.
func TestMsgpackAndJSONClientsShareARoom(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw0 := env.Gateway(t, "gw-mp-0")
	gw1 := env.Gateway(t, "gw-mp-1")
	caps := token.Capabilities{"mix.*": {token.OpJoin, token.OpPublish}}
	const room = "mix.room"

	mp := connectCodec(t, gw0.WSURL(), env.Token(t, "mp-user", caps, time.Hour), protocol.Msgpack)
	js := connectCodec(t, gw1.WSURL(), env.Token(t, "json-user", caps, time.Hour), protocol.JSON)
	joinRaw(t, mp, protocol.Msgpack, 1, room)
	joinRaw(t, js, protocol.JSON, 1, room)

	t.Run("binary from msgpack", func(t *testing.T) {
		send(t, mp, protocol.Msgpack, protocol.Command{ID: 2, Op: protocol.OpPublish, Room: room, Event: "state", Data: binaryPayload, Binary: true})
		reply, own := collect(t, mp, 2)
		if reply.Error != nil || reply.Position == nil {
			t.Fatalf("publish reply: %+v", reply)
		}
		// On msgpack: a bin of the bytes as they were sent.
		bin := append([]byte{0xc4, byte(len(binaryPayload))}, binaryPayload...)
		if own.Op != ws.OpBinary || !bytes.Contains(own.Payload, bin) {
			t.Fatalf("msgpack frame (%v) % x does not carry the payload as bin", own.Op, own.Payload)
		}
		if m := own.Server.Message; !m.Binary || !bytes.Equal(m.Data, binaryPayload) || m.Event != "state" || m.From != "mp-user" {
			t.Fatalf("msgpack side got %+v", m)
		}
		// On JSON: base64 and the marker, in a text frame.
		f := readMessage(t, js)
		want := `"data":"` + base64.StdEncoding.EncodeToString(binaryPayload) + `","encoding":"base64"`
		if f.Op != ws.OpText || !strings.Contains(string(f.Payload), want) {
			t.Fatalf("JSON frame %s lacks %s", f.Payload, want)
		}
		if m := f.Server.Message; !m.Binary || !bytes.Equal(m.Data, binaryPayload) || m.Offset != reply.Position.Offset {
			t.Fatalf("JSON side got %+v (publish position %+v)", m, reply.Position)
		}
	})

	t.Run("JSON from JSON", func(t *testing.T) {
		const data = `{"text":"héllo","n":[1,2]}`
		send(t, js, protocol.JSON, protocol.Command{ID: 3, Op: protocol.OpPublish, Room: room, Data: []byte(data)})
		reply, own := collect(t, js, 3)
		if reply.Error != nil {
			t.Fatalf("publish reply: %+v", reply)
		}
		if !strings.Contains(string(own.Payload), `"data":`+data) || strings.Contains(string(own.Payload), "encoding") {
			t.Fatalf("JSON frame changed: %s", own.Payload)
		}
		// On msgpack: a str holding the same JSON text.
		f := readMessage(t, mp)
		str := append([]byte{0xa0 | byte(len(data))}, data...)
		if !bytes.Contains(f.Payload, str) {
			t.Fatalf("msgpack frame % x does not carry the JSON text as str", f.Payload)
		}
		if m := f.Server.Message; m.Binary || string(m.Data) != data || m.From != "json-user" {
			t.Fatalf("msgpack side got %+v", m)
		}
	})

	t.Run("binary from JSON", func(t *testing.T) {
		// A JSON client publishes bytes as base64 with the marker.
		js.WriteFrame(ws.OpText, []byte(`{"id":4,"op":"publish","room":"`+room+`","data":"`+base64.StdEncoding.EncodeToString(binaryPayload)+`","encoding":"base64","transient":true}`))
		reply, _ := collect(t, js, 4)
		if reply.Error != nil {
			t.Fatalf("publish reply: %+v", reply)
		}
		f := readMessage(t, mp)
		if m := f.Server.Message; !m.Binary || !bytes.Equal(m.Data, binaryPayload) || !m.Transient {
			t.Fatalf("msgpack side got %+v", m)
		}
	})

	t.Run("JSON text from msgpack", func(t *testing.T) {
		send(t, mp, protocol.Msgpack, protocol.Command{ID: 5, Op: protocol.OpPublish, Room: room, Data: []byte(`[true,null]`)})
		if reply, _ := collect(t, mp, 5); reply.Error != nil {
			t.Fatalf("publish reply: %+v", reply)
		}
		f := readMessage(t, js)
		if !strings.Contains(string(f.Payload), `"data":[true,null]`) || f.Server.Message.Binary {
			t.Fatalf("JSON side got %s", f.Payload)
		}
	})
}

// TestSDKMsgpack runs the Go SDK with the msgpack codec against a Go SDK
// client with the default JSON codec, on two gateway processes: binary and
// JSON payloads in both directions, byte-exact.
func TestSDKMsgpack(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw0 := env.Gateway(t, "gw-sdkmp-0")
	gw1 := env.Gateway(t, "gw-sdkmp-1")
	caps := token.Capabilities{"sdk.*": {token.OpJoin, token.OpPublish}}
	const room = "sdk.bytes"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	type got struct {
		mu   sync.Mutex
		msgs []protocol.Message
		ch   chan struct{}
	}
	dial := func(url, id string, codec protocol.Codec) (*client.Client, *got) {
		c, err := client.Dial(ctx, client.Config{URL: url, Token: env.Token(t, id, caps, time.Hour), Codec: codec})
		if err != nil {
			t.Fatalf("dial %s: %v", id, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		g := &got{ch: make(chan struct{}, 64)}
		c.OnMessage(room, func(m protocol.Message) {
			g.mu.Lock()
			g.msgs = append(g.msgs, m)
			g.mu.Unlock()
			g.ch <- struct{}{}
		})
		if _, err := c.Join(ctx, room); err != nil {
			t.Fatalf("join %s: %v", id, err)
		}
		return c, g
	}
	mpc, mpGot := dial(gw0.WSURL(), "mp", protocol.Msgpack)
	jsc, jsGot := dial(gw1.WSURL(), "js", nil)

	wait := func(g *got, n int) []protocol.Message {
		t.Helper()
		for {
			g.mu.Lock()
			have := len(g.msgs)
			msgs := append([]protocol.Message(nil), g.msgs...)
			g.mu.Unlock()
			if have >= n {
				return msgs
			}
			select {
			case <-g.ch:
			case <-ctx.Done():
				t.Fatalf("have %d messages, want %d", have, n)
			}
		}
	}

	if _, err := mpc.Publish(ctx, room, binaryPayload, client.Binary(), client.WithEvent("b")); err != nil {
		t.Fatal(err)
	}
	jsonData := []byte(`{"k":"v"}`)
	if _, err := jsc.Publish(ctx, room, jsonData); err != nil {
		t.Fatal(err)
	}
	reversed := bytes.Clone(binaryPayload)
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	if _, err := jsc.Publish(ctx, room, reversed, client.Binary()); err != nil {
		t.Fatal(err)
	}
	for name, g := range map[string]*got{"msgpack": mpGot, "json": jsGot} {
		msgs := wait(g, 3)
		if m := msgs[0]; !m.Binary || !bytes.Equal(m.Data, binaryPayload) || m.Event != "b" || m.From != "mp" {
			t.Errorf("%s: first message %+v", name, m)
		}
		if m := msgs[1]; m.Binary || !bytes.Equal(m.Data, jsonData) || m.From != "js" {
			t.Errorf("%s: second message %+v", name, m)
		}
		if m := msgs[2]; !m.Binary || !bytes.Equal(m.Data, reversed) {
			t.Errorf("%s: third message %+v", name, m)
		}
	}
}

// TestMsgpackNegotiation: the subprotocol decides the codec; offering none
// is JSON, as before.
func TestMsgpackNegotiation(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw := env.Gateway(t, "gw-mp-neg")
	tok := env.Token(t, "neg", token.Capabilities{"n": {token.OpJoin}}, time.Hour)
	for _, tc := range []struct {
		name    string
		offered []string
		want    string
		binary  bool
	}{
		{"token only: JSON, nothing selected", []string{protocol.TokenSubprotocolPrefix + tok}, "", false},
		{"msgpack", []string{protocol.SubprotocolMsgpack, protocol.TokenSubprotocolPrefix + tok}, protocol.SubprotocolMsgpack, true},
		{"json first", []string{protocol.SubprotocolJSON, protocol.SubprotocolMsgpack, protocol.TokenSubprotocolPrefix + tok}, protocol.SubprotocolJSON, false},
		{"msgpack first", []string{"roomcast.v9.cbor", protocol.SubprotocolMsgpack, protocol.SubprotocolJSON, protocol.TokenSubprotocolPrefix + tok}, protocol.SubprotocolMsgpack, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := harness.DialRaw(t, gw.WSURL(), nil, tc.offered...)
			if r.Protocol != tc.want {
				t.Fatalf("selected %q, want %q", r.Protocol, tc.want)
			}
			f := r.ReadServer()
			if f.Connected == nil {
				t.Fatalf("first frame %+v", f)
			}
			codec := protocol.JSON
			if tc.binary {
				codec = protocol.Msgpack
			}
			joinRaw(t, r, codec, 1, "n")
		})
	}
}

// TestMsgpackBadInput sends bad msgpack to a gateway: each gets the
// documented answer, the connection (where documented) and the process
// keep serving.
func TestMsgpackBadInput(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw := env.Gateway(t, "gw-mp-bad", "GATEWAY_MAX_FRAME_BYTES=65536")
	caps := token.Capabilities{"open.*": {token.OpJoin, token.OpPublish, token.OpPresence}}
	tok := env.Token(t, "bad", caps, time.Hour)
	dial := func(t *testing.T) *harness.Raw { return connectCodec(t, gw.WSURL(), tok, protocol.Msgpack) }
	stillWorks := func(t *testing.T, r *harness.Raw) {
		t.Helper()
		joinRaw(t, r, protocol.Msgpack, 999, "open.check")
	}
	frameErr := func(t *testing.T, r *harness.Raw, want protocol.Code) {
		t.Helper()
		f, err := r.Read(frameTimeout)
		if err != nil || f.Op != ws.OpBinary || f.Server.Error == nil || f.Server.Error.Code != want {
			t.Fatalf("want a msgpack error frame %s, got %+v (%v)", want, f, err)
		}
	}
	replyErr := func(t *testing.T, r *harness.Raw, id uint64, want protocol.Code) {
		t.Helper()
		f := r.ReadServer()
		if f.Reply == nil || f.Reply.ID != id || f.Reply.Error == nil || f.Reply.Error.Code != want {
			t.Fatalf("want reply %d with error %s, got %+v", id, want, f.Reply)
		}
	}
	// mpFrame is a msgpack map from alternating keys and raw msgpack values.
	mpFrame := func(kv ...string) []byte {
		b := []byte{0x80 | byte(len(kv)/2)}
		for i := 0; i < len(kv); i += 2 {
			b = append(b, 0xa0|byte(len(kv[i])))
			b = append(b, kv[i]...)
			b = append(b, kv[i+1]...)
		}
		return b
	}
	str := func(s string) string { return string(append([]byte{0xa0 | byte(len(s))}, s...)) }

	for _, tc := range []struct {
		name  string
		frame []byte
		id    uint64 // 0: an error frame
		code  protocol.Code
	}{
		{"not msgpack", []byte{0xc1, 0xc1}, 0, protocol.CodeBadRequest},
		{"not a map", []byte{0x93, 1, 2, 3}, 0, protocol.CodeBadRequest},
		{"truncated", mpFrame("id", "\x07", "op", str("join"), "room", str("open.a"))[:12], 0, protocol.CodeBadRequest},
		{"length past the end", []byte{0x81, 0xa2, 'i', 'd', 0xdb, 0xff, 0xff, 0xff, 0xff}, 0, protocol.CodeBadRequest},
		{"map32 header", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, 0, protocol.CodeBadRequest},
		{"trailing bytes", append(mpFrame("id", "\x07", "op", str("join"), "room", str("open.a")), 0xc0), 0, protocol.CodeBadRequest},
		{"missing id", mpFrame("op", str("join"), "room", str("open.a")), 0, protocol.CodeMissingID},
		{"id a string", mpFrame("id", str("7"), "op", str("join")), 0, protocol.CodeBadRequest},
		{"room an int, id last", mpFrame("room", "\x05", "op", str("join"), "id", "\x07"), 7, protocol.CodeBadRequest},
		{"data a map", mpFrame("id", "\x08", "op", str("publish"), "room", str("open.a"), "data", "\x81\xa1a\x01"), 8, protocol.CodeBadRequest},
		{"data str not JSON", mpFrame("id", "\x09", "op", str("publish"), "room", str("open.a"), "data", str("hello")), 9, protocol.CodeBadRequest},
		{"room invalid UTF-8", mpFrame("id", "\x0a", "op", str("join"), "room", "\xa2\xff\xfe"), 10, protocol.CodeBadRequest},
		{"unknown op", mpFrame("id", "\x0b", "op", str("teleport")), 11, protocol.CodeUnknownOp},
		{"binary presence data", mpFrame("id", "\x0c", "op", str("presence.enter"), "room", str("open.a"), "data", "\xc4\x02\x00\xff"), 12, protocol.CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dial(t)
			if tc.name == "binary presence data" {
				joinRaw(t, r, protocol.Msgpack, 1, "open.a")
			}
			r.WriteFrame(ws.OpBinary, tc.frame)
			if tc.id == 0 {
				frameErr(t, r, tc.code)
			} else {
				replyErr(t, r, tc.id, tc.code)
			}
			stillWorks(t, r)
		})
	}
	t.Run("deep nesting", func(t *testing.T) {
		r := dial(t)
		// An unknown key whose value is 60,000 nested arrays is skipped.
		deep := append(bytes.Repeat([]byte{0x91}, 60000), 0xc0)
		r.WriteFrame(ws.OpBinary, mpFrame("id", "\x0d", "op", str("join"), "room", str("open.deep"), "future", string(deep)))
		f := r.ReadServer()
		if f.Reply == nil || f.Reply.ID != 13 || f.Reply.Error != nil {
			t.Fatalf("want reply 13, got %+v", f.Reply)
		}
	})
	t.Run("text frame on msgpack", func(t *testing.T) {
		r := dial(t)
		r.WriteFrame(ws.OpText, []byte(`{"id":1,"op":"join","room":"open.a"}`))
		r.ExpectClose(protocol.CloseUnsupportedData)
	})
	t.Run("binary frame on JSON", func(t *testing.T) {
		r := connectCodec(t, gw.WSURL(), tok, protocol.JSON)
		send(t, r, protocol.Msgpack, protocol.Command{ID: 1, Op: protocol.OpJoin, Room: "open.a"})
		r.ExpectClose(protocol.CloseUnsupportedData)
	})
	t.Run("over the frame limit", func(t *testing.T) {
		r := dial(t)
		send(t, r, protocol.Msgpack, protocol.Command{ID: 1, Op: protocol.OpPublish, Room: "open.a", Data: make([]byte, 70000), Binary: true})
		r.ExpectClose(protocol.CloseMessageTooBig)
	})

	if gw.Exited() {
		t.Fatalf("gateway exited:\n%s", gw.Logs())
	}
	stillWorks(t, dial(t))
	if logs := gw.Logs(); strings.Contains(logs, "panic") {
		t.Fatalf("gateway logged a panic:\n%s", logs)
	}
}

// TestBinaryPayloadsInHistory reads binary payloads back from history on
// both subprotocols and over REST, once they have left the room's recovery
// stream and live only in the archive, which keeps their binary mark: bytes
// that happen to be valid JSON text come back binary too.
func TestBinaryPayloadsInHistory(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	h := env.History(t, "hist-mp")
	// Recovery stream: about the last 50 messages (Redis trims it in
	// blocks of 100 entries). The rate limit would refuse a fast publisher.
	gw := historyGateway(t, env, "gw-hist-mp", h, "GATEWAY_RATE=100000", "GATEWAY_BURST=100000")
	caps := token.Capabilities{"h.*": {token.OpJoin, token.OpPublish, token.OpHistory}}
	const room, jsonCount = "h.bytes", 200
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	c, err := client.Dial(ctx, client.Config{URL: gw.WSURL(), Token: env.Token(t, "pub", caps, time.Hour), Codec: protocol.Msgpack})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first, err := c.Publish(ctx, room, binaryPayload, client.Binary())
	if err != nil {
		t.Fatal(err)
	}
	// Bytes that are JSON text, published as bytes, that will live only in
	// the archive.
	archivedJSONLooking := []byte(`{"a":1}`)
	if _, err := c.Publish(ctx, room, archivedJSONLooking, client.Binary()); err != nil {
		t.Fatal(err)
	}
	for i := range jsonCount {
		if _, err := c.Publish(ctx, room, []byte(`{"i":`+strconv.Itoa(i)+`}`)); err != nil {
			t.Fatal(err)
		}
	}
	// Bytes that happen to be JSON text, still in the recovery stream (its
	// mark and the archive's agree).
	jsonLooking := []byte(`[1,2]`)
	if _, err := c.Publish(ctx, room, jsonLooking, client.Binary()); err != nil {
		t.Fatal(err)
	}
	const total = jsonCount + 3
	testenv.WaitFor(t, 30*time.Second, "archived", func() bool {
		return archived(t, env, "room = $1", room) == total
	})
	if n := archived(t, env, "room = $1 AND is_binary", room); n != 3 {
		t.Fatalf("%d archived rows marked binary, want 3", n)
	}
	stream := roomlog.New(env.Redis, roomlog.Config{Prefix: env.RedisPrefix})
	if _, err := stream.Range(ctx, env.Key.App, room, first.Epoch, 1, 2); !errors.Is(err, roomlog.ErrTruncated) {
		t.Fatalf("offsets 1 and 2 are still in the recovery stream (%v): the archive's mark is not what this reads", err)
	}

	check := func(t *testing.T, msgs []protocol.Message) {
		t.Helper()
		if len(msgs) != total {
			t.Fatalf("%d messages, want %d", len(msgs), total)
		}
		if m := msgs[0]; m.Offset != 1 || !m.Binary || !bytes.Equal(m.Data, binaryPayload) {
			t.Fatalf("first message %+v, want the binary payload", m)
		}
		if m := msgs[1]; m.Offset != 2 || !m.Binary || !bytes.Equal(m.Data, archivedJSONLooking) {
			t.Fatalf("second message %+v, want binary %q", m, archivedJSONLooking)
		}
		if m := msgs[2]; m.Binary || string(m.Data) != `{"i":0}` {
			t.Fatalf("message 2: %+v", m)
		}
		if m := msgs[jsonCount+1]; m.Binary || string(m.Data) != `{"i":199}` {
			t.Fatalf("message %d: %+v", jsonCount+1, m)
		}
		if m := msgs[total-1]; !m.Binary || !bytes.Equal(m.Data, jsonLooking) {
			t.Fatalf("last message %+v, want binary %q", m, jsonLooking)
		}
	}
	for _, codec := range []protocol.Codec{protocol.Msgpack, protocol.JSON} {
		t.Run(codec.Subprotocol(), func(t *testing.T) {
			r := connectCodec(t, gw.WSURL(), env.Token(t, "reader", caps, time.Hour), codec)
			send(t, r, codec, protocol.Command{ID: 1, Op: protocol.OpHistory, Room: room, Limit: 1000, History: &protocol.HistoryQuery{}})
			f := r.ReadServer()
			if f.Reply == nil || f.Reply.Error != nil {
				t.Fatalf("history reply %+v", f.Reply)
			}
			check(t, f.Reply.Messages)
		})
	}
	t.Run("REST", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gw.HTTPURL()+"/v1/rooms/"+room+"/messages?limit=1000", nil)
		req.Header.Set("Authorization", "Bearer "+env.Key.String())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var page struct {
			Messages []struct {
				Offset   uint64          `json:"offset"`
				Data     json.RawMessage `json:"data"`
				Encoding string          `json:"encoding"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %v", resp.StatusCode, err)
		}
		if len(page.Messages) != total {
			t.Fatalf("%d messages", len(page.Messages))
		}
		first := page.Messages[0]
		want := `"` + base64.StdEncoding.EncodeToString(binaryPayload) + `"`
		if first.Encoding != protocol.EncodingBase64 || string(first.Data) != want {
			t.Fatalf("first message: data %s, encoding %q; want %s, base64", first.Data, first.Encoding, want)
		}
		if m := page.Messages[1]; m.Encoding != protocol.EncodingBase64 || string(m.Data) != `"`+base64.StdEncoding.EncodeToString(archivedJSONLooking)+`"` {
			t.Fatalf("second message: %s %q, want base64 of %q", m.Data, m.Encoding, archivedJSONLooking)
		}
		if m := page.Messages[jsonCount+1]; m.Encoding != "" || string(m.Data) != `{"i":199}` {
			t.Fatalf("message %d: %s %q", jsonCount+1, m.Data, m.Encoding)
		}
		if last := page.Messages[total-1]; last.Encoding != protocol.EncodingBase64 || string(last.Data) != `"`+base64.StdEncoding.EncodeToString(jsonLooking)+`"` {
			t.Fatalf("last message: %s %q", last.Data, last.Encoding)
		}
	})
}
