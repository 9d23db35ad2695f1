// Package presence keeps each room's presence set in Redis: who is in the
// room (one member per connection, identified by its session id), with
// their data; and turns every change into an event in the room's presence
// channel (protocol.PresenceChannel), an ordinary room log whose stream the
// gateways deliver in order and recover like room messages.
//
// Writers are the presence workers (services/presence), which apply the
// changes gateways enqueue (pkg/events); readers are the gateways
// (presence.get and presence.count). A change and its event are one Lua
// step (apply.lua, which includes roomlog's append function), so the order
// of the events is the order of the changes, whichever worker applied them.
//
// Expiry: every gateway holds a lease in Redis (Lease) that it renews well
// within NodeTTL. Sweep, run by one worker at a time, makes the members of
// nodes whose lease is gone leave, each with one leave event: the members of
// a crashed gateway leave by themselves. Per-node and per-member indexes
// (sets outside the room's hash slot, written before and pruned after the
// room's script) let Sweep and Detach find them; they may hold stale
// entries, which the script ignores.
package presence

import (
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/envelope"
	"github.com/roomcast/roomcast/pkg/nodelease"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/roomlog"
)

//go:embed apply.lua
var applySrc string

var applyScript = redis.NewScript(roomlog.AppendLua + "\n" + applySrc)

// Defaults for Config's zero values.
const (
	DefaultPrefix       = "rc:"
	DefaultTombstoneTTL = 10 * time.Minute
	DefaultNodeTTL      = 30 * time.Second
	// MaxPageSize caps presence.get pages.
	MaxPageSize = 1000
	// DefaultPageSize is the page size when the caller asks for none.
	DefaultPageSize = 100
)

// Config tunes a Store.
type Config struct {
	// Prefix starts every key (the cluster's ROOMCAST_REDIS_PREFIX).
	// Zero means "rc:".
	Prefix string
	// TombstoneTTL is how long a member's leave is remembered, so that an
	// enter made before the leave but delivered after it is ignored. It
	// must exceed the longest a task can wait in the queue. Zero means 10m.
	TombstoneTTL time.Duration
	// NodeTTL is the lifetime of a gateway's lease; a gateway renews it
	// every NodeTTL/3. Zero means 30s.
	NodeTTL time.Duration
}

// Store reads and changes presence sets.
type Store struct {
	rdb    redis.UniversalClient
	rlog   *roomlog.Log
	prefix string
	cfg    Config
}

// New returns a Store. rlog must use the same prefix: presence events go
// into its logs.
func New(rdb redis.UniversalClient, rlog *roomlog.Log, cfg Config) *Store {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.TombstoneTTL <= 0 {
		cfg.TombstoneTTL = DefaultTombstoneTTL
	}
	if cfg.NodeTTL <= 0 {
		cfg.NodeTTL = DefaultNodeTTL
	}
	return &Store{rdb: rdb, rlog: rlog, prefix: cfg.Prefix, cfg: cfg}
}

// Action is what a Change does.
type Action string

// Actions.
const (
	// Enter adds the member, or updates its data (the same data: nothing
	// happens except that the connection and node holding it change).
	Enter Action = "enter"
	// Leave removes the member.
	Leave Action = "leave"
	// Detach removes the member if ConnID still holds it (a dropped
	// connection whose client did not resume within the grace).
	Detach Action = "detach"
	// Sweep removes the member if Node still holds it (a dead node).
	Sweep Action = "sweep"
)

// Change is one change of one member of one room.
type Change struct {
	Action   Action
	App      string
	Room     string // the client's room name
	MemberID string
	ClientID string
	ConnID   string
	Node     string
	Data     []byte // member data, valid JSON or empty (Enter)
	// Seq orders the member's changes: unix microseconds at the gateway,
	// strictly increasing per connection.
	Seq int64
}

// Event is a presence event that a Change produced: the envelope for the
// presence channel, with its offset, ready to publish.
type Event struct {
	Envelope envelope.Envelope
	// Replay is set when the change had been applied before (a retried
	// task): the event is the one stored then.
	Replay bool
}

// ErrInvalid reports a change with missing fields.
var ErrInvalid = errors.New("presence: invalid change")

