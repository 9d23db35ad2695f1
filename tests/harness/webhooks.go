package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/roomcast/roomcast/pkg/testenv"
)

// WebhooksMasterKey is the master key the webhooks processes of this Env
// share (derived from its prefix, so several processes can share one
// database).
func (e *Env) WebhooksMasterKey() string {
	sum := sha256.Sum256([]byte("webhooks-master:" + e.RedisPrefix))
	return hex.EncodeToString(sum[:])
}

// WebhooksEnv is the environment a webhooks process of this Env runs with,
// against the PostgreSQL database databaseURL (the test's own).
func (e *Env) WebhooksEnv(node, databaseURL string) []string {
	return []string{
		"ROOMCAST_REDIS_URL=" + testenv.RedisURL(),
		"ROOMCAST_REDIS_PREFIX=" + e.RedisPrefix,
		"ROOMCAST_KEYS=" + e.Key.String(),
		"ROOMCAST_NODE_ID=" + node,
		"ROOMCAST_LOG_LEVEL=debug",
		"WEBHOOKS_ADDR=127.0.0.1:0",
		"WEBHOOKS_DATABASE_URL=" + databaseURL,
		"WEBHOOKS_MASTER_KEY=" + e.WebhooksMasterKey(),
	}
}

// Webhooks starts a webhooks process and waits until it listens.
func (e *Env) Webhooks(t testing.TB, node, databaseURL string, extraEnv ...string) *Process {
	t.Helper()
	return Start(t, Binary(t, "webhooks"), append(e.WebhooksEnv(node, databaseURL), extraEnv...))
}
