package app

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/presence"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// countingStore keeps a cluster-wide count of presence members in Redis
// (<prefix>presence:stats:members) from the changes the workers apply:
// +1 per join, -1 per leave; replays of a change already applied (retried
// tasks) count nothing. A worker that dies between applying a change and
// counting it leaves the count off by one until the next restart of the
// count (delete the key): it is an operator's gauge, not a bill — the
// metrics service's usage is exact.
type countingStore struct {
	*presence.Store
	rdb redis.UniversalClient
	key string
}

func (s countingStore) Apply(ctx context.Context, c presence.Change) (*presence.Event, error) {
	ev, err := s.Store.Apply(ctx, c)
	if err != nil || ev == nil || ev.Replay {
		return ev, err
	}
	var d int64
	switch protocol.PresenceAction(ev.Envelope.Event) {
	case protocol.PresenceJoin:
		d = 1
	case protocol.PresenceLeave:
		d = -1
	default:
		return ev, nil
	}
	_ = s.rdb.IncrBy(ctx, s.key, d).Err() // best effort: the change itself succeeded
	return ev, nil
}

// registerMembers exposes the count as roomcast_presence_members.
func registerMembers(reg prometheus.Registerer, rdb redis.UniversalClient, key string) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "roomcast_presence_members", Help: "Presence members in all rooms of the cluster (as counted by the presence workers).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		v, err := rdb.Get(ctx, key).Result()
		if err != nil {
			return 0
		}
		n, _ := strconv.ParseFloat(v, 64)
		return n
	}))
}
