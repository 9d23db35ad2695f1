package worker

import (
	"context"
	_ "embed"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/events"
)

// Group repair works around asynq v0.26: when an aggregator dies holding
// an aggregation set, asynq's recoverer puts the set's tasks back into
// their group after two minutes but does not list the group again in the
// queue's set of groups, which is what aggregators scan. If the group had
// been emptied meanwhile, its tasks wait unseen until a gateway adds
// another task to that group — forever on a room that went quiet. Every
// interval, RepairGroups lists again each non-empty group of the queue.
// It reads asynq's key layout (asynq:{<queue>}:g:<group>, …:groups),
// pinned by the asynq version in go.mod and checked by the tests.

//go:embed repair_groups.lua
var repairScriptSrc string

var repairScript = redis.NewScript(repairScriptSrc)

// RepairGroups lists again every non-empty message.published group of
// queue; it returns how many were missing.
func RepairGroups(ctx context.Context, rdb redis.UniversalClient, queue string) (int64, error) {
	keys := []string{"asynq:{" + queue + "}:groups"}
	args := make([]any, 0, events.Groups)
	for n := range events.Groups {
		g := events.Group(events.TypeMessagePublished, n)
		keys = append(keys, "asynq:{"+queue+"}:g:"+g)
		args = append(args, g)
	}
	return repairScript.Run(ctx, rdb, keys, args...).Int64()
}

// RunGroupRepair calls RepairGroups every interval until ctx ends.
func RunGroupRepair(ctx context.Context, rdb redis.UniversalClient, queue string, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := RepairGroups(ctx, rdb, queue)
			switch {
			case err != nil && ctx.Err() == nil:
				log.Warn("group repair", "err", err)
			case n > 0:
				log.Info("groups listed again after a reclaimed aggregation", "groups", n)
			}
		}
	}
}