// Apply applies one change. It returns the event to publish, or nil when
// the change changed nothing (stale, repeated, or the member is not there).
func (s *Store) Apply(ctx context.Context, c Change) (*Event, error) {
	if c.App == "" || c.Room == "" || c.MemberID == "" || c.Seq <= 0 {
		return nil, fmt.Errorf("%w: app, room, member id and seq are required", ErrInvalid)
	}
	if c.Action == Enter && (c.ClientID == "" || c.ConnID == "" || c.Node == "") {
		return nil, fmt.Errorf("%w: enter needs client, connection and node", ErrInvalid)
	}
	channel := protocol.PresenceChannel(c.Room)
	if c.Action == Enter {
		// Index first: a member the script adds is always findable by
		// Detach and Sweep; an entry for a change that then does nothing is
		// stale and harmless.
		pipe := s.rdb.Pipeline()
		pipe.SAdd(ctx, s.nodeKey(c.Node), nodeEntry(c.App, c.Room, c.MemberID))
		pipe.SAdd(ctx, s.nodesKey(), c.Node)
		pipe.SAdd(ctx, s.memberKey(c.App, c.MemberID), c.Room)
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("presence: index: %w", err)
		}
	}
	epoch, err := roomlog.NewEpoch()
	if err != nil {
		return nil, err
	}
	now := time.Now().UnixMilli()
	heads := make([]any, 3)
	for i, ev := range []protocol.PresenceAction{protocol.PresenceJoin, protocol.PresenceUpdate, protocol.PresenceLeave} {
		env := envelope.Envelope{App: c.App, Room: channel, Event: string(ev), Timestamp: now}
		heads[i] = env.AppendHead(nil)
	}
	var prefix []byte
	if c.Action == Enter {
		prefix = memberPrefix(c.ClientID, c.MemberID, c.Data)
	}
	t := s.rlog.Target(c.App, channel)
	k := s.roomKeys(c.App, c.Room)
	tomb := k.base + ":tomb:" + c.MemberID
	res, err := applyScript.Run(ctx, s.rdb,
		[]string{k.members, k.records, k.clients, k.order, tomb, t.Meta, t.Stream},
		string(c.Action), c.MemberID, strconv.FormatInt(c.Seq, 10), c.ClientID, c.ConnID, c.Node,
		prefix, now, heads[0], heads[1], heads[2],
		epoch, t.StreamSize, t.StreamTTLms, t.MetaTTLms, s.cfg.TombstoneTTL.Milliseconds(),
	).Slice()
	if err != nil {
		return nil, fmt.Errorf("presence: apply: %w", err)
	}
	if len(res) != 6 {
		return nil, fmt.Errorf("presence: apply: unexpected reply %v", res)
	}
	kind, _ := res[0].(int64)
	if oldNode, _ := res[5].(string); oldNode != "" && (c.Action != Enter || oldNode != c.Node) {
		if err := s.rdb.SRem(ctx, s.nodeKey(oldNode), nodeEntry(c.App, c.Room, c.MemberID)).Err(); err != nil {
			return nil, fmt.Errorf("presence: index: %w", err)
		}
	}
	if kind != 0 && c.Action != Enter {
		if err := s.rdb.SRem(ctx, s.memberKey(c.App, c.MemberID), c.Room).Err(); err != nil {
			return nil, fmt.Errorf("presence: index: %w", err)
		}
	}
	if kind == 0 {
		return nil, nil
	}
	off, err := strconv.ParseUint(fmt.Sprint(res[1]), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("presence: apply: offset %v: %w", res[1], err)
	}
	ep, _ := res[2].(string)
	if kind == 1 {
		payload, _ := res[4].(string)
		env, err := envelope.Decode([]byte(payload))
		if err != nil {
			return nil, fmt.Errorf("presence: apply: stored event: %w", err)
		}
		env.Offset, env.Epoch = off, ep
		return &Event{Envelope: env}, nil
	}
	entries, err := s.rlog.Range(ctx, c.App, channel, ep, off, off)
	if err != nil || len(entries) != 1 {
		// The event is gone from the stream (expired, or a new epoch):
		// nothing left to publish again; live subscribers had it or
		// recovered past it.
		return nil, nil
	}
	env, err := envelope.Decode(entries[0].Payload)
	if err != nil {
		return nil, fmt.Errorf("presence: apply: stored event: %w", err)
	}
	env.Offset, env.Epoch = off, ep
	return &Event{Envelope: env, Replay: true}, nil
}

// Rooms returns the rooms where memberID may be present (a superset).
func (s *Store) Rooms(ctx context.Context, app, memberID string) ([]string, error) {
	rooms, err := s.rdb.SMembers(ctx, s.memberKey(app, memberID)).Result()
	if err != nil {
		return nil, fmt.Errorf("presence: member rooms: %w", err)
	}
	return rooms, nil
}

