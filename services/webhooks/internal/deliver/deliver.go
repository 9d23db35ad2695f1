// Package deliver sends deliveries to endpoints: it claims due ones from
// the store (at most Senders requests in flight per process, at most
// PerEndpoint per endpoint, so one slow backend cannot starve the others),
// signs each request (Standard Webhooks), and records every attempt.
// Network errors, 408, 429 and 5xx are retried with exponential backoff
// and jitter (Retry-After honoured) until RetryHorizon has passed since the
// delivery was made or replayed; then, or at once on any other answer, the
// delivery is dead until replayed.
package deliver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomcast/roomcast/pkg/webhooks"
	"github.com/roomcast/roomcast/services/webhooks/internal/store"
)

// Store is what the dispatcher needs of the database.
type Store interface {
	Claim(ctx context.Context, limit, perEndpoint int, free map[string]int, lease time.Duration) ([]store.Job, error)
	Target(ctx context.Context, id string) (store.Target, error)
	Record(ctx context.Context, id int64, o store.Outcome) error
}

// Config tunes a Dispatcher.
type Config struct {
	Senders, PerEndpoint int
	Interval             time.Duration
	Timeout              time.Duration
	RetryMin, RetryMax   time.Duration
	RetryHorizon         time.Duration
	HTTP                 *http.Client
	UserAgent            string
}

// Stats are counters for metrics.
type Stats struct {
	Attempts, Delivered, Failed, Dead uint64
}

// Dispatcher sends due deliveries.
type Dispatcher struct {
	cfg   Config
	store Store
	log   *slog.Logger
	wake  chan struct{}
	slots chan struct{}

	mu       sync.Mutex
	inflight map[string]int // endpoint → requests in flight (deliveries, batches count once per delivery)
	targets  map[string]cachedTarget

	attempts, delivered, failed, dead atomic.Uint64
	wg                                sync.WaitGroup
}

type cachedTarget struct {
	t  store.Target
	at time.Time
}

// New returns a Dispatcher; start it with Run.
func New(cfg Config, st Store, log *slog.Logger) *Dispatcher {
	return &Dispatcher{cfg: cfg, store: st, log: log, wake: make(chan struct{}, 1), slots: make(chan struct{}, cfg.Senders),
		inflight: map[string]int{}, targets: map[string]cachedTarget{}}
}

// Stats returns the counters.
func (d *Dispatcher) Stats() Stats {
	return Stats{Attempts: d.attempts.Load(), Delivered: d.delivered.Load(), Failed: d.failed.Load(), Dead: d.dead.Load()}
}

// Wake makes the dispatcher look for due deliveries now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run dispatches until ctx ends, then waits for requests in flight.
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	defer d.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
		for d.dispatch(ctx) {
		}
	}
}

// dispatch claims and starts one round; it reports whether it filled
// every free slot (so more may be due at once).
func (d *Dispatcher) dispatch(ctx context.Context) bool {
	free := d.cfg.Senders - len(d.slots)
	if free <= 0 || ctx.Err() != nil {
		return false
	}
	d.mu.Lock()
	busy := make(map[string]int, len(d.inflight))
	for id, n := range d.inflight {
		busy[id] = max(d.cfg.PerEndpoint-n, 0)
	}
	d.mu.Unlock()
	lease := d.cfg.Timeout*2 + 30*time.Second
	jobs, err := d.store.Claim(ctx, free, d.cfg.PerEndpoint, busy, lease)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("claim failed", "err", err)
		}
		return false
	}
	groups := d.group(ctx, jobs)
	for _, g := range groups {
		d.slots <- struct{}{}
		d.mu.Lock()
		d.inflight[g.target.ID]++
		d.mu.Unlock()
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.send(context.WithoutCancel(ctx), g)
			d.mu.Lock()
			if d.inflight[g.target.ID]--; d.inflight[g.target.ID] <= 0 {
				delete(d.inflight, g.target.ID)
			}
			d.mu.Unlock()
			<-d.slots
			d.Wake()
		}()
	}
	return len(jobs) == free && len(jobs) > 0
}

type group struct {
	target store.Target
	jobs   []store.Job
}

// group loads each job's endpoint and splits the jobs into requests: one
// per job, or batches of the endpoint's batch size.
func (d *Dispatcher) group(ctx context.Context, jobs []store.Job) []group {
	byEndpoint := map[string][]store.Job{}
	var order []string
	for _, j := range jobs {
		if _, ok := byEndpoint[j.EndpointID]; !ok {
			order = append(order, j.EndpointID)
		}
		byEndpoint[j.EndpointID] = append(byEndpoint[j.EndpointID], j)
	}
	var out []group
	for _, id := range order {
		t, err := d.target(ctx, id)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				d.log.Warn("endpoint not loaded; its deliveries wait for their lease to end", "endpoint", id, "err", err)
			}
			continue
		}
		js := byEndpoint[id]
		size := max(t.BatchSize, 1)
		for len(js) > 0 {
			n := min(size, len(js))
			out = append(out, group{target: t, jobs: js[:n]})
			js = js[n:]
		}
	}
	return out
}

