// Package roomlog assigns per-room offsets and keeps each room's bounded
// recovery stream in Redis.
//
// Every non-transient room message gets the next offset of its room (1, 2,
// 3, …) and the room's epoch, a random string naming this incarnation of the
// room's state. One Lua script (append.lua) bumps the offset, appends the
// payload to the room's recovery stream and refreshes the TTLs atomically,
// before the gateway hands the message to AMQP. Receivers deliver each
// room's messages in offset order and fill gaps with Range; sessions replay
// what a reconnecting client missed the same way. When a room's state is
// lost (expiry, data loss) the next Append or Position starts a new epoch at
// offset 1 (0 before any message), and offsets of the old epoch are no
// longer comparable: Range reports ErrEpochChanged.
//
// # Key layout
//
// All keys of one room share a Redis Cluster hash tag, so a script can touch
// them together and every key is passed in KEYS:
//
//	tag    = "{" + 16 lowercase hex digits of xxhash64(app + ":" + room) + "}"
//	base   = <prefix> + "room" + tag + ":" + app + ":" + room
//	base + ":meta"        hash {epoch, offset}; TTL MetaTTL, refreshed by Append and Position
//	base + ":stream"      stream, entry id "<offset>-0", field "d" = payload;
//	                      MAXLEN ~ StreamSize; TTL StreamTTL, refreshed by Append
//	base + ":idem:" + key string "<offset>:<epoch>"; TTL IdempotencyTTL, not refreshed
//
// The prefix must not contain "{" or "}" (the room's tag must be the first
// one in the key), and app ids must not contain ":".
//
// Because stream ids are the offsets, XRANGE by offset is direct. The meta
// hash outlives the stream (MetaTTL is at least the stream's TTL), so a room
// that was quiet longer than the recovery window keeps its epoch and its
// offsets continue: a client that missed nothing still resumes.
package roomlog

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/hashring"
	"github.com/roomcast/roomcast/pkg/lane"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// MaxIdempotencyKeyBytes is the longest accepted idempotency key.
const MaxIdempotencyKeyBytes = 128

var (
	// ErrEpochChanged means the epoch a caller holds is no longer the room's
	// epoch (or the room's state is gone): its offsets cannot be resumed and
	// the caller must resync from Position.
	ErrEpochChanged = errors.New("roomlog: room epoch changed")
	// ErrTruncated means part of the requested range is no longer in the
	// recovery stream (trimmed by StreamSize or expired after StreamTTL).
	ErrTruncated = errors.New("roomlog: range no longer complete in recovery stream")
	// ErrInvalidIdempotencyKey means the key is longer than
	// MaxIdempotencyKeyBytes.
	ErrInvalidIdempotencyKey = errors.New("roomlog: idempotency key too long")
)

// AppendLua is the source of the Lua function roomlog_append (see
// appendfn.lua). A script in another package that must append to a room's
// log in the same atomic step as its own changes starts with this source
// and calls the function with the keys and settings from Target.
//
//go:embed appendfn.lua
var AppendLua string

//go:embed append.lua
var appendMain string

var appendSrc = AppendLua + "\n" + appendMain

//go:embed position.lua
var positionSrc string

var (
	appendScript   = redis.NewScript(appendSrc)
	positionScript = redis.NewScript(positionSrc)
)

// Defaults applied to zero Config fields.
const (
	DefaultPrefix         = "rc:"
	DefaultStreamSize     = 1000
	DefaultStreamTTL      = 2 * time.Minute
	DefaultMetaTTL        = 24 * time.Hour
	DefaultIdempotencyTTL = 2 * time.Minute
)

