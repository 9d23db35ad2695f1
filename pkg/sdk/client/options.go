package client

// PublishOption adjusts one Publish call.
type PublishOption func(*publishOptions)

type publishOptions struct {
	event          string
	transient      bool
	binary         bool
	idempotencyKey string
}

// Binary publishes data as opaque bytes (game state, CRDT updates, any
// encoding of the app's own) instead of JSON text. Subscribers receive
// them as they were sent, with Message.Binary set: on protocol.Msgpack
// connections as raw bytes, on protocol.JSON connections as base64 that
// the SDKs decode (docs/protocol.md, "Binary payloads"). Empty data is no
// data.
func Binary() PublishOption {
	return func(o *publishOptions) { o.binary = true }
}

// WithEvent names the published message with an application-defined event
// (e.g. "chat.message"), so subscribers can dispatch on it.
func WithEvent(name string) PublishOption {
	return func(o *publishOptions) { o.event = name }
}

// Transient publishes best effort: no offset, no recovery, no history.
// Use it for cursors and typing indicators, where the latest value is all
// that matters. Publish then returns a zero Position.
func Transient() PublishOption {
	return func(o *publishOptions) { o.transient = true }
}

// WithIdempotencyKey makes the publish safe to retry: a repeat with the same
// key within the server's dedupe window returns the first result and is not
// delivered again. Retry with the same key after protocol.CodePublishFailed.
func WithIdempotencyKey(key string) PublishOption {
	return func(o *publishOptions) { o.idempotencyKey = key }
}
