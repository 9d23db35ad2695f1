// Package history reads a room's message history: the archive the history
// service keeps in PostgreSQL, merged with the room's recovery stream in
// Redis, so that a message acknowledged to its publisher is in the next
// read even before the history worker has archived it.
//
// A room's history is the sequence of its epochs, oldest first, each in
// offset order. A read walks it forward (oldest first) or backward (newest
// first) from a cursor, within optional offset and time bounds, and
// returns at most Limit messages and, when more follow, the cursor of the
// next page. Pages of one query never overlap and never skip a message.
package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/roomcast/roomcast/pkg/envelope"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/roomlog"
)

// Page sizes.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	// DefaultMaxBytes bounds a page's data, so that a page of large
	// messages fits a connection's outbound buffer.
	DefaultMaxBytes = 1 << 20
)

// Errors a Query returns for bad input; other errors mean the archive or
// Redis failed.
var (
	ErrCursor = errors.New("history: cursor is not one this query returned")
	ErrQuery  = errors.New("history: invalid query")
)

// Query selects one page of a room's history.
type Query struct {
	App, Room string
	// Epoch, if set, limits the read to that epoch of the room.
	Epoch string
	// FromOffset and ToOffset bound offsets, inclusive (0: unbounded).
	// Offsets count within an epoch; with several epochs the bounds apply
	// to each.
	FromOffset, ToOffset uint64
	// Start and End bound the message timestamps, unix milliseconds,
	// inclusive (0: unbounded).
	Start, End int64
	// Backward returns newest first.
	Backward bool
	// Limit is the page size: 0 means DefaultLimit, at most MaxLimit.
	Limit int
	// Cursor continues a previous page of the same query ("" for the
	// first page).
	Cursor string
	// MaxBytes bounds the page's data bytes (0: DefaultMaxBytes): a page
	// stops early, with a cursor, rather than exceed it. It always holds at
	// least one message.
	MaxBytes int
}

// Page is one page of history.
type Page struct {
	Messages []protocol.Message
	// Cursor fetches the next page; "" when this page is the last.
	Cursor string
}

// Validate checks q and fills the default limit.
func (q *Query) Validate() error {
	switch {
	case q.Limit < 0 || q.Limit > MaxLimit:
		return fmt.Errorf("%w: limit must be from 1 to %d", ErrQuery, MaxLimit)
	case q.ToOffset != 0 && q.FromOffset > q.ToOffset:
		return fmt.Errorf("%w: from_offset is after to_offset", ErrQuery)
	case q.Start < 0 || q.End < 0:
		return fmt.Errorf("%w: start and end must be unix milliseconds", ErrQuery)
	case q.End != 0 && q.Start > q.End:
		return fmt.Errorf("%w: start is after end", ErrQuery)
	}
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	if q.MaxBytes <= 0 {
		q.MaxBytes = DefaultMaxBytes
	}
	return nil
}

// ReadRequest asks the archive for the messages of one epoch of a room with
// Min ≤ offset ≤ Max and, when set, Start ≤ timestamp ≤ End; ascending, or
// descending with Backward; at most Limit.
type ReadRequest struct {
	App, Room, Epoch string
	Min, Max         uint64
	Start, End       int64
	Backward         bool
	Limit            int
}

// Archive is the durable part of history (the history service).
type Archive interface {
	// Epochs lists the epochs the archive holds for a room, oldest first.
	Epochs(ctx context.Context, app, room string) ([]string, error)
	// Read returns archived messages.
	Read(ctx context.Context, r ReadRequest) ([]protocol.Message, error)
}

// Stream is the recent part of history: the rooms' recovery streams.
type Stream interface {
	// Head is the room's current epoch and last offset; ok is false for a
	// room with no state in Redis.
	Head(ctx context.Context, app, room string) (pos protocol.Position, ok bool, err error)
	// Range is roomlog.Log.Range.
	Range(ctx context.Context, app, room, epoch string, from, to uint64) ([]roomlog.Entry, error)
}

// Reader answers history queries.
type Reader struct {
	archive Archive
	stream  Stream
}

// NewReader reads from archive merged with stream.
func NewReader(archive Archive, stream Stream) *Reader {
	return &Reader{archive: archive, stream: stream}
}

