package lane

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder is a send function that keeps every batch and can be held.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	hold    chan struct{} // when non-nil, each send waits for a value
	entered chan struct{} // when non-nil, each send signals here first
}

func (r *recorder) send(b []int) {
	if r.entered != nil {
		r.entered <- struct{}{}
	}
	if r.hold != nil {
		<-r.hold
	}
	r.mu.Lock()
	r.batches = append(r.batches, slices.Clone(b))
	r.mu.Unlock()
}

func (r *recorder) snapshot() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// What arrives while a batch is out goes together in the next one, in order.
func TestGathersWhileABatchIsOut(t *testing.T) {
	r := &recorder{hold: make(chan struct{}), entered: make(chan struct{}, 10)}
	l := New(Limits{}, nil, r.send)
	l.Push(0)
	<-r.entered // the first batch is out, alone
	for i := 1; i <= 5; i++ {
		l.Push(i)
	}
	r.hold <- struct{}{}
	<-r.entered
	r.hold <- struct{}{}
	waitFor(t, "two batches", func() bool { return len(r.snapshot()) == 2 })
	if got, want := r.snapshot(), [][]int{{0}, {1, 2, 3, 4, 5}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("batches = %v, want %v", got, want)
	}
}

func TestLimits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits Limits
		want   [][]int
	}{
		{"items", Limits{Items: 2}, [][]int{{0}, {1, 2}, {3, 4}, {5}}},
		// Sizes are the values: 1+2 fits in 3, 3 alone, 4 alone (over the
		// limit but a batch takes at least one), 5 alone.
		{"bytes", Limits{Bytes: 3}, [][]int{{0}, {1, 2}, {3}, {4}, {5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{hold: make(chan struct{}), entered: make(chan struct{}, 10)}
			l := New(tc.limits, func(v int) int { return v }, r.send)
			l.Push(0)
			<-r.entered
			for i := 1; i <= 5; i++ {
				l.Push(i)
			}
			go func() {
				for range tc.want {
					r.hold <- struct{}{}
				}
			}()
			waitFor(t, "all batches", func() bool { return len(r.snapshot()) == len(tc.want) })
			if got := r.snapshot(); !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Fatalf("batches = %v, want %v", got, tc.want)
			}
		})
	}
}

// The goroutine ends once idle, and a later push starts another.
func TestIdleLaneStopsAndRestarts(t *testing.T) {
	r := &recorder{}
	l := New(Limits{}, nil, r.send)
	l.Push(1)
	running := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.running
	}
	waitFor(t, "the idle lane to stop", func() bool { return !running() })
	l.Push(2)
	waitFor(t, "the second push to be sent", func() bool { return len(r.snapshot()) == 2 })
}

// Many pushers: nothing lost, nothing repeated, each pusher's order kept.
func TestConcurrentPushers(t *testing.T) {
	r := &recorder{}
	l := New(Limits{Items: 7}, nil, r.send)
	const pushers, each = 8, 500
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() {
			for i := range each {
				l.Push(p*each + i)
			}
		})
	}
	wg.Wait()
	waitFor(t, "every push", func() bool {
		n := 0
		for _, b := range r.snapshot() {
			n += len(b)
		}
		return n == pushers*each
	})
	next := make([]int, pushers)
	for _, b := range r.snapshot() {
		if len(b) > 7 {
			t.Fatalf("batch of %d over the limit of 7", len(b))
		}
		for _, v := range b {
			p, i := v/each, v%each
			if i != next[p] {
				t.Fatalf("pusher %d: got %d, want %d", p, i, next[p])
			}
			next[p]++
		}
	}
}

func TestContext(t *testing.T) {
	own, cancelOwn := context.WithCancel(context.Background())
	defer cancelOwn()
	ctxOf := func(c context.Context) context.Context { return c }
	if ctx, cancel := Context([]context.Context{own}, ctxOf); ctx != own {
		cancel()
		t.Fatal("a batch of one does not run under its request's context")
	}

	soon, c1 := context.WithTimeout(context.Background(), time.Minute)
	defer c1()
	late, c2 := context.WithTimeout(context.Background(), time.Hour)
	defer c2()
	ctx, cancel := Context([]context.Context{soon, late}, ctxOf)
	defer cancel()
	want, _ := late.Deadline()
	if got, ok := ctx.Deadline(); !ok || !got.Equal(want) {
		t.Fatalf("batch deadline = %v, %v; want the latest request's, %v", got, ok, want)
	}
	c1() // one caller giving up does not end the batch
	if ctx.Err() != nil {
		t.Fatal("the batch ended with one of its requests")
	}

	ctx, cancel = Context([]context.Context{soon, context.Background()}, ctxOf)
	defer cancel()
	if got, ok := ctx.Deadline(); !ok || time.Until(got) < 59*time.Minute {
		t.Fatalf("batch deadline with an unbounded request = %v, %v; want an hour away", got, ok)
	}
}
