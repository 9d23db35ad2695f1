// Package testenv gives tests their own isolated slice of the real services
// on this machine: a fresh RabbitMQ vhost, a Redis key prefix. Tests never
// share state, so packages run in parallel and repeatedly.
//
// The services' addresses come from ROOMCAST_TEST_AMQP_URL (default
// amqp://guest:guest@127.0.0.1:5672/) and ROOMCAST_TEST_REDIS_URL (default
// redis://127.0.0.1:6379/0). A missing service fails the test: it is never
// skipped silently.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// AMQPBaseURL is the broker URL without a vhost.
func AMQPBaseURL() string {
	if u := os.Getenv("ROOMCAST_TEST_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// RedisURL is the Redis server tests use.
func RedisURL() string {
	if u := os.Getenv("ROOMCAST_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// RandomName returns prefix followed by 12 random hex characters.
func RandomName(prefix string) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// AMQPVHost creates a fresh RabbitMQ vhost for the test, grants the
// default user full rights on it, deletes it when the test ends, and
// returns an AMQP URL that points at it.
func AMQPVHost(t testing.TB) string {
	t.Helper()
	vhost := RandomName("rc-test-")
	rabbitmqctl(t, "add_vhost", vhost)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Best effort: a leftover vhost is harmless to other tests.
		_ = exec.CommandContext(ctx, "rabbitmqctl", "-q", "delete_vhost", vhost).Run()
	})
	u, err := url.Parse(AMQPBaseURL())
	if err != nil {
		t.Fatalf("testenv: bad ROOMCAST_TEST_AMQP_URL: %v", err)
	}
	rabbitmqctl(t, "set_permissions", "-p", vhost, u.User.Username(), ".*", ".*", ".*")
	u.Path = "/" + vhost
	u.RawPath = "/" + url.PathEscape(vhost)
	return u.String()
}

func rabbitmqctl(t testing.TB, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Redis returns a client for the test Redis server and a key prefix unique
// to this test. Every key under the prefix is deleted when the test ends;
// nothing else is touched (no FLUSHALL).
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	opts, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("testenv: bad ROOMCAST_TEST_REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("testenv: redis at %s is not reachable: %v", RedisURL(), err)
	}
	prefix := RandomName("rctest:") + ":"
	t.Cleanup(func() {
		DeletePrefix(rdb, prefix)
		_ = rdb.Close()
	})
	return rdb, prefix
}

// DeletePrefix deletes every key that starts with prefix.
func DeletePrefix(rdb *redis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			rdb.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		rdb.Unlink(ctx, batch...)
	}
}

// WaitFor polls cond every 10ms until it returns true or the deadline
// passes, then fails the test with msg. Tests wait on conditions, never on
// fixed sleeps.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
