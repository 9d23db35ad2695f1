package rest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// Member is one member of a room's presence set.
type Member struct {
	ClientID     string          `json:"client_id"`
	ConnectionID string          `json:"connection_id"`
	Data         json.RawMessage `json:"data,omitempty"`
	Since        int64           `json:"since"` // unix milliseconds
}

// PresenceCount counts a room's presence set: distinct clients and
// connections.
type PresenceCount struct {
	Clients     int `json:"clients"`
	Connections int `json:"connections"`
}

// PresenceMembers returns every member of a room's presence set, reading
// it page by page (pageSize ≤ 0: the server's default of 100; at most 1000).
func (c *Client) PresenceMembers(ctx context.Context, room string, pageSize int) ([]Member, error) {
	var all []Member
	cursor := ""
	for {
		q := url.Values{}
		if pageSize > 0 {
			q.Set("limit", strconv.Itoa(pageSize))
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		path := "/v1/rooms/" + url.PathEscape(room) + "/presence"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		var page struct {
			Members []Member `json:"members"`
			Cursor  string   `json:"cursor"`
		}
		if err := c.call(ctx, http.MethodGet, c.cfg.GatewayURL, path, nil, &page, true); err != nil {
			return nil, err
		}
		all = append(all, page.Members...)
		if page.Cursor == "" {
			return all, nil
		}
		cursor = page.Cursor
	}
}

// PresenceCount returns a room's presence counts.
func (c *Client) PresenceCount(ctx context.Context, room string) (PresenceCount, error) {
	var n PresenceCount
	err := c.call(ctx, http.MethodGet, c.cfg.GatewayURL, "/v1/rooms/"+url.PathEscape(room)+"/presence/count", nil, &n, true)
	return n, err
}
