// Package ingest turns the tasks gateways and presence workers enqueue
// (pkg/events, queue <prefix>webhooks) into webhook events and records
// them for delivery to the endpoints that take their types.
//
// Event ids are derived from the task's content, so a retried task makes
// the same events with the same ids, and the store records each event once
// per endpoint.
//
// Room occupancy (room.occupied, room.vacated) is derived from room.joined
// and room.left with a cluster-wide member set per room in Redis
// (occupancy.lua): occupied when a join finds the set empty, vacated when a
// leave empties it. Connections of a gateway that crashed never leave; as
// for presence, gateways hold a lease (pkg/presence, renewed while the
// gateway's presence consumer is on) and Sweep, run by one process of the
// cluster at a time, removes the members of nodes whose lease ran out,
// vacating the rooms they leave empty.
package ingest

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/nodelease"
	"github.com/roomcast/roomcast/pkg/webhooks"
)

//go:embed occupancy.lua
var occupancySrc string

var occupancy = redis.NewScript(occupancySrc)

// Recorder records events for delivery (store.Store.Fanout).
type Recorder interface {
	Fanout(ctx context.Context, ev webhooks.Event) (int64, error)
}

// Ingester handles the webhooks queue's tasks.
type Ingester struct {
	rdb      redis.UniversalClient
	prefix   string
	rec      Recorder
	recorded func() // called after deliveries were added (wakes the dispatcher)
	log      *slog.Logger

	tasks, made, failed atomic.Uint64
}

// TombstoneTTL is how long a connection's leave is remembered, so that its
// join delivered after it is ignored.
const TombstoneTTL = 10 * time.Minute

// New returns an Ingester.
func New(rdb redis.UniversalClient, prefix string, rec Recorder, recorded func(), log *slog.Logger) *Ingester {
	if recorded == nil {
		recorded = func() {}
	}
	return &Ingester{rdb: rdb, prefix: prefix, rec: rec, recorded: recorded, log: log}
}

// Stats are counters for metrics.
type Stats struct{ Tasks, Events, Failed uint64 }

// Stats returns the counters.
func (in *Ingester) Stats() Stats {
	return Stats{Tasks: in.tasks.Load(), Events: in.made.Load(), Failed: in.failed.Load()}
}

// Register adds the handlers to mux.
func (in *Ingester) Register(mux *asynq.ServeMux) {
	for _, typ := range events.Consumers["webhooks"] {
		mux.HandleFunc(typ, in.handle)
	}
}

func (in *Ingester) handle(ctx context.Context, t *asynq.Task) error {
	evs, err := in.events(ctx, t)
	if err == nil {
		var added int64
		for _, ev := range evs {
			var n int64
			if n, err = in.rec.Fanout(ctx, ev); err != nil {
				break
			}
			added += n
		}
		if added > 0 {
			in.recorded()
		}
	}
	switch {
	case err == nil:
		in.tasks.Add(1)
		in.made.Add(uint64(len(evs)))
	case errors.Is(err, asynq.SkipRetry):
		in.log.Warn("dropping bad task", "type", t.Type(), "err", err)
	default:
		in.failed.Add(1)
	}
	return err
}

// eventID derives an event id from its parts.
func eventID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x1f")))
	return "evt_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:15]))
}

func ms(at int64) time.Time { return time.UnixMilli(at).UTC() }

