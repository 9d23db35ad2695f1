// Package nodelease tells which gateways are gone. Every gateway that
// feeds a node-tracking consumer (presence, webhooks, metrics) keeps a
// lease in Redis, renewed by pkg/presence.Store.Lease well within its TTL;
// a gateway killed with SIGKILL or cut off stops renewing, and its lease
// runs out. The consumers then undo what its connections left behind.
package nodelease

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Key is a gateway's lease key under the Redis prefix.
func Key(prefix, node string) string { return prefix + "presence:node:" + node + ":alive" }

// Tracker decides, for one consumer, whether a node is dead: its lease is
// gone, and a check saw it alive once before — so a gateway that never
// held a lease (an old version, or one started without a node-tracking
// consumer) is never taken for dead. What it saw is kept in a Redis set
// named Seen, so every process of the consumer agrees.
type Tracker struct {
	RDB    redis.UniversalClient
	Prefix string
	// Seen names the set of nodes seen alive, e.g. "<prefix>metrics:leased".
	Seen string
}

// State is what a check found of a node.
type State int

const (
	// Alive: the node holds its lease.
	Alive State = iota
	// Unknown: no lease, and none was ever seen (not a node to sweep).
	Unknown
	// Dead: the lease ran out after it was seen alive; sweep the node,
	// then Forget it.
	Dead
)

// Check tells node's state, recording it as seen when alive.
func (t *Tracker) Check(ctx context.Context, node string) (State, error) {
	alive, err := t.RDB.Exists(ctx, Key(t.Prefix, node)).Result()
	if err != nil {
		return Unknown, fmt.Errorf("nodelease: %w", err)
	}
	if alive == 1 {
		if err := t.RDB.SAdd(ctx, t.Seen, node).Err(); err != nil {
			return Unknown, fmt.Errorf("nodelease: %w", err)
		}
		return Alive, nil
	}
	seen, err := t.RDB.SIsMember(ctx, t.Seen, node).Result()
	if err != nil {
		return Unknown, fmt.Errorf("nodelease: %w", err)
	}
	if seen {
		return Dead, nil
	}
	return Unknown, nil
}

// Forget drops node once the consumer has swept it.
func (t *Tracker) Forget(ctx context.Context, node string) error {
	if err := t.RDB.SRem(ctx, t.Seen, node).Err(); err != nil {
		return fmt.Errorf("nodelease: %w", err)
	}
	return nil
}
