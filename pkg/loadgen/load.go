package loadgen

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/pkg/protocol"
	"github.com/roomcast/roomcast/pkg/sdk/client"
)

// Histogram geometry: microseconds from 1 µs to 10 minutes, 3 significant
// digits. Latencies above the top are recorded at the top.
const (
	histLowest  = 1
	histHighest = int64(10 * time.Minute / time.Microsecond)
	histDigits  = 3
)

func newHistogram() *hdr.Histogram { return hdr.New(histLowest, histHighest, histDigits) }

// record adds a duration to h in microseconds, clamped to the geometry.
func record(h *hdr.Histogram, d time.Duration) {
	us := max(int64(d/time.Microsecond), histLowest)
	_ = h.RecordValue(min(us, histHighest))
}

// latencyShard is one of a few histograms the subscribers record into:
// handlers of many connections run concurrently, and one mutex for all
// would be the load generator's own bottleneck.
type latencyShard struct {
	mu sync.Mutex
	h  *hdr.Histogram
	_  [64]byte // keep shards' mutexes on separate cache lines
}

// publisher is one publishing connection and its place among all.
type publisher struct {
	index int // global publisher index
	c     *client.Client
}

// Load is one process's part of a bench run, between its phases: Connect
// opens and joins, Publish offers the load, Drain waits for the
// deliveries, Report tells what happened, Close hangs up. Run drives a
// whole run in one process; `roomcast bench --procs` drives several
// workers' Loads in step.
type Load struct {
	cfg   Config
	key   *token.Key
	rooms []string
	clock wallClock // receive times

	mu      sync.Mutex
	subs    []*client.Client
	pubs    []publisher
	members []int64 // per room: subscribers of this process that joined it
	made    int
	failed  int
	pubMade int
	pubFail int
	lastOK  time.Time

	connectStart time.Time
	connectEnd   time.Time

	shards    []*latencyShard
	delivered atomic.Int64
	unparsed  atomic.Int64
	drained   atomic.Bool  // the window has ended: later messages are late
	late      atomic.Int64 // messages received after the window

	disconnects atomic.Int64
	resumed     atomic.Int64
	unrecovered atomic.Int64
	ended       atomic.Int64

	errs errorCounts

	published     []atomic.Int64 // per room, acknowledged
	sentTo        []atomic.Int64 // per room, sent (acknowledged or not)
	scheduled     atomic.Int64
	sent          atomic.Int64
	publishFailed atomic.Int64
	windowWaits   atomic.Int64
	lagMu         sync.Mutex
	lag           *hdr.Histogram

	expected  int64
	pubStart  time.Time
	pubEnd    time.Time
	drainEnd  time.Time
	cpuStart  time.Duration
	cpuEnd    time.Duration
	startedAt time.Time
}

// Connect opens and joins this process's connections: publishers first,
// then subscribers, at Config.ConnectRate. Connections that fail are
// counted in the report, not returned as errors; the error is for an
// invalid config or a cancelled ctx.
func Connect(ctx context.Context, cfg Config) (*Load, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	l := &Load{
		cfg:       cfg,
		rooms:     make([]string, cfg.RoomCount),
		members:   make([]int64, cfg.RoomCount),
		published: make([]atomic.Int64, cfg.RoomCount),
		sentTo:    make([]atomic.Int64, cfg.RoomCount),
		lag:       newHistogram(),
		startedAt: time.Now(),
		clock:     newWallClock(),
	}
	for i := range l.rooms {
		l.rooms[i] = cfg.RoomPrefix + strconv.Itoa(i)
	}
	if cfg.Key != "" {
		k, err := token.ParseAPIKey(cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("loadgen: key: %w", err)
		}
		l.key = &k
	}
	n := min(max(4*runtime.GOMAXPROCS(0), 4), 64)
	for range n {
		l.shards = append(l.shards, &latencyShard{h: newHistogram()})
	}
	l.errs.log = cfg.Logger

	total := cfg.Publishers + cfg.Connections
	sem := make(chan struct{}, cfg.ConnectConcurrency)
	var wg sync.WaitGroup
	l.connectStart = time.Now()
	interval := float64(time.Second) / cfg.ConnectRate
	timer := time.NewTimer(0)
	defer timer.Stop()
	cfg.Logger.Info("connecting", "publishers", cfg.Publishers, "subscribers", cfg.Connections, "rate", cfg.ConnectRate)
dial:
	for n := range total {
		due := l.connectStart.Add(time.Duration(float64(n) * interval))
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break dial
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break dial
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if n < cfg.Publishers {
				l.dialPublisher(ctx, n)
			} else {
				l.dialSubscriber(ctx, n-cfg.Publishers)
			}
		})
	}
	wg.Wait()
	l.connectEnd = l.lastOK
	if l.connectEnd.IsZero() {
		l.connectEnd = time.Now()
	}
	if err := ctx.Err(); err != nil {
		l.Close()
		return nil, fmt.Errorf("loadgen: connect: %w", err)
	}
	cfg.Logger.Info("connected", "subscribers", l.made, "failed", l.failed, "publishers", l.pubMade,
		"seconds", l.connectEnd.Sub(l.connectStart).Seconds())
	return l, nil
}

