package history_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/roomcast/roomcast/pkg/envelope"
	"github.com/roomcast/roomcast/pkg/history"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/roomlog"
	"github.com/roomcast/roomcast/pkg/testenv"
)

// memArchive is an Archive in memory: epoch → messages by offset.
type memArchive struct {
	order  []string
	epochs map[string][]protocol.Message
}

func (a *memArchive) Epochs(context.Context, string, string) ([]string, error) {
	return slices.Clone(a.order), nil
}

func (a *memArchive) Read(_ context.Context, r history.ReadRequest) ([]protocol.Message, error) {
	var out []protocol.Message
	for _, m := range a.epochs[r.Epoch] {
		if m.Offset >= r.Min && m.Offset <= r.Max && (r.Start == 0 || m.Timestamp >= r.Start) && (r.End == 0 || m.Timestamp <= r.End) {
			out = append(out, m)
		}
	}
	if r.Backward {
		slices.Reverse(out)
	}
	if len(out) > r.Limit {
		out = out[:r.Limit]
	}
	return out, nil
}

type key struct {
	epoch  string
	offset uint64
}

// pageAll pages q to the end and returns every message's key.
func pageAll(t *testing.T, r *history.Reader, q history.Query) []key {
	t.Helper()
	var got []key
	for range 10000 {
		p, err := r.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Messages) > q.Limit {
			t.Fatalf("page of %d > limit %d", len(p.Messages), q.Limit)
		}
		for _, m := range p.Messages {
			got = append(got, key{m.Epoch, m.Offset})
		}
		if p.Cursor == "" {
			return got
		}
		q.Cursor = p.Cursor
	}
	t.Fatal("paging did not end")
	return nil
}

// The archive lags (holds 1..250 of the live epoch, without 150..160, as
// if those were lost) and the stream holds only the newest ~100: a read is
// their union, each offset once, over an older archived epoch too.
func TestReaderMergesArchiveAndStream(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	log := roomlog.New(rdb, roomlog.Config{Prefix: prefix, StreamSize: 100})
	ctx := context.Background()
	var live string
	for i := 1; i <= 300; i++ {
		env := envelope.Envelope{App: "a", Room: "r", Timestamp: int64(1000 + i), Data: fmt.Appendf(nil, `{"i":%d}`, i)}
		pos, _, err := log.Append(ctx, "a", "r", env.Marshal(), "")
		if err != nil {
			t.Fatal(err)
		}
		live = pos.Epoch
	}
	arch := &memArchive{order: []string{"00aa", live}, epochs: map[string][]protocol.Message{}}
	for i := uint64(1); i <= 50; i++ {
		arch.epochs["00aa"] = append(arch.epochs["00aa"], protocol.Message{Offset: i, Epoch: "00aa", Timestamp: int64(i)})
	}
	for i := uint64(1); i <= 250; i++ {
		if i >= 150 && i <= 160 {
			continue
		}
		arch.epochs[live] = append(arch.epochs[live], protocol.Message{Offset: i, Epoch: live, Timestamp: int64(1000 + i), Data: fmt.Appendf(nil, `{"i":%d}`, i)})
	}
	entries, err := log.Range(ctx, "a", "r", live, 1, 300)
	if !errors.Is(err, roomlog.ErrTruncated) {
		t.Fatalf("stream not truncated: %v", err)
	}
	inStream := map[uint64]bool{}
	for _, e := range entries {
		inStream[e.Offset] = true
	}
	var want []key
	for i := uint64(1); i <= 50; i++ {
		want = append(want, key{"00aa", i})
	}
	for i := uint64(1); i <= 300; i++ {
		if (i < 150 || i > 160) && i <= 250 || inStream[i] {
			want = append(want, key{live, i})
		}
	}
	r := history.NewReader(arch, history.NewRedisStream(rdb, log))
	for _, limit := range []int{1, 7, 100, 1000} {
		got := pageAll(t, r, history.Query{App: "a", Room: "r", Limit: limit})
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d forward: got %d messages, want %d\n%v", limit, len(got), len(want), got)
		}
		got = pageAll(t, r, history.Query{App: "a", Room: "r", Limit: limit, Backward: true})
		slices.Reverse(got)
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d backward: got %d messages, want %d", limit, len(got), len(want))
		}
	}
	// A byte budget cuts pages short, never below one message, and the
	// cursor carries on exactly.
	for _, budget := range []int{1, 20, 100} {
		got := pageAll(t, r, history.Query{App: "a", Room: "r", Limit: 50, MaxBytes: budget})
		if len(got) != len(want) {
			t.Fatalf("max bytes %d: got %d messages, want %d", budget, len(got), len(want))
		}
	}
	// Bounds: offsets 240..260 of the live epoch, times 1100..1120.
	got := pageAll(t, r, history.Query{App: "a", Room: "r", Epoch: live, FromOffset: 240, ToOffset: 260, Limit: 6})
	if len(got) != 21 || got[0].offset != 240 || got[20].offset != 260 {
		t.Fatalf("offset range: %v", got)
	}
	got = pageAll(t, r, history.Query{App: "a", Room: "r", Start: 1100, End: 1120, Limit: 6, Backward: true})
	if len(got) != 21 || got[0].offset != 120 || got[20].offset != 100 {
		t.Fatalf("time range: %v", got)
	}
}

