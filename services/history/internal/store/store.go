// Package store is the history archive in PostgreSQL: batches of messages
// in, per-room pages out, expired rows deleted in bounded batches.
package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomcast/roomcast/pkg/history"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// Row is one archived message.
type Row struct {
	App, Room, Epoch string
	Offset           uint64
	TS               int64 // unix milliseconds
	Event, Sender    string
	Data             []byte
	// Binary is the message's binary mark (protocol.Message.Binary).
	Binary    bool
	ExpiresAt time.Time
}

// Store reads and writes the archive.
type Store struct {
	db *pgxpool.Pool
}

// New returns a store over db (migrated).
func New(db *pgxpool.Pool) *Store { return &Store{db: db} }

// Insert stores rows in one transaction and returns how many were new: a
// row whose room, epoch and offset are already archived is skipped, so a
// retried batch inserts nothing twice.
func (s *Store) Insert(ctx context.Context, rows []Row) (int64, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	// One lock order for every transaction: concurrent batches touching
	// the same rooms never deadlock.
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b Row) int {
		if c := strings.Compare(a.App, b.App); c != 0 {
			return c
		}
		if c := strings.Compare(a.Room, b.Room); c != 0 {
			return c
		}
		if c := strings.Compare(a.Epoch, b.Epoch); c != 0 {
			return c
		}
		return cmp.Compare(a.Offset, b.Offset)
	})
	n := len(rows)
	apps, rooms, epochs := make([]string, n), make([]string, n), make([]string, n)
	offs, tss := make([]int64, n), make([]int64, n)
	evs, senders := make([]string, n), make([]string, n)
	data := make([][]byte, n)
	bins := make([]bool, n)
	exps := make([]time.Time, n)
	type ek struct{ app, room, epoch string }
	type ev struct {
		first int64
		exp   time.Time
	}
	eps := map[ek]ev{}
	var order []ek
	for i, r := range rows {
		apps[i], rooms[i], epochs[i] = r.App, r.Room, r.Epoch
		offs[i], tss[i] = int64(r.Offset), r.TS //nolint:gosec // offsets stay far below 2^63
		evs[i], senders[i], data[i], exps[i] = r.Event, r.Sender, r.Data, r.ExpiresAt
		bins[i] = r.Binary && len(r.Data) > 0
		if data[i] == nil {
			data[i] = []byte{}
		}
		k := ek{r.App, r.Room, r.Epoch}
		e, ok := eps[k]
		if !ok {
			order = append(order, k)
			e = ev{first: r.TS, exp: r.ExpiresAt}
		}
		e.first = min(e.first, r.TS)
		if r.ExpiresAt.After(e.exp) {
			e.exp = r.ExpiresAt
		}
		eps[k] = e
	}
	eApps, eRooms, eEpochs := make([]string, len(order)), make([]string, len(order)), make([]string, len(order))
	eFirst, eExp := make([]int64, len(order)), make([]time.Time, len(order))
	for i, k := range order {
		eApps[i], eRooms[i], eEpochs[i] = k.app, k.room, k.epoch
		eFirst[i], eExp[i] = eps[k].first, eps[k].exp
	}

	var inserted int64
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		// The epoch first: a reader that sees a message sees its epoch.
		// expires_at moves only by the hour, so that a busy room's epoch
		// row is not rewritten by every batch.
		if _, err := tx.Exec(ctx, `
INSERT INTO history_epochs (app, room, epoch, first_ts, expires_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[])
ON CONFLICT (app, room, epoch) DO UPDATE
SET first_ts = LEAST(history_epochs.first_ts, EXCLUDED.first_ts),
    expires_at = GREATEST(history_epochs.expires_at, EXCLUDED.expires_at + interval '1 hour')
WHERE EXCLUDED.first_ts < history_epochs.first_ts OR EXCLUDED.expires_at > history_epochs.expires_at`,
			eApps, eRooms, eEpochs, eFirst, eExp); err != nil {
			return fmt.Errorf("store: epochs: %w", err)
		}
		tag, err := tx.Exec(ctx, `
INSERT INTO history_messages (app, room, epoch, msg_offset, ts, event, sender, data, expires_at, is_binary)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::bytea[], $9::timestamptz[], $10::boolean[])
ON CONFLICT (app, room, epoch, msg_offset) DO NOTHING`,
			apps, rooms, epochs, offs, tss, evs, senders, data, exps, bins)
		if err != nil {
			return fmt.Errorf("store: messages: %w", err)
		}
		inserted = tag.RowsAffected()
		return nil
	})
	return inserted, err
}

