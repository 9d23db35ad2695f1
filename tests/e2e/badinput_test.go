package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/tests/harness"
)

// TestBadInput sends every kind of bad input the protocol documents and
// checks each gets its documented answer while the node keeps serving.
func TestBadInput(t *testing.T) {
	t.Parallel()
	env := harness.NewEnv(t)
	gw := env.Gateway(t, "gw-bad",
		"GATEWAY_MAX_FRAME_BYTES=4096",
		"GATEWAY_MAX_MESSAGE_BYTES=1024",
		"GATEWAY_MAX_ROOM_NAME_BYTES=32",
		"GATEWAY_ALLOWED_ORIGINS=https://app.example.com,https://*.example.org",
	)
	caps := token.Capabilities{"open.*": {token.OpJoin, token.OpPublish}, "readonly": {token.OpJoin}}
	good := env.Token(t, "alice", caps, time.Hour)

	dial := func(t *testing.T) *harness.Raw {
		r, _ := harness.Connect(t, gw.WSURL(), good)
		return r
	}
	// A connection that stays usable after the bad input proves the
	// connection (not just the process) survived.
	stillWorks := func(t *testing.T, r *harness.Raw) {
		t.Helper()
		r.WriteJSON(map[string]any{"id": 999, "op": "join", "room": "open.check"})
		f := r.ReadServer()
		if f.Reply == nil || f.Reply.ID != 999 || f.Reply.Error != nil {
			t.Fatalf("connection no longer serves: %+v", f)
		}
	}
	replyErr := func(t *testing.T, r *harness.Raw, id uint64, want protocol.Code) {
		t.Helper()
		f := r.ReadServer()
		if f.Reply == nil || f.Reply.ID != id || f.Reply.Error == nil || f.Reply.Error.Code != want {
			t.Fatalf("want reply %d with error %s, got %+v (reply %+v)", id, want, f, f.Reply)
		}
	}
	frameErr := func(t *testing.T, r *harness.Raw, want protocol.Code) {
		t.Helper()
		f := r.ReadServer()
		if f.Error == nil || f.Error.Code != want {
			t.Fatalf("want error frame %s, got %+v", want, f)
		}
	}

	t.Run("malformed JSON", func(t *testing.T) {
		r := dial(t)
		r.WriteFrame(ws.OpText, []byte(`{"id":1,"op":"join","room":`))
		frameErr(t, r, protocol.CodeBadRequest)
		stillWorks(t, r)
	})
	t.Run("unknown op", func(t *testing.T) {
		r := dial(t)
		r.WriteJSON(map[string]any{"id": 7, "op": "teleport", "room": "open.a"})
		replyErr(t, r, 7, protocol.CodeUnknownOp)
		stillWorks(t, r)
	})
	t.Run("not an object", func(t *testing.T) {
		r := dial(t)
		r.WriteFrame(ws.OpText, []byte(`null`))
		frameErr(t, r, protocol.CodeBadRequest)
		stillWorks(t, r)
	})
	t.Run("missing request id", func(t *testing.T) {
		r := dial(t)
		r.WriteJSON(map[string]any{"op": "join", "room": "open.a"})
		frameErr(t, r, protocol.CodeMissingID)
		stillWorks(t, r)
	})
	t.Run("wrong field type", func(t *testing.T) {
		r := dial(t)
		// The id is still readable, so the error is a reply to request 3.
		r.WriteFrame(ws.OpText, []byte(`{"id":3,"op":"join","room":42}`))
		replyErr(t, r, 3, protocol.CodeBadRequest)
		stillWorks(t, r)
	})
	t.Run("binary frame on the JSON protocol", func(t *testing.T) {
		r := dial(t)
		r.WriteFrame(ws.OpBinary, []byte(`{"id":1,"op":"join","room":"open.a"}`))
		r.ExpectClose(protocol.CloseUnsupportedData)
	})
	t.Run("frame over the size cap", func(t *testing.T) {
		r := dial(t)
		r.WriteFrame(ws.OpText, []byte(`{"id":1,"op":"publish","room":"open.a","data":"`+strings.Repeat("x", 5000)+`"}`))
		r.ExpectClose(protocol.CloseMessageTooBig)
	})
	t.Run("message over the size cap", func(t *testing.T) {
		r := dial(t)
		r.WriteJSON(map[string]any{"id": 4, "op": "publish", "room": "open.a", "data": strings.Repeat("y", 2000)})
		replyErr(t, r, 4, protocol.CodeMessageTooLarge)
		stillWorks(t, r)
	})
	t.Run("invalid UTF-8", func(t *testing.T) {
		r := dial(t)
		r.WriteFrame(ws.OpText, []byte("{\"id\":1,\"op\":\"join\",\"room\":\"\xff\xfe\"}"))
		r.ExpectClose(protocol.CloseInvalidPayload)
	})
	t.Run("room name over the cap", func(t *testing.T) {
		r := dial(t)
		r.WriteJSON(map[string]any{"id": 5, "op": "join", "room": "open." + strings.Repeat("r", 40)})
		replyErr(t, r, 5, protocol.CodeInvalidRoom)
		stillWorks(t, r)
	})
	t.Run("empty room name", func(t *testing.T) {
		r := dial(t)
		r.WriteJSON(map[string]any{"id": 6, "op": "join", "room": ""})
		replyErr(t, r, 6, protocol.CodeInvalidRoom)
		stillWorks(t, r)
	})
	t.Run("join without the capability", func(t *testing.T) {
		r := dial(t)
		r.WriteJSON(map[string]any{"id": 8, "op": "join", "room": "secret"})
		replyErr(t, r, 8, protocol.CodeForbidden)
		stillWorks(t, r)
	})
	t.Run("publish without the capability", func(t *testing.T) {
		r := dial(t)
		r.WriteJSON(map[string]any{"id": 9, "op": "publish", "room": "readonly", "data": 1})
		replyErr(t, r, 9, protocol.CodeForbidden)
		stillWorks(t, r)
	})
	t.Run("leave a room not joined", func(t *testing.T) {
		r := dial(t)
		r.WriteJSON(map[string]any{"id": 10, "op": "leave", "room": "open.never"})
		replyErr(t, r, 10, protocol.CodeNotJoined)
		stillWorks(t, r)
	})

	other := token.Key{App: env.Key.App, ID: env.Key.ID, Secret: []byte("another-secret-entirely")}
	signedElsewhere, err := token.Mint(other, "mallory", caps, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	unknownKid, err := token.Mint(token.Key{App: env.Key.App, ID: "nokey", Secret: env.Key.Secret}, "mallory", caps, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	expired, err := token.Mint(env.Key, "bob", caps, time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tokenCases := []struct {
		name  string
		token string
		want  protocol.CloseCode
	}{
		{"missing", "", protocol.CloseInvalidToken},
		{"expired", expired, protocol.CloseTokenExpired},
		{"signed with another key", signedElsewhere, protocol.CloseInvalidToken},
		{"unknown key id", unknownKid, protocol.CloseInvalidToken},
		{"alg none", algNone(t, env.Key, "mallory", caps), protocol.CloseInvalidToken},
		{"malformed", "not.a.jwt", protocol.CloseInvalidToken},
		{"garbage", "%%%", protocol.CloseInvalidToken},
	}
	for _, tc := range tokenCases {
		t.Run("token "+tc.name, func(t *testing.T) {
			url := gw.WSURL()
			if tc.token != "" {
				url += "?token=" + tc.token
			}
			r := harness.DialRaw(t, url, nil, protocol.SubprotocolJSON)
			r.ExpectClose(tc.want)
		})
	}
	t.Run("origin not allowed", func(t *testing.T) {
		r := harness.DialRaw(t, gw.WSURL(), http.Header{"Origin": {"https://evil.example.net"}}, protocol.SubprotocolJSON, protocol.TokenSubprotocolPrefix+good)
		r.ExpectClose(protocol.CloseOriginRejected)
	})
	t.Run("origin allowed by pattern", func(t *testing.T) {
		r := harness.DialRaw(t, gw.WSURL(), http.Header{"Origin": {"https://chat.example.org"}}, protocol.SubprotocolJSON, protocol.TokenSubprotocolPrefix+good)
		if f := r.ReadServer(); f.Connected == nil {
			t.Fatalf("want connected, got %+v", f)
		}
	})
	t.Run("unsupported subprotocol", func(t *testing.T) {
		r := harness.DialRaw(t, gw.WSURL()+"?token="+good, nil, "roomcast.v9.xml")
		r.ExpectClose(protocol.CloseUnsupportedProtocol)
	})

	// After all of the above the node still serves a well-behaved client
	// end to end.
	t.Run("still serving", func(t *testing.T) {
		r := dial(t)
		r.WriteJSON(map[string]any{"id": 1, "op": "join", "room": "open.final"})
		if f := r.ReadServer(); f.Reply == nil || f.Reply.Error != nil {
			t.Fatalf("join: %+v", f)
		}
		r.WriteJSON(map[string]any{"id": 2, "op": "publish", "room": "open.final", "data": map[string]string{"hello": "world"}})
		var gotReply, gotMsg bool
		for !gotReply || !gotMsg {
			f := r.ReadServer()
			switch {
			case f.Reply != nil && f.Reply.ID == 2:
				if f.Reply.Error != nil || f.Reply.Position == nil || f.Reply.Position.Offset != 1 {
					t.Fatalf("publish reply: %+v", f.Reply)
				}
				gotReply = true
			case f.Message != nil:
				if string(f.Message.Data) != `{"hello":"world"}` || f.Message.Offset != 1 || f.Message.From != "alice" {
					t.Fatalf("message: %+v", f.Message)
				}
				gotMsg = true
			}
		}
	})
}

// algNone forges an unsigned token ("alg": "none") with otherwise valid
// claims.
func algNone(t *testing.T, k token.Key, client string, caps token.Capabilities) string {
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	header := enc(map[string]string{"alg": "none", "typ": "JWT", "kid": k.ID})
	claims := enc(map[string]any{"app": k.App, "sub": client, "caps": caps, "exp": time.Now().Add(time.Hour).Unix()})
	return header + "." + claims + "."
}
