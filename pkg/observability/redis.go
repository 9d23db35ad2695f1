package observability

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// RedisErrors counts failed Redis calls of every client it is added to
// (rdb.AddHook(hook)) as roomcast_redis_errors_total{kind="dial"|"command"}.
// A missing key (redis.Nil), a cancelled caller and a script not cached
// yet (NOSCRIPT, which go-redis retries with EVAL) are not errors.
func RedisErrors(reg prometheus.Registerer) redis.Hook {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roomcast_redis_errors_total",
		Help: "Failed Redis calls, by kind (dial or command).",
	}, []string{"kind"})
	reg.MustRegister(c)
	// Expose both series from the start, so dashboards and alerts see 0.
	c.WithLabelValues("dial")
	c.WithLabelValues("command")
	return redisHook{c: c}
}

type redisHook struct{ c *prometheus.CounterVec }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if countable(err) {
			h.c.WithLabelValues("dial").Inc()
		}
		return conn, err
	}
}

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if countable(err) {
			h.c.WithLabelValues("command").Inc()
		}
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if countable(err) {
			h.c.WithLabelValues("command").Inc()
		}
		return err
	}
}

func countable(err error) bool {
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, context.Canceled):
		return false
	case strings.HasPrefix(err.Error(), "NOSCRIPT"):
		return false
	}
	return true
}

// RedisCheck is the readiness check of a service that needs Redis.
func RedisCheck(rdb redis.UniversalClient) Check {
	return Check{Name: "redis", Func: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }}
}