// target loads an endpoint, cached for a second: edits and rotations
// reach the senders within that.
func (d *Dispatcher) target(ctx context.Context, id string) (store.Target, error) {
	d.mu.Lock()
	c, ok := d.targets[id]
	d.mu.Unlock()
	if ok && time.Since(c.at) < time.Second {
		return c.t, nil
	}
	t, err := d.store.Target(ctx, id)
	if err != nil {
		return t, err
	}
	d.mu.Lock()
	if len(d.targets) > 10000 {
		clear(d.targets)
	}
	d.targets[id] = cachedTarget{t: t, at: time.Now()}
	d.mu.Unlock()
	return t, nil
}

// MaxResponseSnippet is how much of a response body the log keeps.
const MaxResponseSnippet = 512

// send makes one request for a group and records its outcome on every
// delivery of the group.
func (d *Dispatcher) send(ctx context.Context, g group) {
	id, body := g.jobs[0].EventID, g.jobs[0].Body
	if len(g.jobs) > 1 || g.target.BatchSize > 1 {
		ids := make([]string, len(g.jobs))
		parts := make([][]byte, len(g.jobs))
		for i, j := range g.jobs {
			ids[i], parts[i] = j.EventID, j.Body
		}
		sum := sha256.Sum256([]byte(strings.Join(ids, ",")))
		id = "batch_" + hex.EncodeToString(sum[:12])
		body = append(append([]byte(`{"type":"batch","events":[`), bytes.Join(parts, []byte(","))...), ']', '}')
	}
	start := time.Now()
	a := webhooks.Attempt{At: start}
	status, retryAfter, snippet, err := d.post(ctx, g.target, id, body)
	a.LatencyMS = time.Since(start).Milliseconds()
	a.Status, a.Response = status, snippet
	if err != nil {
		a.Error = err.Error()
	} else if status < 200 || status > 299 {
		a.Error = "HTTP " + strconv.Itoa(status)
	}
	d.attempts.Add(1)
	for _, j := range g.jobs {
		o := store.Outcome{Attempt: a}
		switch {
		case err == nil && status >= 200 && status <= 299:
			o.State = webhooks.StateDelivered
			d.delivered.Add(1)
		case err != nil || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
			next := start.Add(d.backoff(j.Attempts+1, retryAfter))
			if next.Sub(j.HorizonFrom) > d.cfg.RetryHorizon {
				o.State = webhooks.StateDead
				o.Attempt.Error += "; retry horizon reached"
				d.dead.Add(1)
			} else {
				o.State, o.Next = webhooks.StatePending, next
				d.failed.Add(1)
			}
		default:
			o.State = webhooks.StateDead
			o.Attempt.Error += "; not retried (only network errors, 408, 429 and 5xx are)"
			d.dead.Add(1)
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := d.store.Record(rctx, j.ID, o); err != nil {
			d.log.Warn("attempt not recorded; the delivery is retried when its lease ends", "delivery", j.ID, "err", err)
		}
		cancel()
	}
}

// backoff is the wait before attempt n+1: exponential from RetryMin,
// capped at RetryMax, jittered over its upper half; or Retry-After, capped
// at RetryMax.
func (d *Dispatcher) backoff(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, d.cfg.RetryMax)
	}
	ceil := d.cfg.RetryMax
	if n < 40 {
		ceil = min(d.cfg.RetryMin<<(n-1), d.cfg.RetryMax)
	}
	return ceil/2 + rand.N(ceil/2+1)
}

func (d *Dispatcher) post(ctx context.Context, t store.Target, id string, body []byte) (status int, retryAfter time.Duration, snippet string, err error) {
	ts := time.Now().Unix()
	sig, err := webhooks.SignatureHeader(t.Secrets, id, ts, body)
	if err != nil {
		return 0, 0, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, "", err
	}
	for k, v := range t.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.cfg.UserAgent)
	req.Header.Set(webhooks.HeaderID, id)
	req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(webhooks.HeaderSignature, sig)
	resp, err := d.cfg.HTTP.Do(req)
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSnippet))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	return resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), strings.ReplaceAll(strings.ToValidUTF8(string(b), ""), "\x00", ""), nil
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