// Get returns up to limit members of a room in member-id order, starting
// after cursor ("" for the first page), and the cursor of the next page
// ("" when there is none). limit ≤ 0 means DefaultPageSize; it is capped at
// MaxPageSize.
func (s *Store) Get(ctx context.Context, app, room, cursor string, limit int) ([]protocol.PresenceMember, string, error) {
	if limit <= 0 {
		limit = DefaultPageSize
	}
	limit = min(limit, MaxPageSize)
	start := "-"
	if cursor != "" {
		after, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(after) == 0 {
			return nil, "", ErrCursor
		}
		start = "(" + string(after)
	}
	k := s.roomKeys(app, room)
	// One more than asked tells whether another page follows.
	ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: k.order, Start: start, Stop: "+", ByLex: true, Count: int64(limit + 1)}).Result()
	if err != nil {
		return nil, "", fmt.Errorf("presence: get: %w", err)
	}
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(ids[len(ids)-1]))
	}
	if len(ids) == 0 {
		return []protocol.PresenceMember{}, "", nil
	}
	vals, err := s.rdb.HMGet(ctx, k.members, ids...).Result()
	if err != nil {
		return nil, "", fmt.Errorf("presence: get: %w", err)
	}
	out := make([]protocol.PresenceMember, 0, len(vals))
	for _, v := range vals {
		raw, ok := v.(string)
		if !ok {
			continue // left between the two reads
		}
		m, err := ParseMember([]byte(raw))
		if err != nil {
			return nil, "", fmt.Errorf("presence: get: %w", err)
		}
		out = append(out, m)
	}
	return out, next, nil
}

// Member returns one member of a room, if present.
func (s *Store) Member(ctx context.Context, app, room, memberID string) (protocol.PresenceMember, bool, error) {
	raw, err := s.rdb.HGet(ctx, s.roomKeys(app, room).members, memberID).Bytes()
	if errors.Is(err, redis.Nil) {
		return protocol.PresenceMember{}, false, nil
	}
	if err != nil {
		return protocol.PresenceMember{}, false, fmt.Errorf("presence: member: %w", err)
	}
	m, err := ParseMember(raw)
	return m, err == nil, err
}

// ErrCursor reports a cursor that Get did not issue.
var ErrCursor = errors.New("presence: invalid cursor")

// Count returns a room's distinct clients and members (connections).
func (s *Store) Count(ctx context.Context, app, room string) (protocol.PresenceCount, error) {
	k := s.roomKeys(app, room)
	pipe := s.rdb.Pipeline()
	clients := pipe.HLen(ctx, k.clients)
	conns := pipe.ZCard(ctx, k.order)
	if _, err := pipe.Exec(ctx); err != nil {
		return protocol.PresenceCount{}, fmt.Errorf("presence: count: %w", err)
	}
	return protocol.PresenceCount{Clients: int(clients.Val()), Connections: int(conns.Val())}, nil
}

// Lease renews a gateway's lease for NodeTTL. lost reports that the lease
// had run out before this renewal (Redis was unreachable for a while): the
// node's members may have been swept, and the gateway should enter them
// again.
func (s *Store) Lease(ctx context.Context, node string) (lost bool, err error) {
	pipe := s.rdb.Pipeline()
	prev := pipe.SetArgs(ctx, s.aliveKey(node), "1", redis.SetArgs{TTL: s.cfg.NodeTTL, Get: true})
	pipe.SAdd(ctx, s.nodesKey(), node)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("presence: lease: %w", err)
	}
	return errors.Is(prev.Err(), redis.Nil), nil
}

// DeadNodes returns the nodes that had members and whose lease is gone.
func (s *Store) DeadNodes(ctx context.Context) ([]string, error) {
	nodes, err := s.rdb.SMembers(ctx, s.nodesKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("presence: nodes: %w", err)
	}
	if len(nodes) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	alive := make([]*redis.IntCmd, len(nodes))
	for i, n := range nodes {
		alive[i] = pipe.Exists(ctx, s.aliveKey(n))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("presence: nodes: %w", err)
	}
	var dead []string
	for i, n := range nodes {
		if alive[i].Val() == 0 {
			dead = append(dead, n)
		}
	}
	return dead, nil
}

// NodeMember is one entry of a node's index.
type NodeMember struct{ App, Room, MemberID string }

// NodeMembers returns up to count entries of a node's index (a superset of
// the members the node holds).
func (s *Store) NodeMembers(ctx context.Context, node string, count int) ([]NodeMember, error) {
	raw, err := s.rdb.SRandMemberN(ctx, s.nodeKey(node), int64(count)).Result()
	if err != nil {
		return nil, fmt.Errorf("presence: node members: %w", err)
	}
	out := make([]NodeMember, 0, len(raw))
	for _, e := range raw {
		parts := strings.SplitN(e, sep, 3)
		if len(parts) != 3 {
			_ = s.rdb.SRem(ctx, s.nodeKey(node), e).Err() // not ours: drop it
			continue
		}
		out = append(out, NodeMember{App: parts[0], Room: parts[1], MemberID: parts[2]})
	}
	return out, nil
}

