// Package live pushes live room metrics (members, connections, message
// rate) to the connections that subscribed to them (metrics.subscribe).
//
// Where the numbers come from: every gateway, once per Report interval,
// reads the cluster's set of watched rooms from Redis (a sorted set that
// the nodes with subscribers keep refreshed) and, for each watched room
// with local members, writes its own numbers into the room's hash (field:
// node id; value: local connections, local message rate, time). A
// subscriber's node sums the fresh fields' connections, takes the highest
// message rate (every node with members of a room receives all of its
// messages, so each one's rate is the room's rate) and reads the members
// from the presence set. Rooms nobody watches cost nothing; a watched room
// costs each node with members one hash write per Report interval.
package live

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/roomlog"
	"github.com/roomcast/roomcast/services/gateway/internal/hub"
)

// Report is how often each node reports its numbers for watched rooms.
const Report = time.Second

// Hub gives a room's local numbers (hub.Hub).
type Hub interface {
	Live(app, room string) (hub.RoomLive, bool)
}

// Presence counts a room's presence set (pkg/presence.Store).
type Presence interface {
	Count(ctx context.Context, app, room string) (protocol.PresenceCount, error)
}

type key struct{ app, room string }

type sample struct {
	messages uint64
	at       time.Time
}

// Service is one node's live metrics.
type Service struct {
	rdb      redis.UniversalClient
	prefix   string
	node     string
	hub      Hub
	presence Presence
	log      *slog.Logger

	mu      sync.Mutex
	watches map[key]int // local subscriptions per room
	samples map[key]sample
}

// New returns a Service; start its reporting with Run.
func New(rdb redis.UniversalClient, prefix, node string, h Hub, p Presence, log *slog.Logger) *Service {
	return &Service{rdb: rdb, prefix: prefix, node: node, hub: h, presence: p, log: log,
		watches: map[key]int{}, samples: map[key]sample{}}
}

func (s *Service) watchKey() string { return s.prefix + "metrics:live:watch" }

func (s *Service) roomKey(app, room string) string {
	return s.prefix + "metrics:live" + roomlog.HashTag(app, room) + ":" + app + ":" + room
}

// Subscribe pushes the room's metrics every interval until cancel is
// called. push must not block.
func (s *Service) Subscribe(app, room string, interval time.Duration, push func(protocol.RoomMetrics)) (cancel func()) {
	k := key{app, room}
	s.mu.Lock()
	s.watches[k]++
	s.mu.Unlock()
	// Announce the watch at once, so other nodes report before the first push.
	go s.refreshWatches(context.Background())
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if m, err := s.Read(context.Background(), app, room); err == nil {
					push(m)
				} else {
					s.log.Debug("live metrics not read", "err", err)
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			s.mu.Lock()
			if s.watches[k]--; s.watches[k] <= 0 {
				delete(s.watches, k)
			}
			s.mu.Unlock()
		})
	}
}

// Read returns a room's metrics, cluster-wide.
func (s *Service) Read(ctx context.Context, app, room string) (protocol.RoomMetrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	now := time.Now()
	fields, err := s.rdb.HGetAll(ctx, s.roomKey(app, room)).Result()
	if err != nil {
		return protocol.RoomMetrics{}, err
	}
	m := protocol.RoomMetrics{Room: room, Timestamp: now.UnixMilli()}
	for _, v := range fields {
		parts := strings.Split(v, " ")
		if len(parts) != 3 {
			continue
		}
		conns, err1 := strconv.Atoi(parts[0])
		rate, err2 := strconv.ParseFloat(parts[1], 64)
		at, err3 := strconv.ParseInt(parts[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || now.UnixMilli()-at > 3*Report.Milliseconds() {
			continue // a node that stopped reporting (gone, or no members left)
		}
		m.Connections += conns
		m.MessageRate = max(m.MessageRate, rate)
	}
	if s.presence != nil {
		n, err := s.presence.Count(ctx, app, room)
		if err != nil {
			return protocol.RoomMetrics{}, err
		}
		m.Members, m.Clients = n.Connections, n.Clients
	}
	return m, nil
}

// Run reports this node's numbers every Report until ctx ends.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(Report)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.refreshWatches(ctx)
			if err := s.report(ctx); err != nil && ctx.Err() == nil {
				s.log.Debug("live metrics report failed", "err", err)
			}
		}
	}
}

// refreshWatches keeps this node's watched rooms in the cluster's set.
func (s *Service) refreshWatches(ctx context.Context) {
	s.mu.Lock()
	members := make([]redis.Z, 0, len(s.watches))
	until := float64(time.Now().Add(5 * Report).UnixMilli())
	for k := range s.watches {
		members = append(members, redis.Z{Score: until, Member: k.app + "\x1f" + k.room})
	}
	s.mu.Unlock()
	if len(members) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.rdb.ZAdd(ctx, s.watchKey(), members...).Err(); err != nil && ctx.Err() == nil {
		s.log.Debug("live metrics watch not refreshed", "err", err)
	}
}

func (s *Service) report(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	now := time.Now()
	nowMS := strconv.FormatInt(now.UnixMilli(), 10)
	s.rdb.ZRemRangeByScore(ctx, s.watchKey(), "-inf", "("+nowMS)
	watched, err := s.rdb.ZRangeByScore(ctx, s.watchKey(), &redis.ZRangeBy{Min: nowMS, Max: "+inf"}).Result()
	if err != nil {
		return err
	}
	pipe := s.rdb.Pipeline()
	seen := map[key]bool{}
	for _, w := range watched {
		app, room, ok := strings.Cut(w, "\x1f")
		if !ok {
			continue
		}
		k := key{app, room}
		seen[k] = true
		l, ok := s.hub.Live(app, room)
		if !ok {
			continue
		}
		s.mu.Lock()
		prev, had := s.samples[k]
		s.samples[k] = sample{messages: l.Messages, at: now}
		s.mu.Unlock()
		rate := 0.0
		if had && l.Messages >= prev.messages {
			if dt := now.Sub(prev.at).Seconds(); dt > 0 {
				rate = float64(l.Messages-prev.messages) / dt
			}
		}
		rk := s.roomKey(app, room)
		pipe.HSet(ctx, rk, s.node, strconv.Itoa(l.Members)+" "+strconv.FormatFloat(rate, 'f', 3, 64)+" "+nowMS)
		pipe.PExpire(ctx, rk, 5*Report)
	}
	s.mu.Lock()
	for k := range s.samples {
		if !seen[k] {
			delete(s.samples, k)
		}
	}
	s.mu.Unlock()
	if pipe.Len() == 0 {
		return nil
	}
	_, err = pipe.Exec(ctx)
	return err
}