// token returns the token for one connection.
func (l *Load) token(clientID string) (string, error) {
	if l.key == nil {
		return l.cfg.Token, nil
	}
	caps := token.Capabilities{l.cfg.RoomPrefix + "*": {token.OpJoin, token.OpPublish}}
	ttl := l.cfg.Duration + l.cfg.DrainTimeout + time.Hour
	return token.Mint(*l.key, clientID, caps, ttl, time.Now())
}

// onState counts reconnects and resumes of every connection.
func (l *Load) onState(sc client.StateChange) {
	switch sc.State {
	case client.StateReconnecting:
		if sc.Attempt == 1 {
			l.disconnects.Add(1)
			l.errs.add("disconnect", sc.Err)
		}
	case client.StateResumed:
		l.resumed.Add(1)
		if !sc.Recovered {
			l.unrecovered.Add(1)
		}
	case client.StateClosed:
		if sc.Err != nil && sc.Err != client.ErrClosed {
			l.ended.Add(1)
			l.errs.add("ended", sc.Err)
		}
	}
}

func (l *Load) dial(ctx context.Context, url, clientID string) (*client.Client, error) {
	tok, err := l.token(clientID)
	if err != nil {
		return nil, err
	}
	codec := protocol.JSON
	if l.cfg.Codec == CodecMsgpack {
		codec = protocol.Msgpack
	}
	return client.Dial(ctx, client.Config{
		URL:            url,
		Token:          tok,
		Codec:          codec,
		MessageBuffer:  l.cfg.MessageBuffer,
		InlineHandlers: !l.cfg.QueuedHandlers,
		OnStateChange:  l.onState,
	})
}

func (l *Load) dialPublisher(ctx context.Context, i int) {
	g := l.cfg.FirstPublisher + i
	ctx, cancel := context.WithTimeout(ctx, l.cfg.ConnectTimeout)
	defer cancel()
	c, err := l.dial(ctx, l.cfg.URLs[g%len(l.cfg.URLs)], "bench-pub-"+strconv.Itoa(g))
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.pubFail++
		l.errs.add("dial", err)
		return
	}
	l.pubMade++
	l.pubs = append(l.pubs, publisher{index: g, c: c})
}

func (l *Load) dialSubscriber(ctx context.Context, i int) {
	g := l.cfg.FirstConnection + i
	room := g % l.cfg.RoomCount
	ctx, cancel := context.WithTimeout(ctx, l.cfg.ConnectTimeout)
	defer cancel()
	c, err := l.dial(ctx, l.cfg.URLs[g%len(l.cfg.URLs)], "bench-sub-"+strconv.Itoa(g))
	if err != nil {
		l.mu.Lock()
		l.failed++
		l.mu.Unlock()
		l.errs.add("dial", err)
		return
	}
	c.OnAnyMessage(l.receiver(l.shards[i%len(l.shards)]))
	if _, err := c.Join(ctx, l.rooms[room]); err != nil {
		_ = c.Close()
		l.mu.Lock()
		l.failed++
		l.mu.Unlock()
		l.errs.add("join", err)
		return
	}
	l.mu.Lock()
	l.made++
	l.members[room]++
	l.subs = append(l.subs, c)
	l.lastOK = time.Now()
	l.mu.Unlock()
}

// wallClock tells the wall-clock time in Unix nanoseconds from the
// monotonic clock and one wall-clock reading: half the cost of time.Now,
// paid once per delivery. It ignores steps of the wall clock during a run.
type wallClock struct {
	base     time.Time
	baseNano int64
}

func newWallClock() wallClock {
	t := time.Now()
	return wallClock{base: t, baseNano: t.UnixNano()}
}

func (c wallClock) unixNano() int64 { return c.baseNano + int64(time.Since(c.base)) }

// receiver returns a subscriber's message handler: latency = now − the
// send time in the payload (same machine, same clock), into the shard's
// histogram.
func (l *Load) receiver(sh *latencyShard) func(protocol.Message) {
	return func(m protocol.Message) {
		now := l.clock.unixNano()
		if l.drained.Load() {
			l.late.Add(1)
			return
		}
		sent, ok := parseSendTime(m.Data)
		if !ok {
			l.unparsed.Add(1)
			return
		}
		sh.mu.Lock()
		record(sh.h, time.Duration(now-sent))
		sh.mu.Unlock()
		l.delivered.Add(1)
	}
}

