// Package protocol is the Roomcast client protocol: the message model that
// clients and gateways exchange, independent of how it is encoded on the wire.
//
// A Codec turns the model into bytes: JSON (subprotocol "roomcast.v1.json",
// the default) or MessagePack ("roomcast.v1.msgpack"), negotiated per
// connection. Both carry the same model with the same keys, so messages
// cross between connections of either codec. docs/protocol.md is the
// reference for users.
package protocol

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Subprotocols and the token carrier in Sec-WebSocket-Protocol.
const (
	// SubprotocolJSON selects JSON text frames, version 1: the default.
	SubprotocolJSON = "roomcast.v1.json"
	// SubprotocolMsgpack selects MessagePack binary frames, version 1: the
	// same model and keys as JSON, with payload bytes carried as bin.
	SubprotocolMsgpack = "roomcast.v1.msgpack"
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
	// OpRefresh replaces the connection's token with a fresh one (same app
	// and client) before it expires, so the connection lives on.
	OpRefresh Op = "refresh"

	// Presence: a member of a room can enter the room's presence set with
	// optional data, update that data and leave; anyone with the presence
	// capability can read the set (paged) or its counts, and subscribe to
	// its join/update/leave events, which are ordered and recoverable like
	// room messages.
	OpPresenceEnter       Op = "presence.enter"
	OpPresenceUpdate      Op = "presence.update"
	OpPresenceLeave       Op = "presence.leave"
	OpPresenceGet         Op = "presence.get"
	OpPresenceCount       Op = "presence.count"
	OpPresenceSubscribe   Op = "presence.subscribe"
	OpPresenceUnsubscribe Op = "presence.unsubscribe"

	// OpHistory reads one page of a room's message history: archived
	// messages merged with the room's recent ones, so a message already
	// acknowledged to its publisher is included. Needs the history
	// capability on the room.
	OpHistory Op = "history"

	// OpMetricsSubscribe starts pushing a room's live metrics (members,
	// connections, message rate) to the connection as metrics frames,
	// every IntervalMS; OpMetricsUnsubscribe stops it. Needs the metrics
	// capability on the room (not membership).
	OpMetricsSubscribe   Op = "metrics.subscribe"
	OpMetricsUnsubscribe Op = "metrics.unsubscribe"
)

// Live metrics intervals (metrics.subscribe's interval_ms).
const (
	MetricsIntervalMinMS     = 1000
	MetricsIntervalMaxMS     = 60000
	MetricsIntervalDefaultMS = 5000
)

// Ops lists every client operation, for decoders and documentation checks.
var Ops = []Op{
	OpJoin, OpLeave, OpPublish, OpResume, OpRefresh,
	OpPresenceEnter, OpPresenceUpdate, OpPresenceLeave, OpPresenceGet,
	OpPresenceCount, OpPresenceSubscribe, OpPresenceUnsubscribe,
	OpHistory,
	OpMetricsSubscribe, OpMetricsUnsubscribe,
}

// Known reports whether op is an operation of this protocol version.
func (op Op) Known() bool {
	for _, o := range Ops {
		if o == op {
			return true
		}
	}
	return false
}

// Command is one client → server operation.
type Command struct {
	// ID correlates the Reply; it must be non-zero and is echoed verbatim.
	ID uint64
	Op Op
	// Room is the target room for join, leave and publish.
	Room string
	// Event is an optional application-defined name for a published message.
	Event string
	// Data is the published payload: the UTF-8 text of one JSON value, or,
	// when Binary is set, opaque bytes.
	Data []byte
	// Binary marks Data as opaque bytes (never empty) rather than JSON text.
	// The msgpack encoding carries them as bin; the JSON encoding as a
	// base64 string with "encoding":"base64" (see docs/protocol.md).
	Binary bool
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
	// Token is the new token of a refresh. Never log it.
	Token string
	// Cursor and Limit page presence.get: Cursor is the opaque value the
	// previous page returned ("" for the first page); Limit is the page
	// size (0 means the server's default).
	Cursor string
	Limit  int
	// History selects what a history op reads (set for every decoded
	// history command); Cursor and Limit page it.
	History *HistoryQuery
	// IntervalMS is how often metrics.subscribe pushes (0: the default;
	// MetricsIntervalMinMS to MetricsIntervalMaxMS).
	IntervalMS int
}

