// Package store keeps usage in PostgreSQL: per app and per room, minute
// buckets of counters (connections opened or joins, messages, bytes, by
// the minute the event happened) and of gauges (peak and current
// connections and presence members, by the minute the change was
// applied), and reads them back rolled up by minute, hour or day (UTC).
//
// Idempotency: every change carries the id of the event it comes from,
// recorded in the same transaction as its effect; an id seen before
// changes nothing. So an event delivered twice is counted once.
package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Change is one event's effect on one app (Room "") or room.
type Change struct {
	App, Room string
	// At is when the event happened; counters go into its minute.
	At time.Time
	// Counters.
	Connections, Messages, Bytes int64
	// Gauge deltas: live connections and presence members.
	ConnDelta, PresenceDelta int64
	// Node is the gateway holding the connection of a ConnDelta; its
	// connections are taken off when it dies (SweepNode). Empty: not
	// tracked by node.
	Node string
}

// Store reads and writes usage.
type Store struct {
	db *pgxpool.Pool
}

// New returns a store over db (migrated).
func New(db *pgxpool.Pool) *Store { return &Store{db: db} }

// Ping checks the database (readiness).
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

// Apply applies the changes of the event id in one transaction, unless
// that id was applied before; it reports whether it applied them. now is
// the minute of the gauges.
func (s *Store) Apply(ctx context.Context, id string, now time.Time, changes []Change) (bool, error) {
	// One lock order for every transaction: concurrent events touching
	// the same rows never deadlock.
	changes = slices.Clone(changes)
	slices.SortFunc(changes, func(a, b Change) int {
		return cmp.Or(cmp.Compare(a.App, b.App), cmp.Compare(a.Room, b.Room))
	})
	applied := false
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO usage_processed (id) VALUES ($1) ON CONFLICT DO NOTHING`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil // seen before
		}
		applied = true
		nowMin := now.UTC().Truncate(time.Minute)
		for _, c := range changes {
			if c.ConnDelta != 0 && c.Node != "" {
				counted, err := trackNode(ctx, tx, c)
				if err != nil {
					return err
				}
				if !counted {
					c.ConnDelta = 0 // its node was swept: already taken off
				}
			}
			if c.ConnDelta == 0 && c.PresenceDelta == 0 {
				continue
			}
			if err := addLive(ctx, tx, c.App, c.Room, nowMin, c.ConnDelta, c.PresenceDelta); err != nil {
				return err
			}
		}
		for _, c := range changes {
			if c.Connections == 0 && c.Messages == 0 && c.Bytes == 0 {
				continue
			}
			if _, err := tx.Exec(ctx, `
INSERT INTO usage_counts (app, room, minute, connections, messages, bytes) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (app, room, minute) DO UPDATE SET connections = usage_counts.connections + EXCLUDED.connections,
                                              messages = usage_counts.messages + EXCLUDED.messages,
                                              bytes = usage_counts.bytes + EXCLUDED.bytes`,
				c.App, c.Room, c.At.UTC().Truncate(time.Minute), c.Connections, c.Messages, c.Bytes); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: apply: %w", err)
	}
	return applied, nil
}

// addLive adds deltas to the live values of an app or room and records
// the gauges of the minute.
func addLive(ctx context.Context, tx pgx.Tx, app, room string, minute time.Time, connDelta, presDelta int64) error {
	var conns, pres int64
	if err := tx.QueryRow(ctx, `
INSERT INTO usage_live (app, room, connections, presence) VALUES ($1, $2, $3, $4)
ON CONFLICT (app, room) DO UPDATE SET connections = usage_live.connections + EXCLUDED.connections,
                                      presence = usage_live.presence + EXCLUDED.presence
RETURNING connections, presence`, app, room, connDelta, presDelta).Scan(&conns, &pres); err != nil {
		return err
	}
	// A minute's peak includes the value it started from.
	_, err := tx.Exec(ctx, `
INSERT INTO usage_gauges (app, room, minute, connections_peak, connections_current, presence_peak, presence_current)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (app, room, minute) DO UPDATE SET
    connections_peak = greatest(usage_gauges.connections_peak, EXCLUDED.connections_current),
    connections_current = EXCLUDED.connections_current,
    presence_peak = greatest(usage_gauges.presence_peak, EXCLUDED.presence_current),
    presence_current = EXCLUDED.presence_current`,
		app, room, minute, max(conns, conns-connDelta), conns, max(pres, pres-presDelta), pres)
	return err
}

// trackNode records a connection delta against its gateway, unless that
// gateway was swept already; it reports whether the delta counts.
func trackNode(ctx context.Context, tx pgx.Tx, c Change) (bool, error) {
	var dead bool
	// The node's lock, shared: a sweep of the node (exclusive) waits for
	// this transaction, or this one for the sweep.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))`, c.Node); err != nil {
		return false, err
	}
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM usage_dead_nodes WHERE node = $1)`, c.Node).Scan(&dead); err != nil {
		return false, err
	}
	if dead {
		return false, nil
	}
	_, err := tx.Exec(ctx, `
