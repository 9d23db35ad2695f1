// Package events is the pipeline from gateways to the worker services: the
// typed tasks a gateway enqueues (asynq, on Redis), the queues they go to,
// and helpers for both sides.
//
// Every payload is JSON with a version field "v". A worker rejects a payload
// from a newer version without retrying it (it would fail the same way), so
// a rolling upgrade that starts gateways first never wedges a queue; workers
// are upgraded before gateways start sending a new version.
//
// Delivery is at least once and in no particular order: every handler is
// idempotent, and ordering that matters (a member's enter before its leave)
// is carried in the payload (Seq) and enforced where the state lives.
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// Version is the payload version this package writes.
const Version = 1

// Task types.
const (
	TypeConnectionOpened = "connection.opened"
	TypeConnectionClosed = "connection.closed"
	TypeRoomJoined       = "room.joined"
	TypeRoomLeft         = "room.left"
	TypeMessagePublished = "message.published"

	// TypePresenceEnter, Update and Leave change one member of one room.
	TypePresenceEnter  = "presence.enter"
	TypePresenceUpdate = "presence.update"
	TypePresenceLeave  = "presence.leave"
	// TypePresenceDetach: a connection with presence dropped without a
	// clean close. Enqueued to run after the presence grace; its members
	// leave unless a resumed connection has taken them over meanwhile.
	TypePresenceDetach = "presence.detach"

	// TypePresenceEvent is a presence event the presence service produced
	// (a member joined, updated or left a room), for services that report
	// presence to backends (webhooks). The presence worker emits it, not
	// the gateway.
	TypePresenceEvent = "presence.event"
)

// Consumers maps each worker service to the task types it consumes. A
// gateway enqueues a task once per consumer that is enabled, on the
// consumer's own queue, so services scale and fail independently.
var Consumers = map[string][]string{
	"presence": {TypePresenceEnter, TypePresenceUpdate, TypePresenceLeave, TypePresenceDetach},
	"history":  {TypeMessagePublished},
	"webhooks": {TypeConnectionOpened, TypeConnectionClosed, TypeRoomJoined, TypeRoomLeft, TypeMessagePublished, TypePresenceEvent},
	"metrics":  {TypeConnectionOpened, TypeConnectionClosed, TypeRoomJoined, TypeRoomLeft, TypeMessagePublished, TypePresenceEvent},
	// users: the auth service's end-user online status.
	"users": {TypeConnectionOpened, TypeConnectionClosed},
}

// Batched maps a consumer to the task types it takes in batches: the
// emitter puts them into asynq groups (Group) on the consumer's queue, and
// the consumer's server aggregates each group into one task per batch
// (asynq.Config.GroupAggregator). A consumer listed here must aggregate:
// grouped tasks are never handed out one by one.
var Batched = map[string][]string{
	"history": {TypeMessagePublished},
}

// Groups is how many asynq groups a batched task type is spread over. asynq
// aggregates at most one batch per group per check, so several groups let
// several batches form at once.
const Groups = 16

// Group names the n-th group (0 ≤ n < Groups) of a batched task type.
func Group(typ string, n int) string { return fmt.Sprintf("%s.%d", typ, n%Groups) }

// Queue is the asynq queue of a consumer. asynq's keys carry no prefix of
// their own, so the cluster's Redis prefix goes into the queue name: two
// clusters (or two tests) sharing one Redis never share a queue.
func Queue(prefix, consumer string) string {
	return strings.TrimSuffix(prefix, ":") + ":" + consumer
}

// Connection is the payload of connection.opened and connection.closed.
type Connection struct {
	V         int    `json:"v"`
	App       string `json:"app"`
	ClientID  string `json:"client_id"`
	ConnID    string `json:"conn_id"`
	SessionID string `json:"session_id,omitempty"`
	Node      string `json:"node"`
	At        int64  `json:"at"` // unix milliseconds
	// Code is the close code (connection.closed only).
	Code int `json:"code,omitempty"`
}

// Membership is the payload of room.joined and room.left.
type Membership struct {
	V        int    `json:"v"`
	App      string `json:"app"`
	Room     string `json:"room"`
	ClientID string `json:"client_id"`
	ConnID   string `json:"conn_id"`
	Node     string `json:"node"`
	At       int64  `json:"at"`
}