// Config configures a Log. Zero (or negative) fields take their defaults.
type Config struct {
	// Prefix starts every key. Zero means "rc:". It must not contain "{"
	// or "}". Tests pass a unique prefix.
	Prefix string
	// StreamSize is how many entries each room's recovery stream keeps
	// (XADD MAXLEN ~: at least this many, trimmed in whole blocks). Zero
	// means 1000.
	StreamSize int
	// StreamTTL is the recovery window: a room's stream expires after this
	// much idleness. Zero means 2m.
	StreamTTL time.Duration
	// MetaTTL is how long a room's offset and epoch outlive its last
	// Append or Position, so a quiet room keeps its epoch and offsets
	// continue. Zero means 24h. It is raised to the room's StreamTTL if
	// shorter.
	MetaTTL time.Duration
	// IdempotencyTTL is the dedupe window for idempotency keys. Zero means
	// 2m.
	IdempotencyTTL time.Duration
	// Pipelines is how many lanes appends are spread over (by room, so a
	// room's appends keep their order). Each sends what is queued on it
	// in one round trip and gathers what arrives meanwhile. Zero means 4.
	Pipelines int
	// Batch caps the appends one lane sends in one round trip. Zero means
	// 128.
	Batch int
	// Rules override StreamSize and StreamTTL per app or room pattern; the
	// first matching rule wins. None means every room uses the fields
	// above.
	Rules []Rule
}

// Rule overrides the recovery stream's size and TTL for matching rooms, so
// e.g. a chat app can keep a longer window than a live dashboard.
type Rule struct {
	// App is the app id the rule applies to; "" means any app.
	App string
	// RoomPattern matches room names; "*" matches any run of characters
	// (including none), every other character matches itself. "" means
	// any room.
	RoomPattern string
	// StreamSize overrides Config.StreamSize; zero keeps the Config value.
	StreamSize int
	// StreamTTL overrides Config.StreamTTL; zero keeps the Config value.
	StreamTTL time.Duration
}

// settings are the effective per-room parameters, precomputed as script
// arguments.
type settings struct {
	streamSize  int
	streamTTLms int64
	metaTTLms   int64
}

type rule struct {
	app, pattern string
	s            settings
}

// Log assigns offsets and stores recovery streams. It is safe for
// concurrent use.
type Log struct {
	rdb     redis.UniversalClient
	prefix  string
	def     settings
	idemMS  int64
	metaTTL time.Duration
	rules   []rule
	lanes   []*lane.Lane[*appendReq] // by room
}

// New returns a Log over rdb. It panics if cfg.Prefix contains "{" or "}",
// which would break the hash-tag layout (a programming error).
func New(rdb redis.UniversalClient, cfg Config) *Log {
	if strings.ContainsAny(cfg.Prefix, "{}") {
		panic(fmt.Sprintf("roomlog: prefix %q must not contain { or }", cfg.Prefix))
	}
	l := &Log{rdb: rdb, prefix: cfg.Prefix}
	if l.prefix == "" {
		l.prefix = DefaultPrefix
	}
	size := cfg.StreamSize
	if size <= 0 {
		size = DefaultStreamSize
	}
	streamTTL := cfg.StreamTTL
	if streamTTL <= 0 {
		streamTTL = DefaultStreamTTL
	}
	l.metaTTL = cfg.MetaTTL
	if l.metaTTL <= 0 {
		l.metaTTL = DefaultMetaTTL
	}
	idem := cfg.IdempotencyTTL
	if idem <= 0 {
		idem = DefaultIdempotencyTTL
	}
	l.idemMS = millis(idem)
	pipelines, batch := cfg.Pipelines, cfg.Batch
	if pipelines <= 0 {
		pipelines = 4
	}
	if batch <= 0 {
		batch = 128
	}
	l.newLanes(pipelines, batch, maxBatchBytes)
	l.def = l.settings(size, streamTTL)
	for _, r := range cfg.Rules {
		rs, rt := r.StreamSize, r.StreamTTL
		if rs <= 0 {
			rs = size
		}
		if rt <= 0 {
			rt = streamTTL
		}
		l.rules = append(l.rules, rule{app: r.App, pattern: r.RoomPattern, s: l.settings(rs, rt)})
	}
	return l
}

func (l *Log) settings(size int, streamTTL time.Duration) settings {
	meta := l.metaTTL
	if meta < streamTTL {
		meta = streamTTL
	}
	return settings{streamSize: size, streamTTLms: millis(streamTTL), metaTTLms: millis(meta)}
}

func millis(d time.Duration) int64 {
	if ms := d.Milliseconds(); ms > 0 {
		return ms
	}
	return 1
}

