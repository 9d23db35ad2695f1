// Package abuse limits how often the end-user endpoints that take a
// secret or send mail may be called, per client IP and per account (an
// email or a user id), with GCRA limits kept in Redis
// (github.com/go-redis/redis_rate), so every replica of the auth service
// counts together.
package abuse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Rate is a limit: N events per Period (a burst of N, refilled evenly).
// Zero N means no limit.
type Rate struct {
	N      int
	Period time.Duration
}

// ParseRate reads "10/1m", "30/m", "10/h" or "0" (no limit).
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "0" || s == "" {
		return Rate{}, nil
	}
	ns, ps, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(ns)
	if !ok || err != nil || n < 0 {
		return Rate{}, fmt.Errorf("abuse: rate %q: want N/period, e.g. 10/1m", s)
	}
	switch ps {
	case "s":
		ps = "1s"
	case "m":
		ps = "1m"
	case "h":
		ps = "1h"
	}
	d, err := time.ParseDuration(ps)
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("abuse: rate %q: want N/period, e.g. 10/1m", s)
	}
	return Rate{N: n, Period: d}, nil
}

// Check is one limit to take a token from: Name says which (it is part of
// the Redis key), Key whose (an IP, an email, a user id).
type Check struct {
	Name string
	Rate Rate
	Key  string
}

// LimitedError is over a limit; RetryAfter says when a try would pass.
type LimitedError struct {
	Name       string
	RetryAfter time.Duration
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("abuse: over the %s limit; retry after %s", e.Name, e.RetryAfter)
}

// Limiter checks limits in Redis.
type Limiter struct {
	rl     *redis_rate.Limiter
	prefix string
}

// New returns a Limiter whose keys start with prefix (the cluster's Redis
// prefix); redis_rate puts "rate:" in front.
func New(rdb redis.UniversalClient, prefix string) *Limiter {
	return &Limiter{rl: redis_rate.NewLimiter(rdb), prefix: prefix}
}

// Allow takes one event from every check and fails with *LimitedError if
// any is over its limit. Every check is counted even when an earlier one
// failed, so an attacker spreading guesses over IPs still spends the
// account's budget. A Redis error fails closed: these limits are what
// makes guessing codes hopeless.
func (l *Limiter) Allow(ctx context.Context, checks ...Check) error {
	var limited *LimitedError
	for _, c := range checks {
		if c.Rate.N <= 0 || c.Key == "" {
			continue
		}
		res, err := l.rl.Allow(ctx, l.key(c), redis_rate.Limit{Rate: c.Rate.N, Burst: c.Rate.N, Period: c.Rate.Period})
		if err != nil {
			return fmt.Errorf("abuse: %w", err)
		}
		if res.Allowed == 0 && (limited == nil || res.RetryAfter > limited.RetryAfter) {
			limited = &LimitedError{Name: c.Name, RetryAfter: res.RetryAfter}
		}
	}
	if limited != nil {
		return limited
	}
	return nil
}

// Reset forgets a check's count (e.g. after a successful sign-in, so the
// failures before it do not lock the user out).
func (l *Limiter) Reset(ctx context.Context, c Check) error {
	if err := l.rl.Reset(ctx, l.key(c)); err != nil {
		return fmt.Errorf("abuse: %w", err)
	}
	return nil
}

// key hashes the account or IP so keys are short and carry no email.
func (l *Limiter) key(c Check) string {
	sum := sha256.Sum256([]byte(c.Key))
	return l.prefix + "auth:limit:" + c.Name + ":" + hex.EncodeToString(sum[:16])
}

// IsLimited reports whether err is a *LimitedError and returns it.
func IsLimited(err error) (*LimitedError, bool) {
	var le *LimitedError
	ok := errors.As(err, &le)
	return le, ok
}