func raw(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func (in *Ingester) events(ctx context.Context, t *asynq.Task) ([]webhooks.Event, error) {
	switch t.Type() {
	case events.TypeConnectionOpened, events.TypeConnectionClosed:
		var p events.Connection
		if err := events.Decode(t, &p); err != nil {
			return nil, err
		}
		typ := webhooks.ConnectionOpened
		data := map[string]any{"client_id": p.ClientID, "connection_id": p.ConnID, "session_id": p.SessionID, "node": p.Node}
		if t.Type() == events.TypeConnectionClosed {
			typ, data["code"] = webhooks.ConnectionClosed, p.Code
		}
		return []webhooks.Event{{ID: eventID(typ, p.App, p.ConnID), Type: typ, App: p.App, Time: ms(p.At), Data: raw(data)}}, nil

	case events.TypeRoomJoined, events.TypeRoomLeft:
		var p events.Membership
		if err := events.Decode(t, &p); err != nil {
			return nil, err
		}
		return in.membership(ctx, t.Type() == events.TypeRoomJoined, p)

	case events.TypeMessagePublished:
		var p events.Published
		if err := events.Decode(t, &p); err != nil {
			return nil, err
		}
		data := map[string]any{"event": p.Event, "from": p.From, "transient": p.Transient, "bytes": p.Bytes}
		if !p.Transient {
			data["offset"], data["epoch"] = p.Offset, p.Epoch
		}
		switch {
		case len(p.Data) == 0:
		case p.Binary || !json.Valid(p.Data):
			// Bytes published as binary, even when they happen to be JSON
			// text. (Unmarked data that is not JSON comes from a gateway
			// that predates the mark: it was published as bytes.)
			data["data_base64"] = p.Data
		default:
			data["data"] = json.RawMessage(p.Data)
		}
		id := eventID(webhooks.MessagePublished, p.App, p.Room, p.Epoch, strconv.FormatUint(p.Offset, 10))
		if p.Transient || p.Offset == 0 {
			sum := sha256.Sum256(t.Payload())
			id = eventID(webhooks.MessagePublished, string(sum[:]))
		}
		return []webhooks.Event{{ID: id, Type: webhooks.MessagePublished, App: p.App, Room: p.Room, Time: ms(p.At), Data: raw(data)}}, nil

	case events.TypePresenceEvent:
		var p events.PresenceEvent
		if err := events.Decode(t, &p); err != nil {
			return nil, err
		}
		typ, ok := map[string]string{"join": webhooks.MemberJoined, "update": webhooks.MemberUpdated, "leave": webhooks.MemberLeft}[p.Action]
		if !ok {
			return nil, fmt.Errorf("presence action %q: %w", p.Action, asynq.SkipRetry)
		}
		data := map[string]any{"client_id": p.ClientID, "connection_id": p.MemberID, "offset": p.Offset, "epoch": p.Epoch}
		if len(p.Data) > 0 {
			data["data"] = p.Data
		}
		return []webhooks.Event{{ID: eventID(typ, p.App, p.Room, p.Epoch, strconv.FormatUint(p.Offset, 10)), Type: typ, App: p.App,
			Room: p.Room, Time: ms(p.At), Data: raw(data)}}, nil
	}
	return nil, fmt.Errorf("unknown task type %q: %w", t.Type(), asynq.SkipRetry)
}

// sep separates index entry fields: no app, room or connection id has it.
const sep = "\x1f"

func (in *Ingester) roomKey(app, room string) string {
	tag := sha256.Sum256([]byte(app + sep + room))
	return in.prefix + "webhooks:occ:{" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(tag[:10]) + "}:" + app + ":" + room
}
func (in *Ingester) nodeKey(node string) string { return in.prefix + "webhooks:node:" + node }
func (in *Ingester) nodesKey() string           { return in.prefix + "webhooks:nodes" }

func (in *Ingester) membership(ctx context.Context, join bool, p events.Membership) ([]webhooks.Event, error) {
	if p.App == "" || p.Room == "" || p.ConnID == "" || p.Node == "" {
		return nil, fmt.Errorf("membership without app, room, connection or node: %w", asynq.SkipRetry)
	}
	key, action := p.At*2, "join"
	if !join {
		key, action = key+1, "leave"
	}
	entry := p.App + sep + p.Room + sep + p.ConnID
	if join {
		pipe := in.rdb.Pipeline()
		pipe.SAdd(ctx, in.nodeKey(p.Node), entry)
		pipe.SAdd(ctx, in.nodesKey(), p.Node)
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("occupancy index: %w", err)
		}
	}
	rk := in.roomKey(p.App, p.Room)
	res, err := occupancy.Run(ctx, in.rdb, []string{rk + ":members", rk + ":tomb:" + p.ConnID},
		action, p.ConnID, p.Node, key, TombstoneTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("occupancy: %w", err)
	}
	if !join {
		if err := in.rdb.SRem(ctx, in.nodeKey(p.Node), entry).Err(); err != nil {
			return nil, fmt.Errorf("occupancy index: %w", err)
		}
	}
	data := raw(map[string]any{"client_id": p.ClientID, "connection_id": p.ConnID, "node": p.Node})
	switch res[0] {
	case 1:
		return []webhooks.Event{{ID: eventID(webhooks.RoomOccupied, p.App, p.Room, p.ConnID, strconv.FormatInt(key, 10)),
			Type: webhooks.RoomOccupied, App: p.App, Room: p.Room, Time: ms(p.At), Data: data}}, nil
	case -1:
		return []webhooks.Event{{ID: eventID(webhooks.RoomVacated, p.App, p.Room, p.ConnID, strconv.FormatInt(key, 10)),
			Type: webhooks.RoomVacated, App: p.App, Room: p.Room, Time: ms(p.At), Data: data}}, nil
	}
	return nil, nil
}