// Query returns one page.
func (r *Reader) Query(ctx context.Context, q Query) (Page, error) {
	if err := q.Validate(); err != nil {
		return Page{}, err
	}
	var cur *cursor
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor)
		if err != nil || c.Query != q.fingerprint() {
			return Page{}, ErrCursor
		}
		cur = &c
	}
	head, live, err := r.stream.Head(ctx, q.App, q.Room)
	if err != nil {
		return Page{}, err
	}
	epochs, err := r.archive.Epochs(ctx, q.App, q.Room)
	if err != nil {
		return Page{}, err
	}
	if live {
		// The live epoch is the newest: Redis starts a new one only when
		// the room's state is gone.
		epochs = append(slices.DeleteFunc(epochs, func(e string) bool { return e == head.Epoch }), head.Epoch)
	}
	if q.Epoch != "" {
		epochs = slices.DeleteFunc(epochs, func(e string) bool { return e != q.Epoch })
	}
	if q.Backward {
		slices.Reverse(epochs)
	}
	first := 0
	if cur != nil {
		first = slices.Index(epochs, cur.Epoch)
		if first < 0 {
			return Page{}, ErrCursor // the epoch expired or the query changed
		}
	}
	want := q.Limit + 1 // one more tells whether a next page exists
	var out []protocol.Message
	for i := first; i < len(epochs) && len(out) < want; i++ {
		lo, hi := max(q.FromOffset, 1), q.ToOffset
		if hi == 0 {
			hi = math.MaxUint64
		}
		if cur != nil && i == first {
			if q.Backward {
				if cur.Offset <= 1 {
					continue
				}
				hi = min(hi, cur.Offset-1)
			} else {
				if cur.Offset == math.MaxUint64 {
					continue
				}
				lo = max(lo, cur.Offset+1)
			}
		}
		if lo > hi {
			continue
		}
		var h *protocol.Position
		if live && epochs[i] == head.Epoch {
			h = &head
		}
		msgs, err := r.epochPage(ctx, q, epochs[i], lo, hi, want-len(out), h)
		if err != nil {
			return Page{}, err
		}
		out = append(out, msgs...)
	}
	page := Page{Messages: out}
	n, size := 0, 0
	for n < len(out) && n < q.Limit {
		size += len(out[n].Data)
		if n > 0 && size > q.MaxBytes {
			break
		}
		n++
	}
	if len(out) > n {
		page.Messages = out[:n]
		last := page.Messages[n-1]
		page.Cursor = encodeCursor(cursor{Epoch: last.Epoch, Offset: last.Offset, Query: q.fingerprint()})
	}
	for i := range page.Messages {
		page.Messages[i].Room = q.Room
	}
	return page, nil
}

// epochPage reads up to n messages of one epoch within [lo, hi]; for the
// live epoch (head set) it merges the recovery stream in, by offset.
func (r *Reader) epochPage(ctx context.Context, q Query, epoch string, lo, hi uint64, n int, head *protocol.Position) ([]protocol.Message, error) {
	arch, err := r.archive.Read(ctx, ReadRequest{App: q.App, Room: q.Room, Epoch: epoch, Min: lo, Max: hi,
		Start: q.Start, End: q.End, Backward: q.Backward, Limit: n})
	if err != nil {
		return nil, err
	}
	markLegacyBinary(arch)
	if head == nil {
		return arch, nil
	}
	// The first n of the union lie within the archive's first n, when it
	// returned n; otherwise anywhere in [lo, hi].
	from, to := lo, min(hi, head.Offset)
	if len(arch) == n {
		if q.Backward {
			from = arch[n-1].Offset
		} else {
			to = arch[n-1].Offset
		}
	}
	if from > to {
		return arch, nil
	}
	entries, err := r.stream.Range(ctx, q.App, q.Room, epoch, from, to)
	switch {
	case errors.Is(err, roomlog.ErrTruncated): // the rest is older than the stream
	case errors.Is(err, roomlog.ErrEpochChanged):
		return arch, nil
	case err != nil:
		return nil, err
	}
	if len(entries) == 0 {
		return arch, nil
	}
	byOffset := make(map[uint64]protocol.Message, len(arch)+len(entries))
	for _, m := range arch {
		byOffset[m.Offset] = m
	}
	for _, e := range entries {
		env, err := envelope.Decode(e.Payload)
		if err != nil {
			continue
		}
		if m, ok := byOffset[e.Offset]; ok {
			// The archive's mark and the stream's agree, except on rows
			// archived before the archive kept marks: the stream knows.
			if env.Binary && !m.Binary && len(m.Data) > 0 {
				m.Binary = true
				byOffset[e.Offset] = m
			}
			continue
		}
		if (q.Start != 0 && env.Timestamp < q.Start) || (q.End != 0 && env.Timestamp > q.End) {
			continue
		}
		env.Offset, env.Epoch = e.Offset, epoch
		byOffset[e.Offset] = env.Message()
	}
	merged := make([]protocol.Message, 0, len(byOffset))
	for _, m := range byOffset {
		merged = append(merged, m)
	}
	sort.Slice(merged, func(i, j int) bool {
		if q.Backward {
			return merged[i].Offset > merged[j].Offset
		}
		return merged[i].Offset < merged[j].Offset
	})
	if len(merged) > n {
		merged = merged[:n]
	}
	return merged, nil
}

// markLegacyBinary marks archived messages binary whose data is not UTF-8
// JSON text. The archive keeps each message's binary mark, but rows
// archived before it did (and by a history service or gateway that
// predates it) say JSON for every message; data published as JSON is
// always valid JSON, so anything else was published as bytes. (Such an old
// binary payload that happens to be JSON text cannot be told apart: it
// reads as JSON.)
func markLegacyBinary(msgs []protocol.Message) {
	for i := range msgs {
		m := &msgs[i]
		if !m.Binary && len(m.Data) > 0 && (!utf8.Valid(m.Data) || !json.Valid(m.Data)) {
			m.Binary = true
		}
	}
}

// ProtocolError maps a Query's error to the protocol's (nil for nil): bad
// queries and cursors are the caller's (bad_request); anything else means
// the archive or Redis failed (unavailable).
func ProtocolError(err error) *protocol.Error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrCursor):
		return protocol.NewError(protocol.CodeBadRequest, "cursor is not one a previous page of this query returned")
	case errors.Is(err, ErrQuery):
		msg, _ := strings.CutPrefix(err.Error(), ErrQuery.Error()+": ")
		return protocol.NewError(protocol.CodeBadRequest, msg)
	default:
		return protocol.NewError(protocol.CodeUnavailable, "history unavailable; retry")
	}
}
