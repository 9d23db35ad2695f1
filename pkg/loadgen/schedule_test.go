package loadgen

import (
	"sort"
	"testing"
	"time"
)

func TestScheduleCounts(t *testing.T) {
	start := time.Unix(1000, 0)
	tests := []struct {
		rate       float64
		publishers int
		duration   time.Duration
		want       int64
	}{
		{100, 1, 10 * time.Second, 1000},
		{100, 3, 10 * time.Second, 1000},
		{2000, 7, 10 * time.Second, 20000},
		{10, 4, time.Second, 10},
		{1, 1, 500 * time.Millisecond, 1}, // message 0 is due at the start
		{3, 2, time.Second, 3},
	}
	for _, tt := range tests {
		var total int64
		for i := range tt.publishers {
			total += newSchedule(start, tt.rate, i, tt.publishers, tt.duration).count()
		}
		if total != tt.want {
			t.Errorf("rate %v × %v over %d publishers: %d messages, want %d", tt.rate, tt.duration, tt.publishers, total, tt.want)
		}
	}
}

// TestScheduleInterleaves checks that publishers together send evenly
// spaced messages at the total rate, all within the duration.
func TestScheduleInterleaves(t *testing.T) {
	start := time.Unix(1000, 0)
	const rate, publishers = 400.0, 4
	duration := 2 * time.Second
	var due []time.Time
	for i := range publishers {
		s := newSchedule(start, rate, i, publishers, duration)
		for k := range s.count() {
			due = append(due, s.due(k))
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].Before(due[j]) })
	if len(due) != 800 {
		t.Fatalf("%d messages, want 800", len(due))
	}
	if !due[0].Equal(start) {
		t.Errorf("first message due %v, want the start %v", due[0], start)
	}
	for i := 1; i < len(due); i++ {
		if gap := due[i].Sub(due[i-1]); gap != 2500*time.Microsecond {
			t.Fatalf("gap before message %d is %v, want 2.5ms", i, gap)
		}
	}
	if last := due[len(due)-1]; !last.Before(start.Add(duration)) {
		t.Errorf("last message due %v, not before the end", last)
	}
}

// TestSplitScheduleMatchesOneProcess checks that workers of a split run
// plan exactly the messages one process would.
func TestSplitScheduleMatchesOneProcess(t *testing.T) {
	cfg := Config{URLs: []string{"ws://x/v1/connect"}, Token: "t", Connections: 10, Publishers: 5, Rate: 1000, Duration: 3 * time.Second}
	parts, err := Split(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1000, 0)
	var total int64
	for _, p := range parts {
		for i := range p.Publishers {
			total += newSchedule(start, p.Rate, p.FirstPublisher+i, p.TotalPublishers, p.Duration).count()
		}
	}
	if total != 3000 {
		t.Errorf("split workers plan %d messages, want 3000", total)
	}
}
