package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/roomcast/roomcast/pkg/webhooks"
)

// Webhooks manages the app's webhook endpoints on the webhooks service
// (base URL webhooksURL, e.g. http://localhost:8084), authenticated with
// the client's API key. docs/webhooks.md describes the API.
func (c *Client) Webhooks(webhooksURL string) *Webhooks {
	return &Webhooks{c: c, base: strings.TrimRight(webhooksURL, "/")}
}

// Webhooks is the webhooks management API.
type Webhooks struct {
	c    *Client
	base string
}

// CreateEndpoint creates an endpoint; the answer's Secret is shown once.
func (w *Webhooks) CreateEndpoint(ctx context.Context, req webhooks.CreateEndpoint) (webhooks.Endpoint, error) {
	var out webhooks.Endpoint
	return out, w.call(ctx, http.MethodPost, webhooks.PathEndpoints, req, &out)
}

// Endpoints lists the app's endpoints.
func (w *Webhooks) Endpoints(ctx context.Context) ([]webhooks.Endpoint, error) {
	var out webhooks.Endpoints
	return out.Endpoints, w.call(ctx, http.MethodGet, webhooks.PathEndpoints, nil, &out)
}

// UpdateEndpoint changes the fields set in req.
func (w *Webhooks) UpdateEndpoint(ctx context.Context, id string, req webhooks.UpdateEndpoint) (webhooks.Endpoint, error) {
	var out webhooks.Endpoint
	return out, w.call(ctx, http.MethodPatch, webhooks.PathEndpoints+"/"+url.PathEscape(id), req, &out)
}

// DeleteEndpoint deletes an endpoint and its delivery log.
func (w *Webhooks) DeleteEndpoint(ctx context.Context, id string) error {
	return w.call(ctx, http.MethodDelete, webhooks.PathEndpoints+"/"+url.PathEscape(id), nil, nil)
}

// RotateSecret gives the endpoint a new secret (in the answer's Secret);
// the old one keeps signing next to it for overlap (0: the service's
// default, WEBHOOKS_SECRET_OVERLAP).
func (w *Webhooks) RotateSecret(ctx context.Context, id string, overlap time.Duration) (webhooks.Endpoint, error) {
	var req webhooks.RotateSecret
	if overlap > 0 {
		req.Overlap = overlap.String()
	}
	var out webhooks.Endpoint
	return out, w.call(ctx, http.MethodPost, webhooks.PathEndpoints+"/"+url.PathEscape(id)+"/rotate-secret", req, &out)
}

// Deliveries returns a page of the endpoint's delivery log, newest first
// (state "" for every state; cursor "" for the first page).
func (w *Webhooks) Deliveries(ctx context.Context, id, state, cursor string, limit int) (webhooks.Deliveries, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	path := webhooks.PathEndpoints + "/" + url.PathEscape(id) + "/deliveries"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out webhooks.Deliveries
	return out, w.call(ctx, http.MethodGet, path, nil, &out)
}

// Replay sends deliveries again: those named, or every dead one.
func (w *Webhooks) Replay(ctx context.Context, id string, deliveryIDs ...string) (int, error) {
	var out webhooks.Replayed
	err := w.call(ctx, http.MethodPost, webhooks.PathEndpoints+"/"+url.PathEscape(id)+"/replay", webhooks.Replay{DeliveryIDs: deliveryIDs}, &out)
	return out.Replayed, err
}

// call makes one request (management calls are not retried).
func (w *Webhooks) call(ctx context.Context, method, path string, body, out any) error {
	if w.base == "" {
		return fmt.Errorf("rest: no webhooks URL")
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("rest: encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.base+path, rd)
	if err != nil {
		return fmt.Errorf("rest: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+w.c.key.String())
	resp, err := w.c.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("rest: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("rest: read answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e webhooks.Error
		apiErr := &Error{Status: resp.StatusCode, Code: "unknown", Message: http.StatusText(resp.StatusCode)}
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			apiErr.Code, apiErr.Message = string(e.Error.Code), e.Error.Message
		}
		return apiErr
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("rest: decode answer: %w", err)
	}
	return nil
}

// VerifyWebhook checks a webhook request your backend received: the
// webhook-timestamp is within tolerance of now (≤ 0: 5 minutes) and the
// webhook-signature header holds a valid signature of
// "<webhook-id>.<webhook-timestamp>.<body>" under one of secrets (pass the
// old and the new secret while a rotation overlaps). The comparison is
// constant-time. Verify the raw body before parsing it, and deduplicate on
// webhook-id (deliveries are at least once).
//
//	body, _ := io.ReadAll(r.Body)
//	if err := rest.VerifyWebhook(body, r.Header, []string{secret}, 0); err != nil { w.WriteHeader(400); return }
func VerifyWebhook(body []byte, header http.Header, secrets []string, tolerance time.Duration) error {
	return webhooks.Verify(secrets, header, body, tolerance, time.Now())
}