// settingsFor returns the first matching rule's settings, or the defaults.
func (l *Log) settingsFor(app, room string) settings {
	for _, r := range l.rules {
		if (r.app == "" || r.app == app) && (r.pattern == "" || matchGlob(r.pattern, room)) {
			return r.s
		}
	}
	return l.def
}

// matchGlob reports whether s matches pattern, where '*' matches any run of
// bytes and every other byte matches itself.
func matchGlob(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			// Let the last '*' absorb one more byte and retry.
			mark++
			p, i = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// hashTag returns the Redis Cluster hash tag shared by all keys of a room:
// "{" + 16 hex digits of xxhash64(app + ":" + room) + "}", the same hash
// the shard ring uses.
func hashTag(app, room string) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], hashring.Hash(app, room))
	var out [18]byte
	out[0] = '{'
	hex.Encode(out[1:17], b[:])
	out[17] = '}'
	return string(out[:])
}

// roomKeys returns the meta and stream keys of a room.
func (l *Log) roomKeys(app, room string) (base, meta, stream string) {
	base = l.prefix + "room" + hashTag(app, room) + ":" + app + ":" + room
	return base, base + ":meta", base + ":stream"
}

// Target is what a script that calls roomlog_append needs about one room:
// its keys (which share the room's hash tag, HashTag) and its settings as
// script arguments.
type Target struct {
	Meta, Stream string
	StreamSize   int
	StreamTTLms  int64
	MetaTTLms    int64
}

// Target returns the keys and settings of a room's log.
func (l *Log) Target(app, room string) Target {
	s := l.settingsFor(app, room)
	_, meta, stream := l.roomKeys(app, room)
	return Target{Meta: meta, Stream: stream, StreamSize: s.streamSize, StreamTTLms: s.streamTTLms, MetaTTLms: s.metaTTLms}
}

// HashTag is the Redis Cluster hash tag of a room's keys; keys that a
// script touches together with the room's log must carry it.
func HashTag(app, room string) string { return hashTag(app, room) }

// NewEpoch returns a fresh random epoch, the candidate a script passes to
// roomlog_append.
func NewEpoch() (string, error) { return newEpoch() }

