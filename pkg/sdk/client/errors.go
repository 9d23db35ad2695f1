package client

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// Errors a Client reports. Match them with errors.Is.
var (
	// ErrClosed is the reason a connection ended when the application
	// called Close; requests made afterwards fail with it.
	ErrClosed = errors.New("roomcast: client closed")
	// ErrMessageBufferFull ends a connection whose handlers fell more than
	// Config.MessageBuffer messages behind. The client closes instead of
	// dropping messages silently or stalling replies and heartbeats.
	ErrMessageBufferFull = errors.New("roomcast: message buffer full (handlers too slow)")
	// ErrHeartbeatTimeout ends a connection that received nothing from the
	// server for three heartbeat intervals: the network is likely gone.
	ErrHeartbeatTimeout = errors.New("roomcast: no frame from the server within three heartbeat intervals")
	// ErrMessageTooLarge ends a connection when the server sends a message
	// larger than Config.MaxMessageBytes.
	ErrMessageTooLarge = errors.New("roomcast: server message larger than Config.MaxMessageBytes")
	// ErrProtocol ends a connection when the server breaks the WebSocket or
	// Roomcast protocol (a binary frame on a text subprotocol, invalid UTF-8,
	// a malformed frame).
	ErrProtocol = errors.New("roomcast: server protocol violation")
	// ErrDisconnected fails a request that was sent when the connection
	// ended, before its reply arrived: the server may or may not have
	// carried it out. It wraps why the connection ended. Retrying is safe
	// for Join (the room stays joined, see Join) and Leave; Publish retries
	// by itself (non-transient) and returns it only for transient messages.
	ErrDisconnected = errors.New("roomcast: disconnected")
	// ErrNoToken, wrapped by a TokenProvider's error, says no token will
	// ever come again (the user signed out, the session was revoked), so
	// the Client ends instead of retrying: Dial fails and a reconnect
	// attempt ends the Client, with Err wrapping the provider's error.
	// Other provider errors fail only that attempt.
	ErrNoToken = errors.New("roomcast: token provider has no more tokens")
)

// ReplyError is a failed request: the server answered with a stable error
// code (protocol.Code*) and a human-readable message. Switch on Code, never
// on Message.
type ReplyError struct {
	Code    protocol.Code
	Message string
}

func (e *ReplyError) Error() string {
	return "roomcast: " + string(e.Code) + ": " + e.Message
}

// CloseError is a close frame from the server: during the handshake (an
// invalid or expired token, a rejected Origin) or at any later time. Retry
// tells whether and how to reconnect.
type CloseError struct {
	Code   protocol.CloseCode
	Reason string
}

func (e *CloseError) Error() string {
	s := "roomcast: connection closed by server: " + strconv.Itoa(int(e.Code)) + " " + e.Code.String()
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Retry is what the documented close-code table says a client should do
// after this close: back off, reconnect now, refresh its token, or give up.
func (e *CloseError) Retry() protocol.Retry { return protocol.LookupClose(e.Code).Retry }

// HandshakeError is an HTTP response other than 101 Switching Protocols to
// the upgrade request, e.g. 429 from a per-IP rate limiter in front of the
// gateway.
type HandshakeError struct {
	StatusCode int
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("roomcast: websocket upgrade refused with HTTP status %d", e.StatusCode)
}
