package client

import (
	"context"
	"time"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// HistoryOptions select one page of a room's history. Zero fields are
// unbounded or the server's defaults.
type HistoryOptions struct {
	// Backward reads newest first (default: oldest first).
	Backward bool
	// Epoch limits the read to one epoch of the room.
	Epoch string
	// FromOffset and ToOffset bound offsets, inclusive.
	FromOffset, ToOffset uint64
	// Start and End bound the messages' timestamps, inclusive.
	Start, End time.Time
	// Limit is the page size (0: 100; at most 1000).
	Limit int
	// Cursor continues from a previous page of the same options.
	Cursor string
}

// HistoryPage is one page of a room's history.
type HistoryPage struct {
	Messages []protocol.Message
	// Cursor fetches the next page (set it in HistoryOptions.Cursor);
	// "" on the last page.
	Cursor string
}

// History reads one page of a room's history: archived messages and the
// most recent ones, including any this client has just had acknowledged.
// The token needs the history capability on the room; joining is not
// needed.
func (c *Client) History(ctx context.Context, room string, opts HistoryOptions) (HistoryPage, error) {
	q := &protocol.HistoryQuery{Epoch: opts.Epoch, FromOffset: opts.FromOffset, ToOffset: opts.ToOffset, Backward: opts.Backward}
	if !opts.Start.IsZero() {
		q.Start = opts.Start.UnixMilli()
	}
	if !opts.End.IsZero() {
		q.End = opts.End.UnixMilli()
	}
	r, _, err := c.do(ctx, &protocol.Command{Op: protocol.OpHistory, Room: room, Cursor: opts.Cursor, Limit: opts.Limit, History: q}, true, nil, nil)
	if err != nil {
		return HistoryPage{}, err
	}
	return HistoryPage{Messages: r.Messages, Cursor: r.Cursor}, nil
}
