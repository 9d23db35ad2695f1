package events_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/testenv"
)

// A batched consumer's tasks wait in groups for its aggregator; the same
// type for another consumer would be pending as usual.
func TestEmitterGroupsBatchedTypes(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	queue := events.Queue(prefix, "history")
	cleanupQueue(t, rdb, queue)
	e := events.NewEmitter(rdb, events.EmitterConfig{Prefix: prefix, Consumers: []string{"history"}}, slog.New(slog.DiscardHandler))
	const n = 40
	for i := 1; i <= n; i++ {
		e.Emit(events.TypeMessagePublished, events.PublishedFrom("a", "r", uint64(i), "e", "", "", false, false, []byte(`{}`), 1))
	}
	e.Close(context.Background())

	insp := asynq.NewInspectorFromRedisClient(rdb)
	groups, err := insp.Groups(queue)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, g := range groups {
		total += g.Size
	}
	if len(groups) != events.Groups || total != n {
		t.Fatalf("groups %+v: want %d groups holding %d tasks", groups, events.Groups, n)
	}
	if info, err := insp.GetQueueInfo(queue); err != nil || info.Pending != 0 {
		t.Fatalf("queue info %+v, %v: nothing should be pending", info, err)
	}
}
