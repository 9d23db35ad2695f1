package history

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"strconv"
)

// cursor is where a page ended: the last message returned (its epoch and
// offset) and a fingerprint of the query, so that a cursor is refused by a
// different query rather than silently misread.
type cursor struct {
	Epoch  string
	Offset uint64
	Query  uint64
}

const (
	cursorVersion  = 1
	maxEpochBytes  = 64
	maxCursorBytes = 128 // encoded, generously
)

// Opaque to clients: base64url of version, fingerprint, offset, epoch.
func encodeCursor(c cursor) string {
	b := make([]byte, 0, 1+8+binary.MaxVarintLen64+len(c.Epoch))
	b = append(b, cursorVersion)
	b = binary.BigEndian.AppendUint64(b, c.Query)
	b = binary.AppendUvarint(b, c.Offset)
	b = append(b, c.Epoch...)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadCursor = errors.New("history: malformed cursor")

func decodeCursor(s string) (cursor, error) {
	if len(s) == 0 || len(s) > maxCursorBytes {
		return cursor{}, errBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 1+8+1 || b[0] != cursorVersion {
		return cursor{}, errBadCursor
	}
	c := cursor{Query: binary.BigEndian.Uint64(b[1:9])}
	off, n := binary.Uvarint(b[9:])
	if n <= 0 || off == 0 {
		return cursor{}, errBadCursor
	}
	c.Offset = off
	epoch := b[9+n:]
	if len(epoch) == 0 || len(epoch) > maxEpochBytes {
		return cursor{}, errBadCursor
	}
	for _, ch := range epoch {
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f') {
			return cursor{}, errBadCursor
		}
	}
	c.Epoch = string(epoch)
	// Only the canonical encoding is accepted, so one position has one
	// cursor.
	if encodeCursor(c) != s {
		return cursor{}, errBadCursor
	}
	return c, nil
}

// fingerprint identifies everything about a query but its page size and
// cursor.
func (q *Query) fingerprint() uint64 {
	h := fnv.New64a()
	for _, s := range []string{q.App, q.Room, q.Epoch,
		strconv.FormatUint(q.FromOffset, 10), strconv.FormatUint(q.ToOffset, 10),
		strconv.FormatInt(q.Start, 10), strconv.FormatInt(q.End, 10), strconv.FormatBool(q.Backward)} {
		_, _ = h.Write([]byte(s))
		_, _ = h.Write([]byte{0})
	}
	return h.Sum64()
}
