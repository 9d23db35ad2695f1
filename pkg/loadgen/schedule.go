package loadgen

import (
	"math"
	"time"
)

// schedule is one publisher's fixed-rate send plan. The run's messages are
// numbered g = 0, 1, 2, … and message g is due at start + g/rate, for every
// g due before the end; publisher i of P sends the messages with
// g % P == i, so publishers together send evenly spaced messages at the
// total rate. The plan never adapts to how the server is doing: a load
// generator that slows down when the server does measures only what the
// server could take, and hides the latency of the messages it did not
// send (coordinated omission).
type schedule struct {
	start time.Time
	rate  float64 // messages per second, all publishers together
	index int64   // this publisher
	total int64   // publishers
	n     int64   // messages of all publishers due before the end
}

// newSchedule plans publisher index (of total) sending its share of rate
// messages per second over all publishers, for duration from start.
func newSchedule(start time.Time, rate float64, index, total int, duration time.Duration) schedule {
	// Message g is due before the end when g < duration·rate; a product
	// that is a whole number up to float error counts as whole.
	n := int64(math.Ceil(duration.Seconds()*rate - 1e-9))
	return schedule{start: start, rate: rate, index: int64(index), total: int64(total), n: max(n, 0)}
}

// count is the number of this publisher's messages due before the end.
func (s schedule) count() int64 {
	if s.n <= s.index {
		return 0
	}
	return (s.n - s.index + s.total - 1) / s.total
}

// due is when this publisher's message k should be sent.
func (s schedule) due(k int64) time.Time {
	g := k*s.total + s.index
	return s.start.Add(time.Duration(math.Round(float64(g) * float64(time.Second) / s.rate)))
}
