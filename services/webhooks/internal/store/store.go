// Package store keeps the webhooks service's state in PostgreSQL:
// endpoints (with sealed signing secrets) and deliveries, which are both
// the outbox that dispatchers claim work from and the delivery log.
package store

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomcast/roomcast/pkg/seal"
	"github.com/roomcast/roomcast/pkg/webhooks"
)

// ErrNotFound reports an endpoint or delivery that does not exist (in
// the caller's app).
var ErrNotFound = errors.New("store: not found")

// Store is the webhooks database. It is safe for concurrent use.
type Store struct {
	db     *pgxpool.Pool
	sealer *seal.Sealer
}

// New creates a Store over an open pool.
func New(db *pgxpool.Pool, sealer *seal.Sealer) *Store { return &Store{db: db, sealer: sealer} }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

func newID(prefix string) string {
	b := make([]byte, 15)
	_, _ = rand.Read(b)
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

const endpointCols = `id, app, url, description, types, headers, enabled, batch_size, created_at, updated_at`

func scanEndpoint(row pgx.Row) (webhooks.Endpoint, error) {
	var e webhooks.Endpoint
	var headers []byte
	err := row.Scan(&e.ID, &e.App, &e.URL, &e.Description, &e.Types, &headers, &e.Enabled, &e.BatchSize, &e.CreatedAt, &e.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, ErrNotFound
	}
	if err != nil {
		return e, err
	}
	e.Headers = map[string]string{}
	_ = json.Unmarshal(headers, &e.Headers)
	return e, nil
}

// CreateEndpoint stores e (ID, timestamps and Secret are filled in) with a
// new signing secret, returned once in Secret.
func (s *Store) CreateEndpoint(ctx context.Context, e webhooks.Endpoint) (webhooks.Endpoint, error) {
	e.ID = newID("ep_")
	headers, _ := json.Marshal(e.Headers)
	secret := webhooks.NewSecret()
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return e, fmt.Errorf("store: create endpoint: %w", err)
	}
	defer tx.Rollback(ctx)
	out, err := scanEndpoint(tx.QueryRow(ctx, `INSERT INTO webhook_endpoints (id, app, url, description, types, headers, enabled, batch_size)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+endpointCols,
		e.ID, e.App, e.URL, e.Description, e.Types, headers, e.Enabled, max(e.BatchSize, 1)))
	if err != nil {
		return e, fmt.Errorf("store: create endpoint: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO webhook_secrets (endpoint_id, sealed) VALUES ($1, $2)`, e.ID, s.sealer.Seal([]byte(secret), "endpoint:"+e.ID)); err != nil {
		return e, fmt.Errorf("store: create endpoint: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return e, fmt.Errorf("store: create endpoint: %w", err)
	}
	out.Secret = secret
	return out, nil
}

// Endpoint returns one endpoint of app.
func (s *Store) Endpoint(ctx context.Context, app, id string) (webhooks.Endpoint, error) {
	return scanEndpoint(s.db.QueryRow(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE app = $1 AND id = $2`, app, id))
}

// Endpoints lists app's endpoints, oldest first.
func (s *Store) Endpoints(ctx context.Context, app string) ([]webhooks.Endpoint, error) {
	rows, err := s.db.Query(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE app = $1 ORDER BY created_at, id`, app)
	if err != nil {
		return nil, fmt.Errorf("store: list endpoints: %w", err)
	}
	defer rows.Close()
	out := []webhooks.Endpoint{}
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list endpoints: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// UpdateEndpoint stores e's fields (all of them) for its id and app.
func (s *Store) UpdateEndpoint(ctx context.Context, e webhooks.Endpoint) (webhooks.Endpoint, error) {
	headers, _ := json.Marshal(e.Headers)
	return scanEndpoint(s.db.QueryRow(ctx, `UPDATE webhook_endpoints SET url = $3, description = $4, types = $5, headers = $6,
		enabled = $7, batch_size = $8, updated_at = now() WHERE app = $1 AND id = $2 RETURNING `+endpointCols,
		e.App, e.ID, e.URL, e.Description, e.Types, headers, e.Enabled, max(e.BatchSize, 1)))
}

// DeleteEndpoint deletes an endpoint with its secrets and deliveries.
func (s *Store) DeleteEndpoint(ctx context.Context, app, id string) error {
	tag, err := s.db.Exec(ctx, `DELETE FROM webhook_endpoints WHERE app = $1 AND id = $2`, app, id)
	if err != nil {
		return fmt.Errorf("store: delete endpoint: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// RotateSecret adds a new secret to an endpoint and lets the current ones
// sign for overlap more (at most: one already ending sooner keeps its end).
func (s *Store) RotateSecret(ctx context.Context, app, id string, overlap time.Duration) (string, error) {
	secret := webhooks.NewSecret()
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("store: rotate: %w", err)
	}
	defer tx.Rollback(ctx)
	var one int
	if err := tx.QueryRow(ctx, `SELECT 1 FROM webhook_endpoints WHERE app = $1 AND id = $2 FOR UPDATE`, app, id).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	} else if err != nil {
		return "", fmt.Errorf("store: rotate: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE webhook_secrets SET expires_at = LEAST(COALESCE(expires_at, 'infinity'), now() + $2::interval)
		WHERE endpoint_id = $1`, id, overlap.String()); err != nil {
		return "", fmt.Errorf("store: rotate: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM webhook_secrets WHERE endpoint_id = $1 AND expires_at <= now()`, id); err != nil {
		return "", fmt.Errorf("store: rotate: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO webhook_secrets (endpoint_id, sealed) VALUES ($1, $2)`, id, s.sealer.Seal([]byte(secret), "endpoint:"+id)); err != nil {
		return "", fmt.Errorf("store: rotate: %w", err)
	}
	return secret, tx.Commit(ctx)
}

// Target is what a dispatcher needs to send to an endpoint.
type Target struct {
	ID, URL   string
	Headers   map[string]string
	Enabled   bool
	BatchSize int
	Secrets   []string // every secret currently signing, newest first
}

// Target loads an endpoint for sending; ErrNotFound if it is gone.
func (s *Store) Target(ctx context.Context, id string) (Target, error) {
	t := Target{ID: id}
	var headers []byte
	err := s.db.QueryRow(ctx, `SELECT url, headers, enabled, batch_size FROM webhook_endpoints WHERE id = $1`, id).Scan(&t.URL, &headers, &t.Enabled, &t.BatchSize)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ErrNotFound
	}
	if err != nil {
		return t, fmt.Errorf("store: target: %w", err)
	}
	_ = json.Unmarshal(headers, &t.Headers)
	rows, err := s.db.Query(ctx, `SELECT sealed FROM webhook_secrets WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > now()) ORDER BY id DESC`, id)
	if err != nil {
		return t, fmt.Errorf("store: target: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sealed []byte
		if err := rows.Scan(&sealed); err != nil {
			return t, err
		}
		pt, err := s.sealer.Open(sealed, "endpoint:"+id)
		if err != nil {
			return t, fmt.Errorf("store: endpoint %s: %w", id, err)
		}
		t.Secrets = append(t.Secrets, string(pt))
	}
	return t, rows.Err()
}

// Fanout records ev for delivery to every enabled endpoint of its app that
// takes its type, once per endpoint: an event recorded before (a retried
// task) is not recorded again. It returns how many deliveries it added.
func (s *Store) Fanout(ctx context.Context, ev webhooks.Event) (int64, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return 0, err
	}
	tag, err := s.db.Exec(ctx, `INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, body)
		SELECT id, $2, $3, $4 FROM webhook_endpoints WHERE app = $1 AND enabled AND $3 = ANY(types)
		ON CONFLICT (endpoint_id, event_id) DO NOTHING`, ev.App, ev.ID, ev.Type, body)
	if err != nil {
		return 0, fmt.Errorf("store: fanout: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Job is a claimed delivery.
type Job struct {
	ID          int64
	EndpointID  string
	EventID     string
	Body        []byte
	Attempts    int // before this one
	HorizonFrom time.Time
}

// Claim leases up to limit due deliveries for lease: per endpoint at most
// free[id] (endpoints not in free: perEndpoint) times the endpoint's batch
// size. A delivery leased by another process is skipped; one whose lease
// ran out (its process died) is due again.
func (s *Store) Claim(ctx context.Context, limit, perEndpoint int, free map[string]int, lease time.Duration) ([]Job, error) {
	ids := make([]string, 0, len(free))
	frees := make([]int32, 0, len(free))
	for id, n := range free {
		ids, frees = append(ids, id), append(frees, int32(n))
	}
	rows, err := s.db.Query(ctx, `
		UPDATE webhook_deliveries SET lease_until = now() + $5::interval
		WHERE id IN (
			SELECT d.id FROM webhook_endpoints e
			LEFT JOIN unnest($2::text[], $3::int[]) AS f(id, free) ON f.id = e.id
			CROSS JOIN LATERAL (
				SELECT id, next_at FROM webhook_deliveries d
				WHERE d.endpoint_id = e.id AND d.state = 'pending' AND d.next_at <= now() AND d.lease_until < now()
				ORDER BY d.next_at LIMIT COALESCE(f.free, $4) * e.batch_size
			) d
			WHERE e.enabled
			ORDER BY d.next_at LIMIT $1
		) AND state = 'pending' AND lease_until < now()
		RETURNING id, endpoint_id, event_id, body, attempts, horizon_from`,
		limit, ids, frees, perEndpoint, lease.String())
	if err != nil {
		return nil, fmt.Errorf("store: claim: %w", err)
	}
	defer rows.Close()
	var jobs []Job
	for rows.Next() {
		var j Job
		if err := rows.Scan(&j.ID, &j.EndpointID, &j.EventID, &j.Body, &j.Attempts, &j.HorizonFrom); err != nil {
			return nil, fmt.Errorf("store: claim: %w", err)
		}
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

// Outcome is the result of one attempt of one delivery.
type Outcome struct {
	Attempt webhooks.Attempt
	// State is the delivery's state after the attempt; Next the time of
	// the next attempt (pending only).
	State string
	Next  time.Time
}

// Record stores an attempt and the delivery's new state, and releases its
// lease.
func (s *Store) Record(ctx context.Context, id int64, o Outcome) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("store: record: %w", err)
	}
	defer tx.Rollback(ctx)
	var finished *time.Time
	if o.State != webhooks.StatePending {
		finished = &o.Attempt.At
	}
	next := o.Next
	if next.IsZero() {
		next = o.Attempt.At
	}
	var n int
	err = tx.QueryRow(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1, state = $2, next_at = $3, lease_until = '-infinity',
		last_error = $4, finished_at = $5 WHERE id = $1 RETURNING attempts`, id, o.State, next, o.Attempt.Error, finished).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // the endpoint was deleted meanwhile
	}
	if err != nil {
		return fmt.Errorf("store: record: %w", err)
	}
	a := o.Attempt
	if _, err := tx.Exec(ctx, `INSERT INTO webhook_attempts (delivery_id, n, at, status, latency_ms, error, response) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		id, n, a.At, a.Status, a.LatencyMS, a.Error, a.Response); err != nil {
		return fmt.Errorf("store: record: %w", err)
	}
	return tx.Commit(ctx)
}

// Deliveries lists an endpoint's deliveries, newest first, state "" for
// all; cursor is the Next of the previous page.
func (s *Store) Deliveries(ctx context.Context, app, endpointID, state, cursor string, limit int) (webhooks.Deliveries, error) {
	out := webhooks.Deliveries{Deliveries: []webhooks.Delivery{}}
	if _, err := s.Endpoint(ctx, app, endpointID); err != nil {
		return out, err
	}
	before := int64(1<<62 - 1)
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n <= 0 {
			return out, ErrCursor
		}
		before = n
	}
	rows, err := s.db.Query(ctx, `SELECT id, event_id, event_type, state, attempts, next_at, created_at, last_error FROM webhook_deliveries
		WHERE endpoint_id = $1 AND id < $2 AND ($3 = '' OR state = $3) ORDER BY id DESC LIMIT $4`, endpointID, before, state, limit+1)
	if err != nil {
		return out, fmt.Errorf("store: deliveries: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var d webhooks.Delivery
		var id int64
		var next time.Time
		if err := rows.Scan(&id, &d.EventID, &d.EventType, &d.State, &d.Attempts, &next, &d.CreatedAt, &d.LastError); err != nil {
			rows.Close()
			return out, fmt.Errorf("store: deliveries: %w", err)
		}
		d.ID = strconv.FormatInt(id, 10)
		if d.State == webhooks.StatePending {
			d.NextAttempt = &next
		}
		d.Log = []webhooks.Attempt{}
		out.Deliveries = append(out.Deliveries, d)
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, err
	}
	if len(out.Deliveries) > limit {
		out.Deliveries, ids = out.Deliveries[:limit], ids[:limit]
		out.Next = strconv.FormatInt(ids[limit-1], 10)
	}
	if len(ids) == 0 {
		return out, nil
	}
	idx := make(map[int64]int, len(ids))
	for i, id := range ids {
		idx[id] = i
	}
	rows, err = s.db.Query(ctx, `SELECT delivery_id, n, at, status, latency_ms, error, response FROM (
			SELECT *, row_number() OVER (PARTITION BY delivery_id ORDER BY n DESC) AS rn FROM webhook_attempts WHERE delivery_id = ANY($1)
		) a WHERE rn <= 20 ORDER BY delivery_id, n DESC`, ids)
	if err != nil {
		return out, fmt.Errorf("store: attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var a webhooks.Attempt
		if err := rows.Scan(&id, &a.N, &a.At, &a.Status, &a.LatencyMS, &a.Error, &a.Response); err != nil {
			return out, fmt.Errorf("store: attempts: %w", err)
		}
		d := &out.Deliveries[idx[id]]
		d.Log = append(d.Log, a)
	}
	return out, rows.Err()
}

// ErrCursor reports a cursor Deliveries did not issue.
var ErrCursor = errors.New("store: invalid cursor")

// Replay makes deliveries of an endpoint pending again, due now, with a
// fresh retry horizon: those named (not pending), or every dead one.
func (s *Store) Replay(ctx context.Context, app, endpointID string, ids []int64) (int, error) {
	if _, err := s.Endpoint(ctx, app, endpointID); err != nil {
		return 0, err
	}
	tag, err := s.db.Exec(ctx, `UPDATE webhook_deliveries SET state = 'pending', next_at = now(), horizon_from = now(),
		lease_until = '-infinity', finished_at = NULL
		WHERE endpoint_id = $1 AND state <> 'pending' AND (CASE WHEN cardinality($2::bigint[]) = 0 THEN state = 'dead' ELSE id = ANY($2) END)`,
		endpointID, ids)
	if err != nil {
		return 0, fmt.Errorf("store: replay: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Prune deletes deliveries finished before cutoff, with their attempts.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM webhook_deliveries WHERE finished_at IS NOT NULL AND finished_at < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("store: prune: %w", err)
	}
	return tag.RowsAffected(), nil
}
