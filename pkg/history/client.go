package history

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// The history service's internal read API, which gateways call with the
// cluster's service token:
//
//	GET /internal/v1/epochs?app=&room=                → EpochsResponse
//	GET /internal/v1/messages?app=&room=&epoch=&min=&max=&start=&end=&dir=&limit=
//	                                                 → MessagesResponse
const (
	EpochsPath   = "/internal/v1/epochs"
	MessagesPath = "/internal/v1/messages"
)

// EpochsResponse lists a room's archived epochs, oldest first.
type EpochsResponse struct {
	Epochs []string `json:"epochs"`
}

// ArchivedMessage is one archived message on the wire.
type ArchivedMessage struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
	Event  string `json:"event,omitempty"`
	From   string `json:"from,omitempty"`
	Data   []byte `json:"data,omitempty"` // base64
	// Binary is the message's binary mark. A history service that
	// predates it never sends it: readers then guess (see Reader).
	Binary    bool  `json:"binary,omitempty"`
	Timestamp int64 `json:"ts"`
}

// MessagesResponse answers a read.
type MessagesResponse struct {
	Messages []ArchivedMessage `json:"messages"`
}

// Values encodes r as the query of MessagesPath.
func (r ReadRequest) Values() url.Values {
	v := url.Values{"app": {r.App}, "room": {r.Room}, "epoch": {r.Epoch},
		"min": {strconv.FormatUint(r.Min, 10)}, "max": {strconv.FormatUint(r.Max, 10)},
		"limit": {strconv.Itoa(r.Limit)}}
	if r.Start != 0 {
		v.Set("start", strconv.FormatInt(r.Start, 10))
	}
	if r.End != 0 {
		v.Set("end", strconv.FormatInt(r.End, 10))
	}
	if r.Backward {
		v.Set("dir", "backward")
	}
	return v
}

// ParseReadRequest decodes Values.
func ParseReadRequest(v url.Values) (ReadRequest, error) {
	r := ReadRequest{App: v.Get("app"), Room: v.Get("room"), Epoch: v.Get("epoch"), Backward: v.Get("dir") == "backward"}
	var err error
	num := func(name string, dst *uint64) {
		if s := v.Get(name); s != "" && err == nil {
			*dst, err = strconv.ParseUint(s, 10, 64)
		}
	}
	inum := func(name string, dst *int64) {
		if s := v.Get(name); s != "" && err == nil {
			*dst, err = strconv.ParseInt(s, 10, 64)
		}
	}
	num("min", &r.Min)
	num("max", &r.Max)
	inum("start", &r.Start)
	inum("end", &r.End)
	if err == nil {
		r.Limit, err = strconv.Atoi(v.Get("limit"))
	}
	if err != nil || r.App == "" || r.Room == "" || r.Epoch == "" || r.Limit < 1 || r.Limit > MaxLimit+1 {
		return ReadRequest{}, fmt.Errorf("%w: bad archive read %q", ErrQuery, v.Encode())
	}
	return r, nil
}

// Client is the Archive of a history service reached over HTTP.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// NewClient reads from the history service at baseURL, authenticating with
// the service token.
func NewClient(baseURL, serviceToken string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), token: serviceToken, hc: hc}
}

// Epochs implements Archive.
func (c *Client) Epochs(ctx context.Context, app, room string) ([]string, error) {
	var out EpochsResponse
	err := c.get(ctx, EpochsPath, url.Values{"app": {app}, "room": {room}}, &out)
	return out.Epochs, err
}

// Read implements Archive.
func (c *Client) Read(ctx context.Context, r ReadRequest) ([]protocol.Message, error) {
	var out MessagesResponse
	if err := c.get(ctx, MessagesPath, r.Values(), &out); err != nil {
		return nil, err
	}
	msgs := make([]protocol.Message, len(out.Messages))
	for i, m := range out.Messages {
		msgs[i] = protocol.Message{Room: r.Room, Offset: m.Offset, Epoch: m.Epoch, Event: m.Event,
			From: m.From, Data: m.Data, Binary: m.Binary && len(m.Data) > 0, Timestamp: m.Timestamp}
	}
	return msgs, nil
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("history: archive: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("history: archive: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("history: archive: decode: %w", err)
	}
	return nil
}
