// Package protocol is the Roomcast client protocol: the message model that
// clients and gateways exchange, independent of how it is encoded on the wire.
//
// A Codec turns the model into bytes. The JSON codec (subprotocol
// "roomcast.v1.json") is the first; a binary codec of the same model is
// negotiated the same way. docs/protocol.md is the reference for users.
package protocol

import (
	"unicode"
	"unicode/utf8"
)

// Subprotocols and the token carrier in Sec-WebSocket-Protocol.
const (
	// SubprotocolJSON selects JSON text frames, version 1.
	SubprotocolJSON = "roomcast.v1.json"
	// TokenSubprotocolPrefix lets browsers, which cannot set headers on a
	// WebSocket, pass their token as an extra offered subprotocol:
	// "roomcast.token.<jwt>". The server never echoes it back.
	TokenSubprotocolPrefix = "roomcast.token."
)

// Op names a client operation.
type Op string

// Client operations. Each carries a request id and gets exactly one Reply.
const (
	OpJoin    Op = "join"
	OpLeave   Op = "leave"
	OpPublish Op = "publish"
	// OpResume restores a previous session of the same client (identity,
	// rooms) after a reconnect to any node within the recovery window.
	OpResume Op = "resume"
)

// Command is one client → server operation.
type Command struct {
	// ID correlates the Reply; it must be non-zero and is echoed verbatim.
	ID uint64
	Op Op
	// Room is the target room for join, leave and publish.
	Room string
	// Event is an optional application-defined name for a published message.
	Event string
	// Data is the published payload. In the JSON encoding it is the raw bytes
	// of one JSON value.
	Data []byte
	// Transient messages skip offsets, recovery and history: best effort,
	// lowest latency (cursors, typing indicators).
	Transient bool
	// IdempotencyKey makes a publish safe to retry: a repeat within the
	// dedupe window returns the first result and is not delivered again.
	IdempotencyKey string
	// Since asks a join to recover: deliver every message after this
	// position before live traffic. The reply says whether it could.
	Since *Position
	// SessionID and ResumeToken identify the session a resume restores.
	SessionID   string
	ResumeToken string
}

// Position is where a room's stream stands: its offset within an epoch.
// The epoch changes when the room's state is lost (expiry, data loss);
// offsets from another epoch are not comparable.
type Position struct {
	Offset uint64
	Epoch  string
}

// Limits are the server limits announced to a client on connect.
type Limits struct {
	MaxMessageBytes  int     // largest accepted frame/message payload
	MaxRoomNameBytes int     // longest room name, in bytes
	MaxRooms         int     // rooms one connection may be joined to
	PublishRate      float64 // sustained operations per second
	PublishBurst     int     // operations allowed in a burst
}

// Connected is the first frame a server sends on a new connection.
type Connected struct {
	ConnectionID string
	SessionID    string
	// ResumeToken is a secret the client presents to resume its session on
	// any node within the recovery window. Never log it.
	ResumeToken string
	ClientID    string
	Node        string
	HeartbeatMS int
	Limits      Limits
}

// Reply answers exactly one Command. Error is nil on success.
type Reply struct {
	ID    uint64
	Error *Error
	// Room and Position answer join (where the room stands now) and publish
	// (where the message was stored). Transient publishes have no position.
	Room     string
	Position *Position
	// Recovered answers a join with Since: true when every message after
	// Since follows (replayed, then live); false when some are gone (the
	// epoch changed or the recovery stream no longer holds them) and the
	// client must resync the room by other means.
	Recovered bool
	// SessionID, ResumeToken and Rooms answer a resume: the restored
	// session, its new resume token (the old one no longer works) and the
	// rooms the session had joined.
	SessionID   string
	ResumeToken string
	Rooms       []string
}

// Message is a room message delivered to a member.
type Message struct {
	Room      string
	Offset    uint64 // 0 for transient messages
	Epoch     string
	Event     string
	Data      []byte
	From      string // publisher's client id ("" for server-side publishes)
	Timestamp int64  // unix milliseconds at the publishing gateway
	Transient bool
}

// ServerFrame is any server → client frame; exactly one field is set.
type ServerFrame struct {
	Connected *Connected
	Reply     *Reply
	Message   *Message
	// Error is a problem not tied to one request (e.g. a frame that could
	// not be parsed far enough to find its id).
	Error *Error
}

// Codec encodes and decodes the protocol model.
type Codec interface {
	// Subprotocol is the Sec-WebSocket-Protocol value that selects this codec.
	Subprotocol() string
	// Binary reports whether frames are binary (true) or text (false).
	Binary() bool

	// DecodeCommand parses a client frame. On failure it returns an *Error
	// whose ID is set when the request id could still be read.
	DecodeCommand(frame []byte) (Command, error)
	// AppendCommand encodes a command (client side).
	AppendCommand(dst []byte, c *Command) ([]byte, error)

	// AppendServerFrame encodes a server frame.
	AppendServerFrame(dst []byte, f *ServerFrame) ([]byte, error)
	// DecodeServerFrame parses a server frame (client side).
	DecodeServerFrame(frame []byte) (ServerFrame, error)
}

// CodecFor returns the codec for a subprotocol, or nil if none matches.
func CodecFor(subprotocol string) Codec {
	switch subprotocol {
	case SubprotocolJSON:
		return JSON
	}
	return nil
}

// ValidateRoom checks a room name: non-empty, valid UTF-8, no control
// characters, at most maxBytes bytes. Any other character is allowed
// (".", "*", "#", ":", "/" and non-ASCII letters included): room names never
// reach AMQP routing keys, which carry only the shard number.
func ValidateRoom(room string, maxBytes int) *Error {
	if room == "" {
		return NewError(CodeInvalidRoom, "room name is empty")
	}
	if len(room) > maxBytes {
		return NewError(CodeInvalidRoom, "room name is longer than the limit")
	}
	if !utf8.ValidString(room) {
		return NewError(CodeInvalidRoom, "room name is not valid UTF-8")
	}
	for _, r := range room {
		if unicode.IsControl(r) {
			return NewError(CodeInvalidRoom, "room name contains a control character")
		}
	}
	return nil
}