func newEpoch() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("roomlog: epoch: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Entry is one message in a room's recovery stream.
type Entry struct {
	Offset  uint64
	Payload []byte
}

// Append assigns the room's next offset to payload and stores it in the
// room's recovery stream, atomically, refreshing the stream's and the
// room's TTLs. It returns where the message was stored.
//
// With a non-empty idemKey (at most MaxIdempotencyKeyBytes), a repeat
// within IdempotencyTTL returns the first call's position with dup=true and
// stores nothing; the caller must then not deliver the message again. That
// position keeps its epoch even if the room's epoch changed since. Payload
// size limits are the caller's job.
func (l *Log) Append(ctx context.Context, app, room string, payload []byte, idemKey string) (pos protocol.Position, dup bool, err error) {
	done := make(chan struct{})
	l.AppendAsync(ctx, app, room, payload, idemKey, func(p protocol.Position, d bool, e error) {
		pos, dup, err = p, d, e
		close(done)
	})
	<-done
	return pos, dup, err
}

// AppendAsync is Append without the wait: done gets what Append would
// return, exactly once, on another goroutine (or on this one, at once, for
// an invalid idempotency key). Appends of one room queued one after another
// get their offsets in that order. done runs on the log's send loop, so it
// must return promptly and must not append and wait; payload must not be
// modified until it runs.
func (l *Log) AppendAsync(ctx context.Context, app, room string, payload []byte, idemKey string, done func(pos protocol.Position, dup bool, err error)) {
	if len(idemKey) > MaxIdempotencyKeyBytes {
		done(protocol.Position{}, false, ErrInvalidIdempotencyKey)
		return
	}
	l.lanes[hashring.Hash(app, room)%uint64(len(l.lanes))].Push(&appendReq{ctx: ctx, app: app, room: room, payload: payload, idemKey: idemKey, done: done})
}

// Position returns the room's current position: the offset of its last
// message (0 if none) and its epoch. A room without an epoch gets one, at
// offset 0, so a joiner always gets a concrete epoch that the next Append
// continues. It refreshes the room's MetaTTL.
func (l *Log) Position(ctx context.Context, app, room string) (protocol.Position, error) {
	epoch, err := newEpoch()
	if err != nil {
		return protocol.Position{}, err
	}
	s := l.settingsFor(app, room)
	_, meta, stream := l.roomKeys(app, room)
	res, err := positionScript.Run(ctx, l.rdb, []string{meta, stream}, epoch, s.metaTTLms).Slice()
	if err != nil {
		return protocol.Position{}, fmt.Errorf("roomlog: position: %w", err)
	}
	if len(res) != 2 {
		return protocol.Position{}, fmt.Errorf("roomlog: position: unexpected reply %v", res)
	}
	pos, err := parsePosition(res[0], res[1])
	if err != nil {
		return protocol.Position{}, fmt.Errorf("roomlog: position: %w", err)
	}
	return pos, nil
}

func parsePosition(off, ep any) (protocol.Position, error) {
	os, ok1 := off.(string)
	es, ok2 := ep.(string)
	if !ok1 || !ok2 || es == "" {
		return protocol.Position{}, fmt.Errorf("unexpected position %v:%v", off, ep)
	}
	n, err := strconv.ParseUint(os, 10, 64)
	if err != nil {
		return protocol.Position{}, fmt.Errorf("bad offset %q: %w", os, err)
	}
	return protocol.Position{Offset: n, Epoch: es}, nil
}

// Range returns the room's entries with from <= offset <= to, ascending, if
// epoch is still the room's epoch. It only reads; it refreshes no TTL.
//
// Offsets start at 1 (a from of 0 is treated as 1). Offsets above the
// room's current offset have not been assigned yet: the range ends at the
// room's head, and a range entirely above it is empty with a nil error. So
// with a nil error the result holds exactly every offset from from to
// min(to, head), without gaps.
//
// Errors:
//   - ErrEpochChanged: epoch is not the room's epoch, or the room's state is
//     gone. No entries are returned.
//   - ErrTruncated: some offsets of the range are no longer in the stream
//     (trimmed or expired). The entries still there are returned with the
//     error (ascending; trimming removes the oldest first, so they are the
//     newest part of the range), for callers that can use a partial replay;
//     callers that need the whole range treat it as lost.
//
// Other errors are Redis failures, wrapped.
func (l *Log) Range(ctx context.Context, app, room, epoch string, from, to uint64) ([]Entry, error) {
	if from == 0 {
		from = 1
	}
	_, meta, stream := l.roomKeys(app, room)
	var (
		metaCmd *redis.SliceCmd
		xCmd    *redis.XMessageSliceCmd
	)
	_, err := l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		metaCmd = p.HMGet(ctx, meta, "epoch", "offset")
		if from <= to {
			xCmd = p.XRange(ctx, stream, strconv.FormatUint(from, 10)+"-0", strconv.FormatUint(to, 10)+"-0")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("roomlog: range: %w", err)
	}
	mv := metaCmd.Val()
	cur, _ := mv[0].(string)
	if cur == "" || cur != epoch {
		return nil, ErrEpochChanged
	}
	offStr, _ := mv[1].(string)
	head, err := strconv.ParseUint(offStr, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("roomlog: range: bad offset %q: %w", offStr, err)
	}
	if to > head {
		to = head
	}
	if xCmd == nil || from > to {
		return nil, nil
	}
	msgs := xCmd.Val()
	entries := make([]Entry, 0, len(msgs))
	for _, m := range msgs {
		id, _, _ := strings.Cut(m.ID, "-")
		off, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("roomlog: range: bad stream id %q: %w", m.ID, err)
		}
		if off > to {
			break
		}
		d, _ := m.Values["d"].(string)
		entries = append(entries, Entry{Offset: off, Payload: []byte(d)})
	}
	// Entries are distinct and ascending within [from, to], so the count
	// alone tells whether every offset is there.
	if uint64(len(entries)) != to-from+1 {
		return entries, ErrTruncated
	}
	return entries, nil
}