// Sweep ends the room memberships of gateways whose lease ran out, if no
// other process swept within interval, recording room.vacated for the
// rooms they leave empty. A node counts as dead only after a sweep saw its
// lease alive once, so gateways that hold no lease are never swept.
func (in *Ingester) Sweep(ctx context.Context, interval time.Duration) (int, error) {
	ok, err := in.rdb.SetNX(ctx, in.prefix+"webhooks:lock:sweep", "1", interval*9/10).Result()
	if err != nil || !ok {
		return 0, err
	}
	nodes, err := in.rdb.SMembers(ctx, in.nodesKey()).Result()
	if err != nil {
		return 0, err
	}
	vacated := 0
	leases := &nodelease.Tracker{RDB: in.rdb, Prefix: in.prefix, Seen: in.prefix + "webhooks:leased"}
	for _, node := range nodes {
		state, err := leases.Check(ctx, node)
		if err != nil {
			return vacated, err
		}
		switch state {
		case nodelease.Alive:
			continue
		case nodelease.Unknown:
			if in.rdb.SCard(ctx, in.nodeKey(node)).Val() == 0 {
				in.rdb.SRem(ctx, in.nodesKey(), node)
			}
			continue
		}
		n, err := in.sweepNode(ctx, node)
		vacated += n
		if err != nil {
			return vacated, err
		}
		if err := leases.Forget(ctx, node); err != nil {
			return vacated, err
		}
		in.log.Info("swept dead gateway's room memberships", "dead_node", node, "vacated", n)
	}
	return vacated, nil
}

func (in *Ingester) sweepNode(ctx context.Context, node string) (int, error) {
	vacated := 0
	now := time.Now().UnixMilli()
	for {
		entries, err := in.rdb.SRandMemberN(ctx, in.nodeKey(node), 500).Result()
		if err != nil {
			return vacated, err
		}
		if len(entries) == 0 {
			return vacated, in.rdb.SRem(ctx, in.nodesKey(), node).Err()
		}
		for _, e := range entries {
			parts := strings.SplitN(e, sep, 3)
			if len(parts) == 3 {
				app, room, conn := parts[0], parts[1], parts[2]
				rk := in.roomKey(app, room)
				res, err := occupancy.Run(ctx, in.rdb, []string{rk + ":members", rk + ":tomb:" + conn}, "sweep", conn, node, 0, 0).Int64Slice()
				if err != nil {
					return vacated, err
				}
				if res[0] == -1 {
					ev := webhooks.Event{ID: eventID(webhooks.RoomVacated, app, room, conn, "sweep", node), Type: webhooks.RoomVacated,
						App: app, Room: room, Time: ms(now), Data: raw(map[string]any{"connection_id": conn, "node": node, "reason": "node_lost"})}
					if _, err := in.rec.Fanout(ctx, ev); err != nil {
						return vacated, err
					}
					in.recorded()
					vacated++
				}
			}
			if err := in.rdb.SRem(ctx, in.nodeKey(node), e).Err(); err != nil {
				return vacated, err
			}
		}
	}
}

// RunSweeper sweeps every interval until ctx ends.
func (in *Ingester) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := in.Sweep(ctx, interval); err != nil && ctx.Err() == nil {
				in.log.Warn("sweep failed", "err", err)
			}
		}
	}
}
