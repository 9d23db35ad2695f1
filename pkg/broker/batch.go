package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/roomcast/roomcast/pkg/lane"
)

// Publishes go out in batches. Each publish channel has a lane (package
// lane): one goroutine that sends everything queued on it as one AMQP
// message, waits for RabbitMQ's confirm, then sends what queued meanwhile.
// An idle lane sends a publish at once, alone and unchanged (no delay, no
// framing); a busy one gathers the publishes that arrive during one
// confirm round trip. So the batch grows with the load and with RabbitMQ's
// latency, and RabbitMQ routes, queues, confirms and delivers one message
// per batch instead of one per publish.
//
// A batch is routed to every shard it carries: the first shard is the
// routing key and the others go in the BCC header (RabbitMQ's
// sender-selected distribution; BCC is removed before delivery), so each
// node bound to any of them gets one copy. A node hands on only the items
// of shards it is subscribed to.

// batchType marks a batch in the AMQP type property.
const batchType = "roomcast.batch"

// maxBatchBytes bounds a batch body, keeping it within one AMQP frame
// (RabbitMQ's default frame_max is 128 KiB). A larger publish goes alone.
const maxBatchBytes = 64 << 10

// outgoing is one publish waiting on its lane.
type outgoing struct {
	ctx    context.Context // the caller's, with the PublishTimeout applied
	cancel context.CancelFunc
	shard  int
	body   []byte
	done   func(error)
}

// publisher sends the batches of one publish channel; its methods run on
// the channel's lane goroutine.
type publisher struct {
	b   *Broker
	idx int    // the session's publish channel
	buf []byte // batch body
	bcc []any  // BCC header value
}

func outgoingSize(o *outgoing) int { return len(o.body) + 2*binary.MaxVarintLen64 }

// send publishes batch until RabbitMQ acks it, republishing after a nack or
// a lost channel while any of its publishes is still wanted: one whose
// context ended is answered with that error and dropped from the next
// attempt.
func (p *publisher) send(batch []*outgoing) {
	b := p.b
	ctx, cancel := lane.Context(batch, func(o *outgoing) context.Context { return o.ctx })
	defer cancel()
	var last error
	for attempt := 1; ; attempt++ {
		batch = p.wanted(batch, last)
		if len(batch) == 0 {
			return
		}
		s, err := b.awaitSession(ctx)
		if err != nil {
			p.finish(batch, err, last)
			return
		}
		ch := s.pub[p.idx%len(s.pub)]
		dc, err := ch.PublishWithDeferredConfirm(b.cfg.Exchange, routingKey(batch[0].shard), true, false, p.message(batch))
		if err != nil {
			last = err
			s.fail(fmt.Errorf("publish: %w", err))
			continue
		}
		n := uint64(len(batch))
		b.stats.sends.Add(1)
		b.stats.published.Add(n)
		if attempt > 1 {
			b.stats.republished.Add(n)
		}
		select {
		case <-dc.Done():
		case <-ctx.Done():
			p.finish(batch, ctx.Err(), last)
			return
		}
		if dc.Acked() {
			b.stats.confirmed.Add(n)
			p.finish(batch, nil, nil)
			return
		}
		if ch.IsClosed() {
			// The channel died with the batch unconfirmed (its pending
			// confirms resolve as nacks): it may or may not have been
			// routed, so send it again on the next channel.
			last = errLost
			continue
		}
		b.stats.nacked.Add(n)
		last = errNacked
		// A nack means RabbitMQ could not take the message right now (an
		// internal error or a full queue that rejects publishes); pause
		// before retrying so as not to spin.
		if err := b.sleep(ctx, b.backoff(attempt)); err != nil {
			p.finish(batch, err, last)
			return
		}
	}
}

// wanted answers and drops the publishes whose context ended.
func (p *publisher) wanted(batch []*outgoing, last error) []*outgoing {
	keep := batch[:0]
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			p.finish([]*outgoing{o}, err, last)
			continue
		}
		keep = append(keep, o)
	}
	return keep
}

// finish answers every publish in batch: nil once confirmed, or err
// wrapped with ErrNotConfirmed and the last attempt's cause.
func (p *publisher) finish(batch []*outgoing, err, last error) {
	for _, o := range batch {
		o.cancel()
		if err != nil {
			o.done(p.b.publishFailed(o.shard, err, last))
		} else {
			o.done(nil)
		}
		p.b.inflight.Done()
	}
}

// message builds the AMQP message for batch: a lone publish as it is, or
// a batch body with the other shards in BCC.
func (p *publisher) message(batch []*outgoing) amqp.Publishing {
	if len(batch) == 1 {
		return amqp.Publishing{DeliveryMode: amqp.Transient, Body: batch[0].body}
	}
	p.buf, p.bcc = p.buf[:0], p.bcc[:0]
	first := batch[0].shard
	for i, o := range batch {
		p.buf = appendItem(p.buf, o.shard, o.body)
		if o.shard != first && !seenShard(batch[:i], o.shard) {
			p.bcc = append(p.bcc, routingKey(o.shard))
		}
	}
	m := amqp.Publishing{DeliveryMode: amqp.Transient, Type: batchType, Body: p.buf}
	if len(p.bcc) > 0 {
		m.Headers = amqp.Table{"BCC": p.bcc}
	}
	return m
}

func seenShard(batch []*outgoing, shard int) bool {
	for _, o := range batch {
		if o.shard == shard {
			return true
		}
	}
	return false
}

// A batch body is a sequence of items, each uvarint(shard),
// uvarint(len(body)), body.

func appendItem(dst []byte, shard int, body []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(shard))
	dst = binary.AppendUvarint(dst, uint64(len(body)))
	return append(dst, body...)
}

var errBadBatch = errors.New("malformed batch")

// splitBatch calls f with each item of a batch body, in order; the bodies
// share b's memory. It stops at the first malformed item and reports it,
// after handing on the items before it.
func splitBatch(b []byte, f func(shard int, body []byte)) error {
	for len(b) > 0 {
		shard, n := uvarint(b)
		if n <= 0 || shard > maxShard {
			return fmt.Errorf("%w: bad shard", errBadBatch)
		}
		b = b[n:]
		size, n := uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return fmt.Errorf("%w: bad length", errBadBatch)
		}
		b = b[n:]
		f(int(shard), b[:size:size])
		b = b[size:]
	}
	return nil
}

// uvarint decodes a minimally encoded uvarint (as appendItem writes it),
// so that a batch has one encoding; n <= 0 means malformed.
func uvarint(b []byte) (v uint64, n int) {
	v, n = binary.Uvarint(b)
	if n > 1 && b[n-1] == 0 {
		return 0, -1 // a redundant zero group
	}
	return v, n
}

// maxShard is the largest shard a routing key can name (see parseShard).
const maxShard = 1<<31 - 1
