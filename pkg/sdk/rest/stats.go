package rest

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Stats units.
const (
	UnitMinute = "minute"
	UnitHour   = "hour"
	UnitDay    = "day"
)

// StatsQuery selects a range of usage. Zero From and To mean the last 60
// units up to now; an empty Unit means minutes.
type StatsQuery struct {
	From, To time.Time
	Unit     string
}

// UsageBucket is the usage of one unit of time (or the totals of a
// range). Connections is connections opened (an app) or joins (a room);
// the peaks are the most at once, the currents the number at the end.
type UsageBucket struct {
	Start              string `json:"start,omitempty"`
	Connections        int64  `json:"connections"`
	PeakConnections    int64  `json:"peak_connections"`
	CurrentConnections int64  `json:"current_connections"`
	Messages           int64  `json:"messages"`
	Bytes              int64  `json:"bytes"`
	PeakPresence       int64  `json:"peak_presence"`
	CurrentPresence    int64  `json:"current_presence"`
}

// Usage is an app's or a room's usage over a range.
type Usage struct {
	App     string        `json:"app"`
	Room    string        `json:"room,omitempty"`
	Unit    string        `json:"unit"`
	From    string        `json:"from"`
	To      string        `json:"to"`
	Buckets []UsageBucket `json:"buckets"`
	Totals  UsageBucket   `json:"totals"`
}

// Stats returns the usage of the API key's app (GET
// /v1/apps/{app}/stats on the metrics service).
func (c *Client) Stats(ctx context.Context, q StatsQuery) (*Usage, error) {
	return c.stats(ctx, "/v1/apps/"+url.PathEscape(c.key.App)+"/stats", q)
}

// RoomStats returns the usage of one room of the API key's app.
func (c *Client) RoomStats(ctx context.Context, room string, q StatsQuery) (*Usage, error) {
	return c.stats(ctx, "/v1/apps/"+url.PathEscape(c.key.App)+"/rooms/"+url.PathEscape(room)+"/stats", q)
}

func (c *Client) stats(ctx context.Context, path string, q StatsQuery) (*Usage, error) {
	v := url.Values{}
	if !q.From.IsZero() {
		v.Set("from", strconv.FormatInt(q.From.UnixMilli(), 10))
	}
	if !q.To.IsZero() {
		v.Set("to", strconv.FormatInt(q.To.UnixMilli(), 10))
	}
	if q.Unit != "" {
		v.Set("unit", q.Unit)
	}
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var u Usage
	if err := c.call(ctx, http.MethodGet, c.cfg.MetricsURL, path, nil, &u, true); err != nil {
		return nil, err
	}
	return &u, nil
}