func TestQueryRejectsBadInput(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	r := history.NewReader(&memArchive{}, history.NewRedisStream(rdb, roomlog.New(rdb, roomlog.Config{Prefix: prefix})))
	for _, q := range []history.Query{
		{App: "a", Room: "r", Limit: 1001},
		{App: "a", Room: "r", Limit: -1},
		{App: "a", Room: "r", FromOffset: 5, ToOffset: 4},
		{App: "a", Room: "r", Start: 5, End: 4},
	} {
		if _, err := r.Query(context.Background(), q); !errors.Is(err, history.ErrQuery) {
			t.Errorf("%+v: err %v, want ErrQuery", q, err)
		}
	}
	for _, c := range []string{"x", "AQ", "!!!", "AQAAAAAAAAAAAWFi"} {
		if _, err := r.Query(context.Background(), history.Query{App: "a", Room: "r", Cursor: c}); !errors.Is(err, history.ErrCursor) {
			t.Errorf("cursor %q: err %v, want ErrCursor", c, err)
		}
	}
}

// Messages that left the recovery stream keep the archive's binary mark,
// bytes that are valid JSON text included; rows archived before the mark
// existed read as binary when their data is not UTF-8 JSON.
func TestReaderKeepsArchivedBinaryMark(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	log := roomlog.New(rdb, roomlog.Config{Prefix: prefix, StreamSize: 2})
	ctx := context.Background()
	looksJSON, raw := []byte(`{"a":1}`), []byte{0, 0xff}
	sent := []envelope.Envelope{
		{Binary: true, Data: looksJSON},
		{Data: looksJSON},
		{Binary: true, Data: raw}, // archived before the mark: no mark in the archive
	}
	// The stream trims whole blocks of entries: enough follow to push the
	// first three out of it, the last one binary JSON text.
	for i := range 250 {
		sent = append(sent, envelope.Envelope{Data: fmt.Appendf(nil, `{"i":%d}`, i)})
	}
	sent = append(sent, envelope.Envelope{Binary: true, Data: looksJSON})
	var live string
	for i, e := range sent {
		e.App, e.Room, e.Timestamp = "a", "r", int64(1000+i)
		pos, _, err := log.Append(ctx, "a", "r", e.Marshal(), "")
		if err != nil {
			t.Fatal(err)
		}
		live = pos.Epoch
	}
	if _, err := log.Range(ctx, "a", "r", live, 1, 3); !errors.Is(err, roomlog.ErrTruncated) {
		t.Fatalf("offsets 1-3 still in the stream: %v", err)
	}
	arch := &memArchive{order: []string{"00aa", live}, epochs: map[string][]protocol.Message{
		"00aa": {
			{Offset: 1, Epoch: "00aa", Data: looksJSON, Binary: true},
			{Offset: 2, Epoch: "00aa", Data: raw},
			{Offset: 3, Epoch: "00aa", Data: looksJSON},
		},
	}}
	for i, e := range sent[:3] {
		arch.epochs[live] = append(arch.epochs[live], protocol.Message{Offset: uint64(i + 1), Epoch: live, Data: e.Data,
			Binary: e.Binary && i != 2, Timestamp: int64(1000 + i)})
	}
	p, err := history.NewReader(arch, history.NewRedisStream(rdb, log)).Query(ctx, history.Query{App: "a", Room: "r", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	got := map[key]bool{}
	for _, m := range p.Messages {
		got[key{m.Epoch, m.Offset}] = m.Binary
	}
	last := uint64(len(sent))
	for k, want := range map[key]bool{
		{"00aa", 1}: true, {"00aa", 2}: true, {"00aa", 3}: false,
		{live, 1}: true, {live, 2}: false, {live, 3}: true, {live, last - 1}: false, {live, last}: true,
	} {
		if b, ok := got[k]; !ok || b != want {
			t.Errorf("epoch %s offset %d: binary %v (present %v), want %v", k.epoch, k.offset, b, ok, want)
		}
	}
}
