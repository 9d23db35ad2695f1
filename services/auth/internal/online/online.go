// Package online records which end users are connected to a gateway, from
// the connection.opened and connection.closed events gateways enqueue for
// the "users" consumer (pkg/events), so the admin API can show a user's
// online status and when they were last seen.
//
// Per user, Redis keeps the open connections (connection id → gateway
// node) and the time of the last event. A connection counts as open only
// while its gateway's lease (pkg/presence.Store.Lease) exists: a crashed
// gateway sends no connection.closed, but its lease runs out within the
// node TTL, and its connections stop counting then. Events arrive at
// least once and in any order: a close is remembered for a while
// (tombstones), so an open delivered after its close is ignored.
package online

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/nodelease"
)

// Consumer is the name of the events consumer the auth service serves
// (GATEWAY_EVENT_CONSUMERS=…,users).
const Consumer = "users"

// tombstoneTTL is how long a close is remembered against a late open: far
// longer than a task waits in the queue.
const tombstoneTTL = time.Hour

// Tracker records and reads online status.
type Tracker struct {
	rdb    redis.UniversalClient
	prefix string
	// IsUser tells which client ids are users (others are ignored).
	isUser func(clientID string) bool
	now    func() time.Time
}

// New creates a Tracker on rdb under prefix (the cluster's Redis prefix,
// which is also where gateways keep their leases).
func New(rdb redis.UniversalClient, prefix string, isUser func(string) bool) *Tracker {
	return &Tracker{rdb: rdb, prefix: prefix, isUser: isUser, now: time.Now}
}

func (t *Tracker) userKey(app, user, what string) string {
	// The hash tag keeps a user's keys in one cluster slot for the scripts.
	return t.prefix + "users:online:{" + app + "\x1f" + user + "}:" + what
}

// leaseKey is a gateway's lease (pkg/nodelease).
func (t *Tracker) leaseKey(node string) string { return nodelease.Key(t.prefix, node) }

//go:embed open.lua
var openScriptSrc string

var openScript = redis.NewScript(openScriptSrc)

//go:embed close.lua
var closeScriptSrc string

var closeScript = redis.NewScript(closeScriptSrc)

// Opened records that user's connection conn opened on node at at.
func (t *Tracker) Opened(ctx context.Context, app, user, conn, node string, at time.Time) error {
	keys := []string{t.userKey(app, user, "conns"), t.userKey(app, user, "closed"), t.userKey(app, user, "seen")}
	if err := openScript.Run(ctx, t.rdb, keys, conn, node, at.UnixMilli(), tombstoneTTL.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("online: opened: %w", err)
	}
	return t.prune(ctx, app, user)
}

// Closed records that user's connection conn closed at at.
func (t *Tracker) Closed(ctx context.Context, app, user, conn string, at time.Time) error {
	keys := []string{t.userKey(app, user, "conns"), t.userKey(app, user, "closed"), t.userKey(app, user, "seen")}
	if err := closeScript.Run(ctx, t.rdb, keys, conn, at.UnixMilli(), tombstoneTTL.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("online: closed: %w", err)
	}
	return nil
}

// open returns the user's connections (conn → node) and, per node,
// whether its lease exists.
func (t *Tracker) open(ctx context.Context, app, user string) (map[string]string, map[string]bool, error) {
	conns, err := t.rdb.HGetAll(ctx, t.userKey(app, user, "conns")).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("online: %w", err)
	}
	alive := map[string]bool{}
	for _, node := range conns {
		if _, ok := alive[node]; ok {
			continue
		}
		n, err := t.rdb.Exists(ctx, t.leaseKey(node)).Result()
		if err != nil {
			return nil, nil, fmt.Errorf("online: %w", err)
		}
		alive[node] = n == 1
	}
	return conns, alive, nil
}

// prune forgets the connections of gateways whose lease is gone, when the
// user connects again, so crashed gateways do not pile up entries.
func (t *Tracker) prune(ctx context.Context, app, user string) error {
	conns, alive, err := t.open(ctx, app, user)
	if err != nil {
		return err
	}
	for conn, node := range conns {
		if !alive[node] {
			if err := t.rdb.HDel(ctx, t.userKey(app, user, "conns"), conn).Err(); err != nil {
				return fmt.Errorf("online: %w", err)
			}
		}
	}
	return nil
}

// Status reports whether user has a connection on a live gateway, and
// when they were last seen (now, if online; nil if never).
func (t *Tracker) Status(ctx context.Context, app, user string) (bool, *time.Time, error) {
	conns, alive, err := t.open(ctx, app, user)
	if err != nil {
		return false, nil, err
	}
	for _, node := range conns {
		if alive[node] {
			now := t.now().UTC().Truncate(time.Millisecond)
			return true, &now, nil
		}
	}
	s, err := t.rdb.Get(ctx, t.userKey(app, user, "seen")).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, fmt.Errorf("online: %w", err)
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return false, nil, nil
	}
	seen := time.UnixMilli(ms).UTC()
	return false, &seen, nil
}

// Register adds the handlers of the users consumer's task types to mux.
func (t *Tracker) Register(mux *asynq.ServeMux) {
	mux.HandleFunc(events.TypeConnectionOpened, func(ctx context.Context, task *asynq.Task) error {
		var c events.Connection
		if err := events.Decode(task, &c); err != nil {
			return err
		}
		if !t.isUser(c.ClientID) {
			return nil
		}
		return t.Opened(ctx, c.App, c.ClientID, c.ConnID, c.Node, time.UnixMilli(c.At))
	})
	mux.HandleFunc(events.TypeConnectionClosed, func(ctx context.Context, task *asynq.Task) error {
		var c events.Connection
		if err := events.Decode(task, &c); err != nil {
			return err
		}
		if !t.isUser(c.ClientID) {
			return nil
		}
		return t.Closed(ctx, c.App, c.ClientID, c.ConnID, time.UnixMilli(c.At))
	})
}
