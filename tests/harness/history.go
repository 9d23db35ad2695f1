package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"testing"

	"github.com/roomcast/roomcast/pkg/testenv"
	"github.com/roomcast/roomcast/services/history/historytest"
)

// historyDBs holds each Env's history database, created on first use and
// shared by all its history processes (replicas share one archive).
var (
	historyDBMu sync.Mutex
	historyDBs  = map[*Env]string{}
)

// HistoryDatabase is this Env's history database (created on first call,
// dropped when the test that created it ends).
func (e *Env) HistoryDatabase(t testing.TB) string {
	t.Helper()
	historyDBMu.Lock()
	defer historyDBMu.Unlock()
	if u, ok := historyDBs[e]; ok {
		return u
	}
	u := historytest.Database(t)
	historyDBs[e] = u
	t.Cleanup(func() {
		historyDBMu.Lock()
		delete(historyDBs, e)
		historyDBMu.Unlock()
	})
	return u
}

// ServiceToken is the service token of this Env's processes (derived from
// its prefix).
func (e *Env) ServiceToken() string {
	sum := sha256.Sum256([]byte("service-token:" + e.RedisPrefix))
	return hex.EncodeToString(sum[:16])
}

// HistoryEnv is the environment a history process of this Env runs with.
func (e *Env) HistoryEnv(t testing.TB, node string) []string {
	return []string{
		"ROOMCAST_REDIS_URL=" + testenv.RedisURL(),
		"ROOMCAST_REDIS_PREFIX=" + e.RedisPrefix,
		"ROOMCAST_NODE_ID=" + node,
		"ROOMCAST_LOG_LEVEL=debug",
		"ROOMCAST_SERVICE_TOKEN=" + e.ServiceToken(),
		"HISTORY_ADDR=127.0.0.1:0",
		"HISTORY_DATABASE_URL=" + e.HistoryDatabase(t),
	}
}

// History starts a history process and waits until it listens.
func (e *Env) History(t testing.TB, node string, extraEnv ...string) *Process {
	t.Helper()
	return Start(t, Binary(t, "history"), append(e.HistoryEnv(t, node), extraEnv...))
}

// GatewayHistoryEnv is what a gateway needs to archive its messages with
// the history service and read them back through h.
func (e *Env) GatewayHistoryEnv(h *Process) []string {
	return []string{
		"GATEWAY_EVENT_CONSUMERS=presence,history",
		"GATEWAY_HISTORY_URL=" + h.HTTPURL(),
		"ROOMCAST_SERVICE_TOKEN=" + e.ServiceToken(),
	}
}