// Published is the payload of message.published: the whole message, as
// stored in the room's log (Offset 0 and no Epoch for transient ones).
type Published struct {
	V         int    `json:"v"`
	App       string `json:"app"`
	Room      string `json:"room"`
	Offset    uint64 `json:"offset,omitempty"`
	Epoch     string `json:"epoch,omitempty"`
	Event     string `json:"event,omitempty"`
	From      string `json:"from,omitempty"`
	Transient bool   `json:"transient,omitempty"`
	// Data is the payload's bytes (base64 in JSON: payloads may be binary).
	Data []byte `json:"data,omitempty"`
	// Binary marks Data as opaque bytes published as such
	// (protocol.Message.Binary), not JSON text. It came after version 1
	// without a version bump: a payload without it is a JSON one, and a
	// worker that predates it ignores it (reading the bytes as before).
	Binary bool `json:"binary,omitempty"`
	Bytes  int  `json:"bytes"`
	// At is the publishing gateway's timestamp (the message's ts), unix ms.
	At int64 `json:"at"`
}

// PublishedFrom builds the payload of message.published for a message.
// binary is the message's binary mark; it is dropped for empty data, as
// in protocol.Message.
func PublishedFrom(app, room string, offset uint64, epoch, event, from string, transient, binary bool, data []byte, at int64) Published {
	return Published{V: Version, App: app, Room: room, Offset: offset, Epoch: epoch, Event: event, From: from,
		Transient: transient, Binary: binary && len(data) > 0, Data: data, Bytes: len(data), At: at}
}

// PresenceChange is the payload of presence.enter, .update and .leave.
type PresenceChange struct {
	V        int    `json:"v"`
	App      string `json:"app"`
	Room     string `json:"room"`
	ClientID string `json:"client_id"`
	// MemberID is the session id: stable across a resume, so a resumed
	// connection's enter takes the member over instead of joining again.
	MemberID string `json:"member_id"`
	// ConnID is the connection the change came from; a detach of an older
	// connection leaves only members still held by that connection.
	ConnID string          `json:"conn_id"`
	Node   string          `json:"node"`
	Data   json.RawMessage `json:"data,omitempty"`
	// Seq orders changes of one member: unix nanoseconds at the gateway,
	// strictly increasing per connection. A change older than the member's
	// last applied change is ignored.
	Seq int64 `json:"seq"`
	At  int64 `json:"at"` // unix milliseconds
}

// PresenceEvent is the payload of presence.event: one event of a room's
// presence channel, identified by its offset and epoch (a retried
// presence task emits the same event again, with the same offset).
type PresenceEvent struct {
	V        int    `json:"v"`
	App      string `json:"app"`
	Room     string `json:"room"`   // the client's room name
	Action   string `json:"action"` // join, update or leave (protocol.PresenceAction)
	ClientID string `json:"client_id"`
	// MemberID is the member's connection id as clients see it.
	MemberID string          `json:"member_id"`
	Data     json.RawMessage `json:"data,omitempty"`
	Offset   uint64          `json:"offset"`
	Epoch    string          `json:"epoch"`
	At       int64           `json:"at"` // unix milliseconds
}

// PresenceDetach is the payload of presence.detach.
type PresenceDetach struct {
	V        int    `json:"v"`
	App      string `json:"app"`
	MemberID string `json:"member_id"`
	ConnID   string `json:"conn_id"`
	Seq      int64  `json:"seq"`
	At       int64  `json:"at"`
}

// NewTask encodes payload (one of the types above, with V set or zero) as a
// task of type typ.
func NewTask(typ string, payload any, opts ...asynq.Option) (*asynq.Task, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("events: encode %s: %w", typ, err)
	}
	return asynq.NewTask(typ, b, opts...), nil
}

// ErrVersion reports a payload from a newer version of the platform.
var ErrVersion = errors.New("events: unsupported payload version")

// Decode parses a task's payload into v (a pointer to one of the types
// above). Malformed payloads and newer versions are wrapped with
// asynq.SkipRetry: retrying cannot fix them.
func Decode(t *asynq.Task, v any) error {
	var head struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(t.Payload(), &head); err != nil {
		return fmt.Errorf("events: decode %s: %w: %w", t.Type(), err, asynq.SkipRetry)
	}
	if head.V > Version {
		return fmt.Errorf("%w: %s v%d (this worker reads v%d): %w", ErrVersion, t.Type(), head.V, Version, asynq.SkipRetry)
	}
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return fmt.Errorf("events: decode %s: %w: %w", t.Type(), err, asynq.SkipRetry)
	}
	return nil
}

// RetryBackoff is an asynq retry delay that doubles from base up to max:
// a task that failed on a Redis, RabbitMQ or PostgreSQL blip runs again
// soon after it is back, not after asynq's default of 15 s and more.
func RetryBackoff(base, max time.Duration) asynq.RetryDelayFunc {
	return func(n int, _ error, _ *asynq.Task) time.Duration {
		return min(time.Duration(float64(base)*math.Pow(2, float64(n))), max)
	}
}