// Epochs lists a room's epochs, oldest first.
func (s *Store) Epochs(ctx context.Context, app, room string) ([]string, error) {
	rows, err := s.db.Query(ctx, `SELECT epoch FROM history_epochs WHERE app = $1 AND room = $2 ORDER BY first_ts, epoch`, app, room)
	if err != nil {
		return nil, fmt.Errorf("store: epochs: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: epochs: %w", err)
	}
	return out, nil
}

// Read returns one page of one epoch of a room (see history.ReadRequest).
func (s *Store) Read(ctx context.Context, r history.ReadRequest) ([]protocol.Message, error) {
	const maxOffset = uint64(1<<63 - 1)
	lo, hi := min(r.Min, maxOffset), min(r.Max, maxOffset)
	end := r.End
	if end == 0 {
		end = 1<<63 - 1
	}
	dir := "ASC"
	if r.Backward {
		dir = "DESC"
	}
	rows, err := s.db.Query(ctx, `
SELECT msg_offset, ts, event, sender, data, is_binary FROM history_messages
WHERE app = $1 AND room = $2 AND epoch = $3 AND msg_offset BETWEEN $4 AND $5 AND ts BETWEEN $6 AND $7
ORDER BY msg_offset `+dir+` LIMIT $8`,
		r.App, r.Room, r.Epoch, int64(lo), int64(hi), r.Start, end, r.Limit) //nolint:gosec // clamped above
	if err != nil {
		return nil, fmt.Errorf("store: read: %w", err)
	}
	defer rows.Close()
	out := make([]protocol.Message, 0, r.Limit)
	for rows.Next() {
		m := protocol.Message{Room: r.Room, Epoch: r.Epoch}
		var off int64
		if err := rows.Scan(&off, &m.Timestamp, &m.Event, &m.From, &m.Data, &m.Binary); err != nil {
			return nil, fmt.Errorf("store: read: %w", err)
		}
		m.Offset = uint64(off) //nolint:gosec // never negative
		m.Binary = m.Binary && len(m.Data) > 0
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read: %w", err)
	}
	return out, nil
}

// DeleteExpired deletes at most batch messages that expired before now and
// returns how many it deleted. Concurrent callers skip each other's rows.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time, batch int) (int64, error) {
	tag, err := s.db.Exec(ctx, `
DELETE FROM history_messages WHERE ctid = ANY(ARRAY(
  SELECT ctid FROM history_messages WHERE expires_at <= $1
  ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))`, now, batch)
	if err != nil {
		return 0, fmt.Errorf("store: delete expired: %w", err)
	}
	return tag.RowsAffected(), nil
}

// DeleteEmptyEpochs deletes up to batch epoch rows past their expiry hint
// that have no message left.
func (s *Store) DeleteEmptyEpochs(ctx context.Context, now time.Time, batch int) (int64, error) {
	tag, err := s.db.Exec(ctx, `
DELETE FROM history_epochs e WHERE (e.app, e.room, e.epoch) IN (
  SELECT app, room, epoch FROM history_epochs x WHERE x.expires_at <= $1
    AND NOT EXISTS (SELECT 1 FROM history_messages m WHERE m.app = x.app AND m.room = x.room AND m.epoch = x.epoch)
  ORDER BY x.expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, now, batch)
	if err != nil {
		return 0, fmt.Errorf("store: delete epochs: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }
