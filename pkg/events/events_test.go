package events_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/pkg/testenv"
)

func cleanupQueue(t *testing.T, rdb *redis.Client, queue string) {
	t.Cleanup(func() {
		testenv.DeletePrefix(rdb, "asynq:{"+queue+"}")
		rdb.SRem(context.Background(), "asynq:queues", queue)
	})
}

func TestEmitterEnqueuesOnlyForEnabledConsumers(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	queue := events.Queue(prefix, "presence")
	cleanupQueue(t, rdb, queue)
	e := events.NewEmitter(rdb, events.EmitterConfig{Prefix: prefix, Consumers: []string{"presence"}}, slog.New(slog.DiscardHandler))
	if !e.Wants(events.TypePresenceEnter) || e.Wants(events.TypeMessagePublished) {
		t.Fatal("routes do not follow the enabled consumers")
	}
	e.Emit(events.TypePresenceEnter, events.PresenceChange{V: events.Version, App: "a", Room: "r", MemberID: "m", Seq: 1})
	e.Emit(events.TypeMessagePublished, events.PublishedFrom("a", "r", 1, "e", "", "", false, false, []byte("x"), 1)) // nobody consumes it
	e.Close(context.Background())

	insp := asynq.NewInspectorFromRedisClient(rdb)
	tasks, err := insp.ListPendingTasks(queue)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 || tasks[0].Type != events.TypePresenceEnter {
		t.Fatalf("pending tasks %+v, want one presence.enter", tasks)
	}
	var p events.PresenceChange
	if err := events.Decode(asynq.NewTask(tasks[0].Type, tasks[0].Payload), &p); err != nil || p.MemberID != "m" || p.Seq != 1 {
		t.Fatalf("decoded %+v, %v", p, err)
	}
	if s := e.Stats(); s.Enqueued != 1 || s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A Redis that does not answer never blocks Emit: tasks are dropped and
// counted.
func TestEmitterNeverBlocksWithoutRedis(t *testing.T) {
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 50 * time.Millisecond, MaxRetries: -1})
	defer dead.Close()
	e := events.NewEmitter(dead, events.EmitterConfig{Prefix: "rc-dead:", Consumers: []string{"presence"}, Buffer: 10, Workers: 1},
		slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 10000; i++ {
			e.Emit(events.TypePresenceLeave, events.PresenceChange{V: events.Version, App: "a", Room: "r", MemberID: "m", Seq: int64(i + 1)})
		}
	}()
	// 10,000 calls that each waited for the dead Redis would take minutes.
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Emit blocks while Redis is unreachable")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	e.Close(ctx)
	if s := e.Stats(); s.Enqueued != 0 || s.Dropped < 9990 {
		t.Fatalf("stats %+v, want (almost) all dropped", s)
	}
}

func TestDecodeRejectsNewerVersionsAndGarbageWithoutRetry(t *testing.T) {
	var p events.PresenceChange
	for _, payload := range []string{`{"v":2,"app":"a"}`, `not json`, `{"v":1,"seq":"x"}`} {
		err := events.Decode(asynq.NewTask(events.TypePresenceEnter, []byte(payload)), &p)
		if err == nil || !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("Decode(%s) = %v, want an error wrapping asynq.SkipRetry", payload, err)
		}
	}
	if err := events.Decode(asynq.NewTask(events.TypePresenceEnter, []byte(`{"v":2}`)), &p); !errors.Is(err, events.ErrVersion) {
		t.Errorf("newer version: %v, want ErrVersion", err)
	}
}

// message.published carries the binary mark of a message; a payload from a
// gateway that predates the mark (no "binary") is a JSON message, and the
// mark never sits on empty data.
func TestPublishedBinaryMark(t *testing.T) {
	decode := func(t *testing.T, payload []byte) events.Published {
		t.Helper()
		var p events.Published
		if err := events.Decode(asynq.NewTask(events.TypeMessagePublished, payload), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	task, err := events.NewTask(events.TypeMessagePublished, events.PublishedFrom("a", "r", 1, "e", "", "", false, true, []byte(`{"a":1}`), 1))
	if err != nil {
		t.Fatal(err)
	}
	if p := decode(t, task.Payload()); !p.Binary || string(p.Data) != `{"a":1}` || p.Bytes != 7 {
		t.Fatalf("decoded %+v, want binary {\"a\":1}", p)
	}
	old := []byte(`{"v":1,"app":"a","room":"r","offset":1,"epoch":"e","data":"eyJhIjoxfQ==","bytes":7,"at":1}`)
	if p := decode(t, old); p.Binary || string(p.Data) != `{"a":1}` {
		t.Fatalf("old payload decoded %+v, want a JSON message", p)
	}
	if p := events.PublishedFrom("a", "r", 1, "e", "", "", false, true, nil, 1); p.Binary {
		t.Fatal("binary mark on empty data")
	}
}
