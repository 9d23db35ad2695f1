// Package webhooks holds what the webhooks service (services/webhooks), the
// REST SDK and the CLI agree on: the event types an endpoint can subscribe
// to, the event body, the management API's wire types and error codes, and
// the Standard Webhooks signature scheme (signature.go). docs/webhooks.md
// and docs/webhooks-openapi.yaml describe them.
package webhooks

import (
	"encoding/json"
	"time"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// Event types an endpoint can subscribe to.
const (
	ConnectionOpened = "connection.opened"
	ConnectionClosed = "connection.closed"
	// RoomOccupied: the room's first member joined (on any gateway).
	RoomOccupied = "room.occupied"
	// RoomVacated: the room's last member left, on every gateway.
	RoomVacated   = "room.vacated"
	MemberJoined  = "member.joined"
	MemberLeft    = "member.left"
	MemberUpdated = "member.updated"
	// MessagePublished is opt-in: an endpoint gets it only if it lists it.
	MessagePublished = "message.published"
)

// Types lists every event type.
var Types = []string{ConnectionOpened, ConnectionClosed, RoomOccupied, RoomVacated,
	MemberJoined, MemberLeft, MemberUpdated, MessagePublished}

// DefaultTypes are the types of an endpoint created without any: every
// type but message.published.
var DefaultTypes = []string{ConnectionOpened, ConnectionClosed, RoomOccupied, RoomVacated,
	MemberJoined, MemberLeft, MemberUpdated}

// ValidType reports whether t is an event type.
func ValidType(t string) bool {
	for _, x := range Types {
		if x == t {
			return true
		}
	}
	return false
}

// Event is the JSON body of one webhook request (or one element of a
// batch). ID is stable across retries and replays: receivers deduplicate
// on it; it is also the webhook-id header of an unbatched request.
type Event struct {
	ID   string          `json:"id"`
	Type string          `json:"type"`
	App  string          `json:"app"`
	Room string          `json:"room,omitempty"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"`
}

// Batch is the body of a batched request: several events in one POST,
// signed once, with webhook-id the batch's id (stable across retries).
type Batch struct {
	Type   string  `json:"type"` // always "batch"
	Events []Event `json:"events"`
}

// Error codes of the webhooks service, beside the shared ones of
// pkg/protocol (bad_request, unauthorized, forbidden, not_found, internal,
// unavailable). docs/webhooks.md lists them all; never rename one.
const (
	// CodeInvalidURL: the endpoint URL is not an absolute http(s) URL, or
	// its host does not resolve.
	CodeInvalidURL protocol.Code = "invalid_url"
	// CodeURLNotAllowed: the URL resolves to a loopback, private,
	// link-local or metadata address and WEBHOOKS_ALLOW_PRIVATE is off.
	CodeURLNotAllowed protocol.Code = "url_not_allowed"
	// CodeInvalidEventType: an unknown event type in the filter.
	CodeInvalidEventType protocol.Code = "invalid_event_type"
)

// Codes lists every code the webhooks service answers with.
var Codes = []protocol.Code{
	protocol.CodeBadRequest, protocol.CodeUnauthorized, protocol.CodeForbidden, protocol.CodeNotFound,
	CodeInvalidURL, CodeURLNotAllowed, CodeInvalidEventType, protocol.CodeUnavailable, protocol.CodeInternal,
}

// Error is the body of every error answer (the gateway's shape).
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is a stable code and a human-readable message.
type ErrorBody struct {
	Code    protocol.Code `json:"code"`
	Message string        `json:"message"`
}

// API paths.
const (
	PathEndpoints = "/v1/webhooks/endpoints"
)

// Endpoint describes an endpoint. Secret, "whsec_<base64>", is present
// only in the answers that created it (create and rotate): shown once.
type Endpoint struct {
	ID          string            `json:"id"`
	App         string            `json:"app"`
	URL         string            `json:"url"`
	Description string            `json:"description,omitempty"`
	Types       []string          `json:"types"`
	Headers     map[string]string `json:"headers"`
	Enabled     bool              `json:"enabled"`
	// BatchSize > 1 lets the service send up to that many events in one
	// request (a Batch); 0 or 1: one event per request.
	BatchSize int       `json:"batch_size"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Secret    string    `json:"secret,omitempty"`
}

// CreateEndpoint is the body of POST /v1/webhooks/endpoints. Types empty
// means DefaultTypes; Enabled nil means true.
type CreateEndpoint struct {
	URL         string            `json:"url"`
	Description string            `json:"description,omitempty"`
	Types       []string          `json:"types,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Enabled     *bool             `json:"enabled,omitempty"`
	BatchSize   int               `json:"batch_size,omitempty"`
}

// UpdateEndpoint is the body of PATCH /v1/webhooks/endpoints/{id}: only
// the fields present change.
type UpdateEndpoint struct {
	URL         *string            `json:"url,omitempty"`
	Description *string            `json:"description,omitempty"`
	Types       []string           `json:"types,omitempty"`
	Headers     *map[string]string `json:"headers,omitempty"`
	Enabled     *bool              `json:"enabled,omitempty"`
	BatchSize   *int               `json:"batch_size,omitempty"`
}

// Endpoints answers GET /v1/webhooks/endpoints.
type Endpoints struct {
	Endpoints []Endpoint `json:"endpoints"`
}

// RotateSecret is the body of POST /v1/webhooks/endpoints/{id}/rotate-secret:
// the old secret keeps signing (next to the new one) for Overlap, a Go
// duration ("24h" when empty; "0s" ends it at once).
type RotateSecret struct {
	Overlap string `json:"overlap,omitempty"`
}

// Delivery states.
const (
	StatePending   = "pending"   // waiting for its next attempt
	StateDelivered = "delivered" // the endpoint answered 2xx
	StateDead      = "dead"      // given up: replay it to try again
)

// Delivery is one event's delivery to one endpoint, with its attempts
// (newest first, at most the last 20).
type Delivery struct {
	ID          string     `json:"id"`
	EventID     string     `json:"event_id"`
	EventType   string     `json:"event_type"`
	State       string     `json:"state"`
	Attempts    int        `json:"attempts"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	// LastError says why the last attempt failed, or why it is dead.
	LastError string    `json:"last_error,omitempty"`
	Log       []Attempt `json:"log"`
}

// Attempt is one request of a delivery.
type Attempt struct {
	N         int       `json:"n"`
	At        time.Time `json:"at"`
	Status    int       `json:"status"` // 0: no answer (network error, timeout)
	LatencyMS int64     `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
	// Response is the start of the response body (at most 512 bytes).
	Response string `json:"response,omitempty"`
}

// Deliveries answers GET /v1/webhooks/endpoints/{id}/deliveries. Next is
// the cursor of the following page ("" at the end).
type Deliveries struct {
	Deliveries []Delivery `json:"deliveries"`
	Next       string     `json:"next,omitempty"`
}

// Replay is the body of POST /v1/webhooks/endpoints/{id}/replay: the
// deliveries named, or (none named) every dead delivery of the endpoint.
type Replay struct {
	DeliveryIDs []string `json:"delivery_ids,omitempty"`
}

// Replayed answers a replay: how many deliveries are pending again.
type Replayed struct {
	Replayed int `json:"replayed"`
}