// Members returns, per room, how many of this process's subscribers
// joined it.
func (l *Load) Members() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int64(nil), l.members...)
}

// Publish runs the publishers from start for Config.Duration and returns,
// per room, how many publishes the gateways acknowledged.
//
// Each publisher follows a fixed schedule (the run's message g is due at
// start + g/Rate; publisher i of P sends the messages with g % P == i) and
// stamps each message with its scheduled time, not
// the time it actually left: if the load generator falls behind, or all
// of a publisher's InFlight publishes await replies, the message goes out
// late and the lateness counts as latency, instead of the run quietly
// offering less than asked (coordinated omission). Replies are awaited in
// separate goroutines, so a slow reply delays nothing until InFlight
// replies are pending. The schedule lag (actual − scheduled send time) is
// reported, so a late load generator is visible.
func (l *Load) Publish(ctx context.Context, start time.Time) []int64 {
	l.pubStart = start
	l.cpuStart = SelfCPU()
	if l.cfg.Idle {
		timer := time.NewTimer(time.Until(start.Add(l.cfg.Duration)))
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
		}
		l.pubEnd = time.Now()
		return make([]int64, len(l.rooms))
	}
	// Publishes still unanswered this long after the schedule's end give
	// up; their messages count as failed.
	pctx, cancel := context.WithDeadline(ctx, start.Add(l.cfg.Duration+l.cfg.DrainTimeout))
	defer cancel()
	for i := range l.cfg.Publishers {
		sch := newSchedule(start, l.cfg.Rate, l.cfg.FirstPublisher+i, l.cfg.TotalPublishers, l.cfg.Duration)
		l.scheduled.Add(sch.count())
	}
	var wg sync.WaitGroup
	for _, p := range l.pubs {
		wg.Go(func() { l.publish(pctx, p, start) })
	}
	wg.Wait()
	l.pubEnd = time.Now()
	out := make([]int64, len(l.published))
	for i := range l.published {
		out[i] = l.published[i].Load()
	}
	return out
}

// publish runs one publisher's schedule.
func (l *Load) publish(ctx context.Context, p publisher, start time.Time) {
	sch := newSchedule(start, l.cfg.Rate, p.index, l.cfg.TotalPublishers, l.cfg.Duration)
	n := sch.count()
	rng := mrand.New(mrand.NewPCG(l.cfg.Seed, uint64(p.index)))
	var opts []client.PublishOption
	if l.cfg.Transient {
		opts = append(opts, client.Transient())
	}
	if l.cfg.Codec == CodecMsgpack {
		opts = append(opts, client.Binary()) // the payload's bytes travel as bin
	}
	window := make(chan struct{}, l.cfg.InFlight)
	lag := newHistogram()
	var inflight sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
loop:
	for k := range n {
		due := sch.due(k)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				break loop
			}
		}
		select {
		case window <- struct{}{}:
		default:
			l.windowWaits.Add(1)
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				break loop
			}
		}
		record(lag, time.Since(due))
		room := 0
		if len(l.rooms) > 1 {
			room = rng.IntN(len(l.rooms))
		}
		data := appendPayload(make([]byte, 0, l.cfg.PayloadBytes), due.UnixNano(), p.index, k, l.cfg.PayloadBytes)
		l.sent.Add(1)
		l.sentTo[room].Add(1)
		inflight.Go(func() {
			defer func() { <-window }()
			if _, err := p.c.Publish(ctx, l.rooms[room], data, opts...); err != nil {
				l.publishFailed.Add(1)
				l.errs.add("publish", err)
				return
			}
			l.published[room].Add(1)
		})
	}
	inflight.Wait()
	l.lagMu.Lock()
	l.lag.Merge(lag)
	l.lagMu.Unlock()
}

// Drain waits until this process's subscribers have received expected
// messages, Config.DrainTimeout has passed, or ctx ends.
func (l *Load) Drain(ctx context.Context, expected int64) {
	l.expected = expected
	deadline := time.Now().Add(l.cfg.DrainTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for l.delivered.Load() < expected && time.Now().Before(deadline) {
		select {
		case <-tick.C:
		case <-ctx.Done():
			deadline = time.Time{}
		}
	}
	l.drained.Store(true)
	l.drainEnd = time.Now()
	l.cpuEnd = SelfCPU()
}

// Close closes every connection. It does not wait for them to end.
func (l *Load) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.subs {
		_ = c.Close()
	}
	for _, p := range l.pubs {
		_ = p.c.Close()
	}
}

