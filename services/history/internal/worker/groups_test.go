package worker

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/testenv"
)

// A group whose name asynq dropped from the queue's groups (as after a
// reclaimed aggregation set) is listed again; asynq's inspector, which
// reads the same keys, sees it.
func TestRepairGroupsListsNonEmptyGroups(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	queue := events.Queue(prefix, "history")
	t.Cleanup(func() {
		testenv.DeletePrefix(rdb, "asynq:{"+queue+"}")
		rdb.SRem(context.Background(), "asynq:queues", queue)
	})
	ctx := context.Background()
	c := asynq.NewClientFromRedisClient(rdb)
	g := events.Group(events.TypeMessagePublished, 5)
	if _, err := c.Enqueue(asynq.NewTask(events.TypeMessagePublished, []byte(`{}`)), asynq.Queue(queue), asynq.Group(g)); err != nil {
		t.Fatal(err)
	}
	groupsKey := "asynq:{" + queue + "}:groups"
	if ok, err := rdb.SIsMember(ctx, groupsKey, g).Result(); err != nil || !ok {
		t.Fatalf("asynq's key layout changed: %s does not list %s (%v)", groupsKey, g, err)
	}
	if n, err := RepairGroups(ctx, rdb, queue); err != nil || n != 0 {
		t.Fatalf("nothing to repair, got %d, %v", n, err)
	}
	rdb.SRem(ctx, groupsKey, g)
	if n, err := RepairGroups(ctx, rdb, queue); err != nil || n != 1 {
		t.Fatalf("repaired %d, %v; want 1", n, err)
	}
	groups, err := asynq.NewInspectorFromRedisClient(rdb).Groups(queue)
	if err != nil || len(groups) != 1 || groups[0].Group != g || groups[0].Size != 1 {
		t.Fatalf("inspector sees %+v, %v", groups, err)
	}
}