// Forget drops an entry from a node's index, and the node from the
// registry once its index is empty.
func (s *Store) Forget(ctx context.Context, node string, m NodeMember) error {
	if err := s.rdb.SRem(ctx, s.nodeKey(node), nodeEntry(m.App, m.Room, m.MemberID)).Err(); err != nil {
		return fmt.Errorf("presence: forget: %w", err)
	}
	return nil
}

// ForgetNode drops a dead node from the registry if its index is empty.
func (s *Store) ForgetNode(ctx context.Context, node string) error {
	n, err := s.rdb.SCard(ctx, s.nodeKey(node)).Result()
	if err != nil {
		return fmt.Errorf("presence: forget node: %w", err)
	}
	if n == 0 {
		if err := s.rdb.SRem(ctx, s.nodesKey(), node).Err(); err != nil {
			return fmt.Errorf("presence: forget node: %w", err)
		}
	}
	return nil
}

// TryLock takes a cluster-wide lock named name for ttl; it reports whether
// this caller got it. Sweeps use it so that one worker sweeps at a time.
func (s *Store) TryLock(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.prefix+"presence:lock:"+name, "1", ttl).Result()
	if err != nil {
		return false, fmt.Errorf("presence: lock: %w", err)
	}
	return ok, nil
}

// sep separates the fields of index entries: a control character, which
// neither app ids, room names nor session ids may contain.
const sep = "\x1f"

func nodeEntry(app, room, member string) string { return app + sep + room + sep + member }

type roomKeys struct{ base, members, records, clients, order string }

// roomKeys are the keys of a room's presence set. They carry the hash tag
// of the room's presence channel, so apply.lua can append to its log.
func (s *Store) roomKeys(app, room string) roomKeys {
	base := s.prefix + "presence" + roomlog.HashTag(app, protocol.PresenceChannel(room)) + ":" + app + ":" + room
	return roomKeys{base: base, members: base + ":members", records: base + ":records", clients: base + ":clients", order: base + ":order"}
}

func (s *Store) nodeKey(node string) string  { return s.prefix + "presence:node:" + node }
func (s *Store) aliveKey(node string) string { return nodelease.Key(s.prefix, node) }
func (s *Store) nodesKey() string            { return s.prefix + "presence:nodes" }
func (s *Store) memberKey(app, member string) string {
	return s.prefix + "presence:member:" + app + ":" + member
}

// member is the JSON form of a member, as stored and as sent in events.
type member struct {
	ClientID     string          `json:"client_id"`
	ConnectionID string          `json:"connection_id"`
	Data         json.RawMessage `json:"data,omitempty"`
	Since        int64           `json:"since"`
}

// memberPrefix is a member's JSON up to (not including) its since field,
// which apply.lua adds: it keeps the first enter's time across updates.
func memberPrefix(clientID, memberID string, data []byte) []byte {
	b, _ := json.Marshal(struct {
		ClientID     string          `json:"client_id"`
		ConnectionID string          `json:"connection_id"`
		Data         json.RawMessage `json:"data,omitempty"`
	}{clientID, memberID, data})
	return b[:len(b)-1] // drop "}"
}

// ParseMember decodes a stored member.
func ParseMember(b []byte) (protocol.PresenceMember, error) {
	var m member
	if err := json.Unmarshal(b, &m); err != nil {
		return protocol.PresenceMember{}, fmt.Errorf("presence: member: %w", err)
	}
	pm := protocol.PresenceMember{ClientID: m.ClientID, ConnectionID: m.ConnectionID, Since: m.Since}
	if len(m.Data) > 0 {
		pm.Data = []byte(m.Data)
	}
	return pm, nil
}

// Frame turns an envelope into the frame a client receives: a presence
// event for the envelopes of presence channels, a message otherwise. The
// gateway's hub encodes every delivery through it.
func Frame(env *envelope.Envelope) protocol.ServerFrame {
	room, ok := protocol.ChannelRoom(env.Room)
	if !ok {
		msg := env.Message()
		return protocol.ServerFrame{Message: &msg}
	}
	m, err := ParseMember(env.Data)
	if err != nil {
		m = protocol.PresenceMember{}
	}
	return protocol.ServerFrame{Presence: &protocol.PresenceEvent{
		Room:      room,
		Action:    protocol.PresenceAction(env.Event),
		Member:    m,
		Offset:    env.Offset,
		Epoch:     env.Epoch,
		Timestamp: env.Timestamp,
	}}
}