// Report is this process's raw report: counts and encoded histograms, no
// gateway figures (see Run and Finalize).
func (l *Load) Report() (Report, error) {
	l.mu.Lock()
	r := Report{
		StartedAt: l.startedAt,
		Config:    summarize(l.cfg),
		Procs:     1,
		Connections: ConnectionStats{
			Subscribers:      l.cfg.Connections,
			Made:             l.made,
			Failed:           l.failed,
			Publishers:       l.cfg.Publishers,
			PublishersMade:   l.pubMade,
			PublishersFailed: l.pubFail,
			Seconds:          l.connectEnd.Sub(l.connectStart).Seconds(),
		},
		Raw: &Raw{MembersPerRoom: append([]int64(nil), l.members...)},
	}
	l.mu.Unlock()
	total := newHistogram()
	for _, sh := range l.shards {
		sh.mu.Lock()
		total.Merge(sh.h)
		sh.mu.Unlock()
	}
	delivered := total.TotalCount()
	r.Raw.PublishedPerRoom = make([]int64, len(l.published))
	r.Raw.SentPerRoom = make([]int64, len(l.sentTo))
	for i := range l.published {
		r.Raw.PublishedPerRoom[i] = l.published[i].Load()
		r.Raw.SentPerRoom[i] = l.sentTo[i].Load()
	}
	r.Messages = MessageStats{
		Scheduled:      l.scheduled.Load(),
		Sent:           l.sent.Load(),
		PublishFailed:  l.publishFailed.Load(),
		Expected:       l.expected,
		ExpectedMax:    Expected(r.Raw.SentPerRoom, r.Raw.MembersPerRoom),
		Delivered:      delivered,
		Unparsed:       l.unparsed.Load(),
		Late:           l.late.Load(),
		PublishSeconds: l.cfg.Duration.Seconds(),
		WindowSeconds:  l.drainEnd.Sub(l.pubStart).Seconds(),
	}
	for _, n := range r.Raw.PublishedPerRoom {
		r.Messages.Published += n
	}
	r.Schedule.WindowWaits = l.windowWaits.Load()
	r.Resumes = ResumeStats{
		Disconnects: l.disconnects.Load(),
		Resumed:     l.resumed.Load(),
		Unrecovered: l.unrecovered.Load(),
		Ended:       l.ended.Load(),
	}
	r.Errors = l.errs.snapshot()
	r.Loadgen = LoadgenStats{
		Procs:      1,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		CPUSeconds: (l.cpuEnd - l.cpuStart).Seconds(),
	}
	// Each process judges its own saturation against its own cores; the
	// merged report only sees the sum.
	if w := r.Messages.WindowSeconds; w > 0 && r.Loadgen.CPUSeconds/w >= saturated*float64(r.Loadgen.GOMAXPROCS) {
		r.Warnings = append(r.Warnings, fmt.Sprintf(
			"load generator process used %.2f of its %d cores (≥ %.0f%%): it may have been the bottleneck",
			r.Loadgen.CPUSeconds/w, r.Loadgen.GOMAXPROCS, saturated*100))
	}
	var err error
	if r.Raw.LatencyHistogram, err = encode(total); err != nil {
		return r, err
	}
	l.lagMu.Lock()
	r.Raw.LagHistogram, err = encode(l.lag)
	l.lagMu.Unlock()
	return r, err
}

func encode(h *hdr.Histogram) (string, error) {
	b, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		return "", fmt.Errorf("loadgen: encode histogram: %w", err)
	}
	return string(b), nil
}

func decode(s string) (*hdr.Histogram, error) {
	if s == "" {
		return newHistogram(), nil
	}
	h, err := hdr.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("loadgen: decode histogram: %w", err)
	}
	return h, nil
}

// Run performs a whole bench run in this process: the floor (unless
// skipped), connect, publish, drain, and the gateways' CPU and memory
// around them. The returned report is finalized.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return Report{}, err
	}
	floor, paced, err := Floors(ctx, cfg)
	if err != nil {
		return Report{}, err
	}
	probe, err := StartProbe(cfg.GatewayPIDs)
	if err != nil {
		return Report{}, err
	}
	l, err := Connect(ctx, cfg)
	if err != nil {
		return Report{}, err
	}
	defer l.Close()
	if err := probe.Connected(); err != nil {
		return Report{}, err
	}
	start := time.Now()
	if err := probe.Start(); err != nil {
		return Report{}, err
	}
	published := l.Publish(ctx, start)
	l.Drain(ctx, Expected(published, l.Members()))
	if err := probe.Stop(); err != nil {
		return Report{}, err
	}
	r, err := l.Report()
	if err != nil {
		return r, err
	}
	r.Floor, r.PacedFloor = floor, paced
	r.Gateways = probe.Stats()
	r.Machine = probe.Machine()
	r.Finalize()
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("loadgen: run: %w", err)
	}
	return r, nil
}

// Expected is the number of deliveries to expect: every acknowledged
// publish to a room, once per member of that room.
func Expected(publishedPerRoom, membersPerRoom []int64) int64 {
	var n int64
	for i, p := range publishedPerRoom {
		if i < len(membersPerRoom) {
			n += p * membersPerRoom[i]
		}
	}
	return n
}