// HistoryQuery selects a range of a room's history. Zero fields are
// unbounded.
type HistoryQuery struct {
	// Epoch limits the read to one epoch of the room.
	Epoch string
	// FromOffset and ToOffset bound offsets, inclusive.
	FromOffset, ToOffset uint64
	// Start and End bound timestamps (unix milliseconds), inclusive.
	Start, End int64
	// Backward reads newest first.
	Backward bool
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
	// Members and Cursor answer presence.get: one page of members, and the
	// cursor of the next page ("" when this page is the last).
	Members []PresenceMember
	Cursor  string
	// Count answers presence.count.
	Count *PresenceCount
	// Messages answer history: one page, in the order asked for; Cursor
	// fetches the next page ("" when this page is the last).
	Messages []Message
}

// PresenceMember is one connection in a room's presence set.
type PresenceMember struct {
	ClientID string
	// ConnectionID identifies the member: it is the id of the session,
	// which stays the same when the client resumes on another node, so a
	// quick reconnect is not a leave and a join.
	ConnectionID string
	// Data is the member's data (raw JSON in the JSON encoding); may be empty.
	Data []byte
	// Since is when the member entered, unix milliseconds.
	Since int64
}

// PresenceCount counts a room's presence set: distinct clients (a client
// with several connections counts once) and connections.
type PresenceCount struct {
	Clients     int
	Connections int
}

// PresenceAction is what happened to a member.
type PresenceAction string

// Presence actions.
const (
	PresenceJoin   PresenceAction = "join"
	PresenceUpdate PresenceAction = "update"
	PresenceLeave  PresenceAction = "leave"
)

// PresenceEvent is a change of a room's presence set, delivered to the
// room's presence subscribers in order. Offset and Epoch place it in the
// room's presence stream (see PresenceChannel), for recovery.
type PresenceEvent struct {
	Room      string
	Action    PresenceAction
	Member    PresenceMember
	Offset    uint64
	Epoch     string
	Timestamp int64 // unix milliseconds when the change was applied
}

// RoomMetrics is one push of a room's live metrics, cluster-wide.
type RoomMetrics struct {
	Room string
	// Members and Clients count the room's presence set (connections
	// present, distinct clients).
	Members, Clients int
	// Connections counts the connections joined to the room.
	Connections int
	// MessageRate is messages per second delivered in the room, over the
	// last report interval of the gateways (about a second).
	MessageRate float64
	Timestamp   int64 // unix milliseconds when the numbers were read
}

// Message is a room message delivered to a member.
type Message struct {
	Room   string
	Offset uint64 // 0 for transient messages
	Epoch  string
	Event  string
	Data   []byte
	// Binary marks Data as opaque bytes (never empty) published as such;
	// otherwise Data is the UTF-8 text of one JSON value.
	Binary    bool
	From      string // publisher's client id ("" for server-side publishes)
	Timestamp int64  // unix milliseconds at the publishing gateway
	Transient bool
}

// ServerFrame is any server → client frame; exactly one field is set.
type ServerFrame struct {
	Connected *Connected
	Reply     *Reply
	Message   *Message
	Presence  *PresenceEvent
	Metrics   *RoomMetrics
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
	case SubprotocolMsgpack:
		return Msgpack
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

// presenceSuffix ends the internal name of a room's presence channel: the
// room whose ordered, recoverable stream carries the room's presence events.
// It starts with a control character, which client room names cannot hold,
// so no client room can collide with a presence channel.
const presenceSuffix = "\x1fpresence"

// PresenceChannel is the internal room that carries room's presence events.
func PresenceChannel(room string) string { return room + presenceSuffix }

// ChannelRoom maps an internal room name back to the client's room name;
// presence reports whether name is a presence channel.
func ChannelRoom(name string) (room string, presence bool) {
	if r, ok := strings.CutSuffix(name, presenceSuffix); ok {
		return r, true
	}
	return name, false
}