INSERT INTO usage_live_nodes (node, app, room, connections) VALUES ($1, $2, $3, $4)
ON CONFLICT (node, app, room) DO UPDATE SET connections = usage_live_nodes.connections + EXCLUDED.connections`,
		c.Node, c.App, c.Room, c.ConnDelta)
	return err == nil, err
}

// LiveNodes lists the gateways holding connections.
func (s *Store) LiveNodes(ctx context.Context) ([]string, error) {
	rows, err := s.db.Query(ctx, `SELECT DISTINCT node FROM usage_live_nodes`)
	if err != nil {
		return nil, fmt.Errorf("store: live nodes: %w", err)
	}
	nodes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: live nodes: %w", err)
	}
	return nodes, nil
}

// SweepNode takes the connections of a dead gateway off the live values
// (gauges of the minute now) and marks it swept, so its late events count
// nothing. It returns how many connections (of the app as a whole) it
// took off. Sweeping a node twice takes nothing off the second time.
func (s *Store) SweepNode(ctx context.Context, node string, now time.Time) (int64, error) {
	var removed int64
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		// The node's lock, exclusive: no event of the node is being
		// counted meanwhile (trackNode).
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, node); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO usage_dead_nodes (node) VALUES ($1) ON CONFLICT (node) DO UPDATE SET at = now()`, node); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `DELETE FROM usage_live_nodes WHERE node = $1 RETURNING app, room, connections`, node)
		if err != nil {
			return err
		}
		type live struct {
			app, room string
			conns     int64
		}
		var lives []live
		for rows.Next() {
			var l live
			if err := rows.Scan(&l.app, &l.room, &l.conns); err != nil {
				return err
			}
			lives = append(lives, l)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		// The lock order of Apply: by app, then room.
		slices.SortFunc(lives, func(a, b live) int { return cmp.Or(cmp.Compare(a.app, b.app), cmp.Compare(a.room, b.room)) })
		minute := now.UTC().Truncate(time.Minute)
		for _, l := range lives {
			if l.conns == 0 {
				continue
			}
			if err := addLive(ctx, tx, l.app, l.room, minute, -l.conns, 0); err != nil {
				return err
			}
			if l.room == "" {
				removed += l.conns
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: sweep node: %w", err)
	}
	return removed, nil
}

// PruneDeadNodes forgets swept gateways recorded before before: by then
// no event of theirs is still queued.
func (s *Store) PruneDeadNodes(ctx context.Context, before time.Time) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM usage_dead_nodes WHERE at < $1`, before); err != nil {
		return fmt.Errorf("store: prune dead nodes: %w", err)
	}
	return nil
}

// Prune forgets up to limit processed ids recorded before before, and
// returns how many it removed.
func (s *Store) Prune(ctx context.Context, before time.Time, limit int) (int64, error) {
	tag, err := s.db.Exec(ctx, `
DELETE FROM usage_processed WHERE id IN (SELECT id FROM usage_processed WHERE at < $1 LIMIT $2)`, before, limit)
	if err != nil {
		return 0, fmt.Errorf("store: prune: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Units a query rolls minutes up into.
const (
	Minute = "minute"
	Hour   = "hour"
	Day    = "day"
)

// UnitDuration is the length of a unit.
func UnitDuration(unit string) (time.Duration, bool) {
	switch unit {
	case Minute:
		return time.Minute, true
	case Hour:
		return time.Hour, true
	case Day:
		return 24 * time.Hour, true
	}
	return 0, false
}

// Bucket is the usage of one unit of time.
type Bucket struct {
	Start time.Time
	// Connections is connections opened (an app) or joins (a room).
	Connections, Messages, Bytes int64
	// PeakConnections and CurrentConnections: the most connections at once
	// in the bucket and the number at its end (an app: open connections;
	// a room: connections joined to it). The same for presence members.
	PeakConnections, CurrentConnections int64
	PeakPresence, CurrentPresence       int64
}

// ErrRange reports a query range that is empty or not aligned.
var ErrRange = errors.New("store: from must be before to, both aligned to the unit")

// Stats returns one bucket per unit from from (inclusive) to to
// (exclusive), both aligned to the unit (UTC), for an app (room "") or
// one of its rooms.
func (s *Store) Stats(ctx context.Context, app, room string, from, to time.Time, unit string) ([]Bucket, error) {
	d, ok := UnitDuration(unit)
	from, to = from.UTC(), to.UTC()
	if !ok || !from.Before(to) || !from.Truncate(d).Equal(from) || !to.Truncate(d).Equal(to) {
		return nil, ErrRange
	}
	n := int(to.Sub(from) / d)
	out := make([]Bucket, n)
	for i := range out {
		out[i].Start = from.Add(time.Duration(i) * d)
	}
	index := func(t time.Time) int { return int(t.UTC().Sub(from) / d) }

	rows, err := s.db.Query(ctx, `
SELECT date_trunc($3, minute, 'UTC') AS b, sum(connections)::bigint, sum(messages)::bigint, sum(bytes)::bigint
FROM usage_counts WHERE app = $1 AND room = $2 AND minute >= $4 AND minute < $5
GROUP BY b`, app, room, unit, from, to)
	if err != nil {
		return nil, fmt.Errorf("store: stats: %w", err)
	}
	for rows.Next() {
		var b time.Time
		var c, m, by int64
		if err := rows.Scan(&b, &c, &m, &by); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: stats: %w", err)
		}
		if i := index(b); i >= 0 && i < n {
			out[i].Connections, out[i].Messages, out[i].Bytes = c, m, by
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: stats: %w", err)
	}

	// Gauges: each bucket's peak and last value; a bucket without changes
	// carries the value the previous one ended with.
	var carryC, carryP int64
	err = s.db.QueryRow(ctx, `
SELECT connections_current, presence_current FROM usage_gauges
WHERE app = $1 AND room = $2 AND minute < $3 ORDER BY minute DESC LIMIT 1`, app, room, from).Scan(&carryC, &carryP)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("store: stats: %w", err)
	}
	type gauge struct{ peakC, curC, peakP, curP int64 }
	g := map[int]gauge{}
	rows, err = s.db.Query(ctx, `
SELECT date_trunc($3, minute, 'UTC') AS b, max(connections_peak), (array_agg(connections_current ORDER BY minute DESC))[1],
       max(presence_peak), (array_agg(presence_current ORDER BY minute DESC))[1]
FROM usage_gauges WHERE app = $1 AND room = $2 AND minute >= $4 AND minute < $5
GROUP BY b`, app, room, unit, from, to)
	if err != nil {
		return nil, fmt.Errorf("store: stats: %w", err)
	}
	for rows.Next() {
		var b time.Time
		var v gauge
		if err := rows.Scan(&b, &v.peakC, &v.curC, &v.peakP, &v.curP); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: stats: %w", err)
		}
		g[index(b)] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: stats: %w", err)
	}
	for i := range out {
		v, ok := g[i]
		if !ok {
			v = gauge{peakC: carryC, curC: carryC, peakP: carryP, curP: carryP}
		}
		out[i].PeakConnections, out[i].CurrentConnections = max(v.peakC, carryC), v.curC
		out[i].PeakPresence, out[i].CurrentPresence = max(v.peakP, carryP), v.curP
		carryC, carryP = v.curC, v.curP
	}
	return out, nil
}
