package client

// PublishOption adjusts one Publish call.
type PublishOption func(*publishOptions)

type publishOptions struct {
	event          string
	transient      bool
	idempotencyKey string
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
