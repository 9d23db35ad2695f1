package harness

import (
	"testing"

	"github.com/roomcast/roomcast/pkg/testenv"
)

// MetricsEnv is the environment a metrics service of this Env runs with,
// on database db (testenv.Postgres; replicas share one).
func (e *Env) MetricsEnv(node, db string) []string {
	return []string{
		"ROOMCAST_REDIS_URL=" + testenv.RedisURL(),
		"ROOMCAST_REDIS_PREFIX=" + e.RedisPrefix,
		"ROOMCAST_NODE_ID=" + node,
		"ROOMCAST_LOG_LEVEL=debug",
		"ROOMCAST_KEYS=" + e.Key.String(),
		"METRICS_ADDR=127.0.0.1:0",
		"METRICS_DATABASE_URL=" + db,
		"METRICS_POLL_INTERVAL=10ms",
	}
}

// Metrics starts a metrics service process and waits until it listens.
func (e *Env) Metrics(t testing.TB, node, db string, extraEnv ...string) *Process {
	t.Helper()
	return Start(t, Binary(t, "metrics"), append(e.MetricsEnv(node, db), extraEnv...))
}
