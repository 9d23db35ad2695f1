package rest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
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

// HistoryMessage is one message of a room's history.
type HistoryMessage struct {
	Offset    uint64          `json:"offset"`
	Epoch     string          `json:"epoch"`
	Event     string          `json:"event,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	From      string          `json:"from,omitempty"`
	Timestamp int64           `json:"ts"` // unix milliseconds
}

// HistoryPage is one page of a room's history.
type HistoryPage struct {
	Room     string           `json:"room"`
	Messages []HistoryMessage `json:"messages"`
	// Cursor fetches the next page (set it in HistoryOptions.Cursor); ""
	// on the last page.
	Cursor string `json:"cursor,omitempty"`
}

// History reads one page of a room's history (GET
// /v1/rooms/{room}/messages). The credential needs the history capability
// on the room (an app's API key has it on every room).
func (c *Client) History(ctx context.Context, room string, opts HistoryOptions) (HistoryPage, error) {
	q := url.Values{}
	if opts.Backward {
		q.Set("direction", "backward")
	}
	if opts.Epoch != "" {
		q.Set("epoch", opts.Epoch)
	}
	if opts.FromOffset != 0 {
		q.Set("from_offset", strconv.FormatUint(opts.FromOffset, 10))
	}
	if opts.ToOffset != 0 {
		q.Set("to_offset", strconv.FormatUint(opts.ToOffset, 10))
	}
	if !opts.Start.IsZero() {
		q.Set("start", strconv.FormatInt(opts.Start.UnixMilli(), 10))
	}
	if !opts.End.IsZero() {
		q.Set("end", strconv.FormatInt(opts.End.UnixMilli(), 10))
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Cursor != "" {
		q.Set("cursor", opts.Cursor)
	}
	path := "/v1/rooms/" + url.PathEscape(room) + "/messages"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var page HistoryPage
	err := c.call(ctx, http.MethodGet, c.cfg.GatewayURL, path, nil, &page, true)
	return page, err
}
