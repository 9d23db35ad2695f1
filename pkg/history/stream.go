package history

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/roomlog"
)

// RedisStream reads the rooms' recovery streams. It only reads: it never
// creates an epoch or refreshes a TTL.
type RedisStream struct {
	rdb redis.UniversalClient
	log *roomlog.Log
}

// NewRedisStream reads through log, whose keys live in rdb.
func NewRedisStream(rdb redis.UniversalClient, log *roomlog.Log) *RedisStream {
	return &RedisStream{rdb: rdb, log: log}
}

// Head implements Stream.
func (s *RedisStream) Head(ctx context.Context, app, room string) (protocol.Position, bool, error) {
	v, err := s.rdb.HMGet(ctx, s.log.Target(app, room).Meta, "epoch", "offset").Result()
	if err != nil {
		return protocol.Position{}, false, fmt.Errorf("history: room head: %w", err)
	}
	epoch, _ := v[0].(string)
	off, _ := v[1].(string)
	if epoch == "" {
		return protocol.Position{}, false, nil
	}
	if off == "" {
		off = "0"
	}
	n, err := strconv.ParseUint(off, 10, 64)
	if err != nil {
		return protocol.Position{}, false, fmt.Errorf("history: room head: bad offset %q", off)
	}
	return protocol.Position{Epoch: epoch, Offset: n}, true, nil
}

// Range implements Stream.
func (s *RedisStream) Range(ctx context.Context, app, room, epoch string, from, to uint64) ([]roomlog.Entry, error) {
	return s.log.Range(ctx, app, room, epoch, from, to)
}
