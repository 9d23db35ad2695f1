package worker

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/roomcast/roomcast/pkg/events"
	"github.com/roomcast/roomcast/services/history/internal/store"
)

type fakeStore struct{ rows []store.Row }

func (f *fakeStore) Insert(_ context.Context, rows []store.Row) (int64, error) {
	f.rows = append(f.rows, rows...)
	return int64(len(rows)), nil
}

// A batch is the group's payloads; transient and unreadable ones are
// skipped, the rest become rows expiring after their app's retention,
// with their binary marks.
func TestBatchArchivesDurableMessages(t *testing.T) {
	task := func(p events.Published) *asynq.Task {
		tk, err := events.NewTask(events.TypeMessagePublished, p)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	at := time.Now().UnixMilli()
	tasks := []*asynq.Task{
		task(events.PublishedFrom("a", "r", 1, "e", "ev", "alice", false, false, []byte(`{"x":1}`), at)),
		task(events.PublishedFrom("a", "r", 0, "", "", "", true, false, []byte(`{}`), at)), // transient
		asynq.NewTask(events.TypeMessagePublished, []byte(`not json`)),
		asynq.NewTask(events.TypeMessagePublished, []byte(`{"v":99,"app":"a"}`)),            // a newer version
		task(events.PublishedFrom("b", "r", 2, "e", "", "", false, true, []byte(`[]`), at)), // bytes that look like JSON
	}
	batch := Aggregate("message.published.3", tasks)
	if batch.Type() != TypeBatch {
		t.Fatalf("aggregated type %q", batch.Type())
	}
	fs := &fakeStore{}
	w := New(fs, func(app string) time.Duration {
		if app == "b" {
			return time.Hour
		}
		return 24 * time.Hour
	}, slog.New(slog.DiscardHandler))
	if err := w.handleBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if len(fs.rows) != 2 || fs.rows[0].Offset != 1 || fs.rows[0].Sender != "alice" || fs.rows[0].Event != "ev" || string(fs.rows[0].Data) != `{"x":1}` || fs.rows[0].Binary {
		t.Fatalf("rows %+v", fs.rows)
	}
	if r := fs.rows[1]; !r.Binary || string(r.Data) != `[]` {
		t.Fatalf("binary row %+v", r)
	}
	if got := fs.rows[1].ExpiresAt.Sub(time.UnixMilli(at)); got != time.Hour {
		t.Fatalf("app b expires after %s, want 1h", got)
	}
	if s := w.Stats(); s.Batches != 1 || s.Messages != 2 || s.Malformed != 2 {
		t.Fatalf("stats %+v", s)
	}
}
