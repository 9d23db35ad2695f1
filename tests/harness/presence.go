package harness

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/testenv"
)

// PresenceEnv is the environment a presence worker of this Env runs with.
func (e *Env) PresenceEnv(node string) []string {
	return []string{
		"ROOMCAST_AMQP_URL=" + e.AMQPURL,
		"ROOMCAST_REDIS_URL=" + testenv.RedisURL(),
		"ROOMCAST_REDIS_PREFIX=" + e.RedisPrefix,
		"ROOMCAST_NODE_ID=" + node,
		"ROOMCAST_LOG_LEVEL=debug",
		"PRESENCE_ADDR=127.0.0.1:0",
	}
}

// Presence starts a presence worker process and waits until it listens.
func (e *Env) Presence(t testing.TB, node string, extraEnv ...string) *Process {
	t.Helper()
	return Start(t, Binary(t, "presence"), append(e.PresenceEnv(node), extraEnv...))
}

// deleteQueues removes this Env's asynq queues: asynq's keys carry the
// queue name (which holds the Env's prefix), not the prefix itself.
func deleteQueues(rdb *redis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for c := range events.Consumers {
		q := events.Queue(prefix, c)
		testenv.DeletePrefix(rdb, "asynq:{"+q+"}")
		rdb.SRem(ctx, "asynq:queues", q)
	}
}
