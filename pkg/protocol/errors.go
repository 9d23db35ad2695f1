package protocol

import "fmt"

// Code is a stable, documented error code carried in error replies and REST
// error bodies. Clients switch on it; never rename one.
type Code string

// Error codes. docs/protocol.md documents each; keep the two in step.
const (
	CodeBadRequest      Code = "bad_request"       // frame is not a valid command (malformed JSON, wrong field types)
	CodeUnknownOp       Code = "unknown_op"        // op is missing or not one this protocol version knows
	CodeMissingID       Code = "missing_id"        // command has no non-zero request id
	CodeInvalidRoom     Code = "invalid_room"      // room name empty, too long, not UTF-8 or with control characters
	CodeMessageTooLarge Code = "message_too_large" // payload over the message size cap
	CodeForbidden       Code = "forbidden"         // the token lacks the capability for this room and operation
	CodeNotJoined       Code = "not_joined"        // leave of a room the connection has not joined, or presence.enter before join
	CodeNotPresent      Code = "not_present"       // presence.update or presence.leave without presence.enter
	CodeTooManyRooms    Code = "too_many_rooms"    // join over the per-connection room cap
	CodeRateLimited     Code = "rate_limited"      // operation over the per-connection rate limit
	CodePublishFailed   Code = "publish_failed"    // the broker did not confirm in time; the message MAY have been delivered — retry with the same idempotency key
	CodeUnavailable     Code = "unavailable"       // a dependency (Redis, RabbitMQ) is unreachable; retry later
	CodeSessionInvalid  Code = "session_invalid"   // resume: no such session in the recovery window, or the token does not match (the same answer for every case)
	CodeInternal        Code = "internal"          // a bug; reported and logged
	CodeUnauthorized    Code = "unauthorized"      // REST: missing or invalid credentials; refresh: the new token is invalid or expired
	CodeNotFound        Code = "not_found"         // REST: no such resource
)

// Codes lists every error code, for documentation checks and SDKs.
var Codes = []Code{
	CodeBadRequest, CodeUnknownOp, CodeMissingID, CodeInvalidRoom, CodeMessageTooLarge,
	CodeForbidden, CodeNotJoined, CodeNotPresent, CodeTooManyRooms, CodeRateLimited, CodePublishFailed,
	CodeUnavailable, CodeSessionInvalid, CodeInternal, CodeUnauthorized, CodeNotFound,
}

// Error is a protocol error: a stable code and a human-readable message.
type Error struct {
	Code    Code
	Message string
	// ID is the request id the error answers, when known (decode errors).
	ID uint64
}

// NewError builds an Error.
func NewError(code Code, msg string) *Error { return &Error{Code: code, Message: msg} }

// Errorf builds an Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// CloseCode is a WebSocket close code the server uses. SDKs decide from it
// whether to reconnect, refresh their token, or give up.
type CloseCode uint16

// Close codes. RFC 6455 codes are used where the RFC defines the case; the
// 4000–4999 range carries Roomcast's own.
const (
	CloseNormal          CloseCode = 1000 // client or server closed normally
	CloseProtocolError   CloseCode = 1002 // WebSocket framing violated (e.g. unmasked client frame)
	CloseUnsupportedData CloseCode = 1003 // binary frame on a text protocol, or the reverse
	CloseInvalidPayload  CloseCode = 1007 // text frame that is not valid UTF-8
	CloseMessageTooBig   CloseCode = 1009 // frame or message over the size cap
	CloseInternalError   CloseCode = 1011 // unexpected server error

	CloseServerShutdown      CloseCode = 4000 // node is draining: resume on another node now
	CloseInvalidToken        CloseCode = 4001 // token missing, malformed, badly signed or for an unknown key
	CloseTokenExpired        CloseCode = 4002 // token expired: fetch a new one, then reconnect and resume
	CloseForbidden           CloseCode = 4003 // credentials valid but not allowed (key revoked, app disabled)
	CloseOriginRejected      CloseCode = 4004 // Origin not in the allow-list
	CloseKicked              CloseCode = 4005 // removed by the application or an operator
	CloseRateLimited         CloseCode = 4006 // too many operations or errors; back off
	CloseSlowConsumer        CloseCode = 4007 // outbound buffer overflowed; reconnect and resume
	CloseHeartbeatTimeout    CloseCode = 4008 // missed pongs; the network is likely gone
	CloseUnsupportedProtocol CloseCode = 4009 // no subprotocol this server speaks was offered
)

// Retry is what a client should do after a close code.
type Retry int

const (
	// RetryBackoff: reconnect with exponential backoff and jitter, resuming.
	RetryBackoff Retry = iota
	// RetryNow: reconnect at once (with a small jitter), resuming elsewhere.
	RetryNow
	// RetryRefreshToken: obtain a new token, then reconnect and resume.
	RetryRefreshToken
	// RetryNever: terminal; reconnecting would fail the same way.
	RetryNever
)

func (r Retry) String() string {
	switch r {
	case RetryBackoff:
		return "backoff"
	case RetryNow:
		return "now"
	case RetryRefreshToken:
		return "refresh_token"
	case RetryNever:
		return "never"
	}
	return "unknown"
}

// CloseInfo describes one close code for SDKs and documentation.
type CloseInfo struct {
	Code  CloseCode
	Name  string
	Retry Retry
}

// CloseCodes is the documented close-code table, in code order.
var CloseCodes = []CloseInfo{
	{CloseNormal, "normal", RetryNever},
	{CloseProtocolError, "protocol_error", RetryNever},
	{CloseUnsupportedData, "unsupported_data", RetryNever},
	{CloseInvalidPayload, "invalid_payload", RetryNever},
	{CloseMessageTooBig, "message_too_big", RetryNever},
	{CloseInternalError, "internal_error", RetryBackoff},
	{CloseServerShutdown, "server_shutdown", RetryNow},
	{CloseInvalidToken, "invalid_token", RetryNever},
	{CloseTokenExpired, "token_expired", RetryRefreshToken},
	{CloseForbidden, "forbidden", RetryNever},
	{CloseOriginRejected, "origin_rejected", RetryNever},
	{CloseKicked, "kicked", RetryNever},
	{CloseRateLimited, "rate_limited", RetryBackoff},
	{CloseSlowConsumer, "slow_consumer", RetryBackoff},
	{CloseHeartbeatTimeout, "heartbeat_timeout", RetryBackoff},
	{CloseUnsupportedProtocol, "unsupported_protocol", RetryNever},
}

// LookupClose returns the table entry for a code. Codes outside the table
// (1001 going away, 1006 abnormal closure, …) are network-level events: back
// off and reconnect.
func LookupClose(code CloseCode) CloseInfo {
	for _, c := range CloseCodes {
		if c.Code == code {
			return c
		}
	}
	return CloseInfo{Code: code, Name: "unknown", Retry: RetryBackoff}
}

func (c CloseCode) String() string { return LookupClose(c).Name }
