package loadgen

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// saturated is the share of its cores at which a process counts as the
// bottleneck.
const saturated = 0.8

// lagWarnMillis is the schedule lag p99 above which publishers count as
// behind their schedule.
const lagWarnMillis = 10

// Report is what a bench run measured. Counts are exact; figures derived
// from them (fractions, rates, percentiles, per-million costs, warnings)
// are computed by Finalize.
type Report struct {
	StartedAt time.Time `json:"started_at"`
	Config    Summary   `json:"config"`
	// Procs is the number of load generator processes.
	Procs int `json:"procs"`

	Connections ConnectionStats `json:"connections"`
	Messages    MessageStats    `json:"messages"`
	// Latency is publish (scheduled send time) to receipt by a subscriber.
	Latency  LatencyStats  `json:"latency_ms"`
	Schedule ScheduleStats `json:"schedule"`
	Resumes  ResumeStats   `json:"resumes"`
	// Errors counts failures by "<phase>:<code>": phase is dial, join,
	// publish, disconnect (a live connection lost) or ended (a connection
	// that gave up); code is the server's error code, "close_<code>_<name>",
	// "http_<status>" or a local name (timeout, connection_refused, …).
	Errors map[string]int64 `json:"errors,omitempty"`

	// Gateways is the gateway processes' cost (when their PIDs were given).
	Gateways *GatewayStats `json:"gateways,omitempty"`
	// Loadgen is the load generator's own cost.
	Loadgen LoadgenStats `json:"loadgen"`
	// Machine is how busy the whole machine was over the window.
	Machine *MachineStats `json:"machine,omitempty"`
	// Floor is raw loopback writes measured in the same run, and
	// FloorRatio the gateways' CPU per 1M deliveries divided by the
	// floor's.
	Floor      *FloorReport `json:"floor,omitempty"`
	FloorRatio float64      `json:"floor_ratio,omitempty"`
	// PacedFloor is the floor paced like the workload (Config.PacedFloor),
	// whose readers sleep between bursts as the clients do, and
	// PacedFloorRatio the gateways' CPU per 1M deliveries divided by it.
	PacedFloor      *FloorReport `json:"paced_floor,omitempty"`
	PacedFloorRatio float64      `json:"paced_floor_ratio,omitempty"`

	// Warnings say when a figure should not be trusted as the gateway's:
	// the load generator or the machine was saturated, publishers fell
	// behind their schedule.
	Warnings []string `json:"warnings,omitempty"`

	// Raw is what Merge needs to combine reports exactly.
	Raw *Raw `json:"raw,omitempty"`
}

// Summary is the run's configuration, without credentials.
type Summary struct {
	URLs            []string `json:"urls"`
	Connections     int      `json:"connections"`
	Publishers      int      `json:"publishers"`
	Rooms           string   `json:"rooms"`
	RoomCount       int      `json:"room_count"`
	RoomPrefix      string   `json:"room_prefix"`
	Rate            float64  `json:"rate"`
	DurationSeconds float64  `json:"duration_seconds"`
	PayloadBytes    int      `json:"payload_bytes"`
	Transient       bool     `json:"transient"`
	Codec           string   `json:"codec,omitempty"`
	InFlight        int      `json:"in_flight"`
	Idle            bool     `json:"idle,omitempty"`
	ConnectRate     float64  `json:"connect_rate"`
	QueuedHandlers  bool     `json:"queued_handlers,omitempty"`
}

func summarize(cfg Config) Summary {
	return Summary{
		URLs:            cfg.URLs,
		Connections:     cfg.TotalConnections,
		Publishers:      cfg.TotalPublishers,
		Rooms:           cfg.Rooms,
		RoomCount:       cfg.RoomCount,
		RoomPrefix:      cfg.RoomPrefix,
		Rate:            cfg.Rate,
		DurationSeconds: cfg.Duration.Seconds(),
		PayloadBytes:    cfg.PayloadBytes,
		Transient:       cfg.Transient,
		Codec:           cfg.Codec,
		InFlight:        cfg.InFlight,
		Idle:            cfg.Idle,
		ConnectRate:     cfg.ConnectRate,
		QueuedHandlers:  cfg.QueuedHandlers,
	}
}

// ConnectionStats counts connections. Made subscribers are those that
// connected and joined their room.
type ConnectionStats struct {
	Subscribers      int `json:"subscribers"`
	Made             int `json:"made"`
	Failed           int `json:"failed"`
	Publishers       int `json:"publishers"`
	PublishersMade   int `json:"publishers_made"`
	PublishersFailed int `json:"publishers_failed"`
	// Seconds is from the first dial to the last connection made (the
	// longest of all processes'); RatePerSecond is connections made
	// (subscribers and publishers) per second over it.
	Seconds       float64 `json:"seconds"`
	RatePerSecond float64 `json:"rate_per_second"`
}

// MessageStats counts messages. Scheduled is what the schedule planned
// (Rate × Duration), Sent what left, Published what the gateways
// acknowledged, Expected = Σ over rooms of published × members, Delivered
// what subscribers received during the window.
type MessageStats struct {
	Scheduled     int64 `json:"scheduled"`
	Sent          int64 `json:"sent"`
	Published     int64 `json:"published"`
	PublishFailed int64 `json:"publish_failed"`
	Expected      int64 `json:"expected_deliveries"`
	// ExpectedMax counts every sent message, acknowledged or not: a
	// publish whose reply failed or timed out may still have been stored
	// and delivered, so Delivered lies between Expected and ExpectedMax
	// when all went through.
	ExpectedMax int64 `json:"expected_deliveries_max"`
	Delivered   int64 `json:"delivered"`
	// DeliveredFraction is Delivered / Expected. It exceeds 1 when
	// publishes that failed (publish_failed, a timed-out reply) were
	// delivered anyway; compare with ExpectedMax.
	DeliveredFraction float64 `json:"delivered_fraction"`
	// Unparsed counts received messages without a send time (not ours).
	Unparsed int64 `json:"unparsed,omitempty"`
	// Late counts messages received after the window ended (not in
	// Delivered), until the report was taken.
	Late int64 `json:"late,omitempty"`
	// PublishSeconds is the schedule's length; WindowSeconds runs from
	// the first scheduled send until every expected delivery arrived (or
	// the drain timeout).
	PublishSeconds     float64 `json:"publish_seconds"`
	WindowSeconds      float64 `json:"window_seconds"`
	OfferedPerSecond   float64 `json:"offered_per_second"`
	DeliveredPerSecond float64 `json:"delivered_per_second"`
}

// LatencyStats are percentiles in milliseconds.
type LatencyStats struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// ScheduleStats tells how late publishes left against their schedule
// (milliseconds). A large lag means the load generator could not offer
// the rate; those messages still carry their scheduled time, so the lag
// is inside the latency figures.
type ScheduleStats struct {
	LagP50 float64 `json:"lag_p50_ms"`
	LagP99 float64 `json:"lag_p99_ms"`
	LagMax float64 `json:"lag_max_ms"`
	// WindowWaits counts sends that waited because InFlight publishes
	// were already awaiting their reply.
	WindowWaits int64 `json:"window_waits"`
}

// ResumeStats counts connections lost and resumed during the run.
type ResumeStats struct {
	Disconnects int64 `json:"disconnects"`
	Resumed     int64 `json:"resumed"`
	Unrecovered int64 `json:"unrecovered"`
	Ended       int64 `json:"ended"`
}

// GatewayStats is the gateway processes' cost over the measured window.
type GatewayStats struct {
	PIDs          []int   `json:"pids"`
	WindowSeconds float64 `json:"window_seconds"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	// Cores is CPUSeconds / WindowSeconds.
	Cores float64 `json:"cores"`
	// CPUPerMillion is CPU-seconds per 1M deliveries.
	CPUPerMillion float64 `json:"cpu_seconds_per_million"`
	// RSS sums, in bytes: before any connection, once all were connected,
	// at the end of the window.
	RSSBefore    int64 `json:"rss_before_bytes"`
	RSSConnected int64 `json:"rss_connected_bytes"`
	RSSEnd       int64 `json:"rss_end_bytes"`
	// RSSPerConnection is (RSSConnected − RSSBefore) / connections made
	// (subscribers and publishers).
	RSSPerConnection float64       `json:"rss_per_connection_bytes"`
	Each             []GatewayProc `json:"each"`
}

// GatewayProc is one gateway process's share.
type GatewayProc struct {
	PID          int     `json:"pid"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	RSSBefore    int64   `json:"rss_before_bytes"`
	RSSConnected int64   `json:"rss_connected_bytes"`
	RSSEnd       int64   `json:"rss_end_bytes"`
}

// MachineStats is the whole machine's CPU use over the window, from
// /proc/stat: every process counts, the brokers and unrelated ones too.
type MachineStats struct {
	CPUs      int     `json:"cpus"`
	BusyCores float64 `json:"busy_cores"`
}

// LoadgenStats is the load generator's own cost over the window, summed
// over its processes.
type LoadgenStats struct {
	Procs         int     `json:"procs"`
	GOMAXPROCS    int     `json:"gomaxprocs"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	Cores         float64 `json:"cores"`
	CPUPerMillion float64 `json:"cpu_seconds_per_million"`
}

// Raw holds what merging needs: per-room members, acknowledged publishes
// and sent messages, and the encoded (HdrHistogram V2, base64) histograms of
// latency and schedule lag in microseconds.
type Raw struct {
	MembersPerRoom   []int64 `json:"members_per_room"`
	PublishedPerRoom []int64 `json:"published_per_room"`
	SentPerRoom      []int64 `json:"sent_per_room"`
	LatencyHistogram string  `json:"latency_histogram"`
	LagHistogram     string  `json:"lag_histogram"`
}

// Merge combines the reports of the worker processes of one run: counts
// add up, histograms merge exactly, per-room members and publishes add up
// so Expected is recomputed over the whole run. Gateway figures and the
// floor are the coordinator's to set; call Finalize afterwards.
func Merge(reports []Report) (Report, error) {
	if len(reports) == 0 {
		return Report{}, fmt.Errorf("loadgen: merge of no reports")
	}
	out := Report{StartedAt: reports[0].StartedAt, Config: reports[0].Config, Raw: &Raw{}}
	lat, lag := newHistogram(), newHistogram()
	for _, r := range reports {
		if r.Raw == nil {
			return Report{}, fmt.Errorf("loadgen: merge: a report without raw data")
		}
		if r.StartedAt.Before(out.StartedAt) {
			out.StartedAt = r.StartedAt
		}
		out.Procs += r.Procs
		c := &out.Connections
		c.Subscribers += r.Connections.Subscribers
		c.Made += r.Connections.Made
		c.Failed += r.Connections.Failed
		c.Publishers += r.Connections.Publishers
		c.PublishersMade += r.Connections.PublishersMade
		c.PublishersFailed += r.Connections.PublishersFailed
		c.Seconds = max(c.Seconds, r.Connections.Seconds)
		m := &out.Messages
		m.Scheduled += r.Messages.Scheduled
		m.Sent += r.Messages.Sent
		m.Published += r.Messages.Published
		m.PublishFailed += r.Messages.PublishFailed
		m.Delivered += r.Messages.Delivered
		m.Unparsed += r.Messages.Unparsed
		m.Late += r.Messages.Late
		m.PublishSeconds = max(m.PublishSeconds, r.Messages.PublishSeconds)
		m.WindowSeconds = max(m.WindowSeconds, r.Messages.WindowSeconds)
		out.Schedule.WindowWaits += r.Schedule.WindowWaits
		out.Resumes.Disconnects += r.Resumes.Disconnects
		out.Resumes.Resumed += r.Resumes.Resumed
		out.Resumes.Unrecovered += r.Resumes.Unrecovered
		out.Resumes.Ended += r.Resumes.Ended
		for k, v := range r.Errors {
			if out.Errors == nil {
				out.Errors = make(map[string]int64)
			}
			out.Errors[k] += v
		}
		out.Loadgen.Procs += r.Loadgen.Procs
		out.Loadgen.GOMAXPROCS = max(out.Loadgen.GOMAXPROCS, r.Loadgen.GOMAXPROCS)
		out.Loadgen.CPUSeconds += r.Loadgen.CPUSeconds
		out.Warnings = appendNew(out.Warnings, r.Warnings...)
		out.Raw.MembersPerRoom = addInto(out.Raw.MembersPerRoom, r.Raw.MembersPerRoom)
		out.Raw.PublishedPerRoom = addInto(out.Raw.PublishedPerRoom, r.Raw.PublishedPerRoom)
		out.Raw.SentPerRoom = addInto(out.Raw.SentPerRoom, r.Raw.SentPerRoom)
		for _, x := range []struct {
			into *hdr.Histogram
			enc  string
		}{{lat, r.Raw.LatencyHistogram}, {lag, r.Raw.LagHistogram}} {
			h, err := decode(x.enc)
			if err != nil {
				return Report{}, err
			}
			if dropped := x.into.Merge(h); dropped > 0 {
				return Report{}, fmt.Errorf("loadgen: merge: %d histogram values out of range", dropped)
			}
		}
	}
	var err error
	if out.Raw.LatencyHistogram, err = encode(lat); err != nil {
		return Report{}, err
	}
	if out.Raw.LagHistogram, err = encode(lag); err != nil {
		return Report{}, err
	}
	return out, nil
}

func addInto(dst, src []int64) []int64 {
	for len(dst) < len(src) {
		dst = append(dst, 0)
	}
	for i, v := range src {
		dst[i] += v
	}
	return dst
}

func appendNew(dst []string, src ...string) []string {
	for _, s := range src {
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}

// Finalize computes the derived figures from the counts (and Raw, when
// present): Expected, fractions, rates, percentiles, per-million costs,
// the floor ratio and the warnings. It may be called again after counts
// change.
func (r *Report) Finalize() {
	m := &r.Messages
	if r.Raw != nil {
		m.Expected = Expected(r.Raw.PublishedPerRoom, r.Raw.MembersPerRoom)
		m.ExpectedMax = Expected(r.Raw.SentPerRoom, r.Raw.MembersPerRoom)
		if h, err := decode(r.Raw.LatencyHistogram); err == nil {
			r.Latency = latencyOf(h)
		}
		if h, err := decode(r.Raw.LagHistogram); err == nil {
			r.Schedule.LagP50 = ms(h.ValueAtQuantile(50))
			r.Schedule.LagP99 = ms(h.ValueAtQuantile(99))
			r.Schedule.LagMax = ms(h.Max())
		}
	}
	m.DeliveredFraction = ratio(float64(m.Delivered), float64(m.Expected))
	m.OfferedPerSecond = ratio(float64(m.Sent), m.PublishSeconds)
	m.DeliveredPerSecond = ratio(float64(m.Delivered), m.WindowSeconds)
	c := &r.Connections
	c.RatePerSecond = ratio(float64(c.Made+c.PublishersMade), c.Seconds)

	lg := &r.Loadgen
	lg.Cores = ratio(lg.CPUSeconds, m.WindowSeconds)
	lg.CPUPerMillion = ratio(lg.CPUSeconds*1e6, float64(m.Delivered))
	if g := r.Gateways; g != nil {
		g.Cores = ratio(g.CPUSeconds, g.WindowSeconds)
		g.CPUPerMillion = ratio(g.CPUSeconds*1e6, float64(m.Delivered))
		g.RSSPerConnection = ratio(float64(g.RSSConnected-g.RSSBefore), float64(c.Made+c.PublishersMade))
		if r.Floor != nil {
			r.FloorRatio = ratio(g.CPUPerMillion, r.Floor.CPUPerMillion)
		}
		if r.PacedFloor != nil {
			r.PacedFloorRatio = ratio(g.CPUPerMillion, r.PacedFloor.CPUPerMillion)
		}
		if lg.CPUPerMillion > g.CPUPerMillion && m.Delivered > 0 {
			r.Warnings = appendNew(r.Warnings, fmt.Sprintf(
				"the load generator spent more CPU per delivery (%.2f s per 1M) than the gateways (%.2f s per 1M): on a shared machine it may have been the bottleneck",
				lg.CPUPerMillion, g.CPUPerMillion))
		}
		if busy := ratio(lg.CPUSeconds+g.CPUSeconds, m.WindowSeconds); busy >= saturated*float64(runtime.NumCPU()) {
			r.Warnings = appendNew(r.Warnings, fmt.Sprintf(
				"the machine was saturated: load generator and gateways used %.2f of %d cores; figures are bounded by this machine's CPU",
				busy, runtime.NumCPU()))
		}
	}
	if mc := r.Machine; mc != nil && mc.BusyCores >= saturated*float64(mc.CPUs) {
		r.Warnings = appendNew(r.Warnings, fmt.Sprintf(
			"the machine was busy: %.2f of %d cores over the window (all processes, brokers included); latency and throughput are bounded by this machine's CPU",
			mc.BusyCores, mc.CPUs))
	}
	if m.Sent > 0 && r.Schedule.LagP99 > lagWarnMillis {
		r.Warnings = appendNew(r.Warnings, fmt.Sprintf(
			"publishers fell behind their schedule (lag p99 %.1f ms, max %.1f ms): the offered rate was not met on time; the lag is included in the latency",
			r.Schedule.LagP99, r.Schedule.LagMax))
	}
}

func latencyOf(h *hdr.Histogram) LatencyStats {
	if h.TotalCount() == 0 {
		return LatencyStats{}
	}
	return LatencyStats{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}

// ms converts histogram microseconds to milliseconds.
func ms(us int64) float64 { return float64(us) / 1000 }

// ratio is a/b, or 0 when b is 0 (a figure that cannot be computed is
// reported as 0, never as Inf or NaN, which JSON cannot carry).
func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return 0
	}
	return a / b
}

// WriteTable writes r as a table for people.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	c, m, l := r.Config, r.Messages, r.Latency
	mode := "durable"
	if c.Transient {
		mode = "transient"
	}
	if c.Codec != "" {
		mode += " " + c.Codec
	}
	rooms := "1 room"
	if c.Rooms == RoomsMany {
		rooms = fmt.Sprintf("%d rooms", c.RoomCount)
	}
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", name, fmt.Sprintf(format, args...))
	}
	if c.Idle {
		row("workload", "%d idle subscribers in %s over %d gateway URL(s), held %s", c.Connections, rooms, len(c.URLs), dur(c.DurationSeconds))
	} else {
		handlers := "on the reader"
		if c.QueuedHandlers {
			handlers = "queued"
		}
		row("workload", "%d subscribers in %s, %d publisher(s) offering %s msg/s for %s, %d-byte %s messages, %d gateway URL(s), %d load generator process(es), handlers %s",
			c.Connections, rooms, c.Publishers, num(c.Rate), dur(c.DurationSeconds), c.PayloadBytes, mode, len(c.URLs), r.Procs, handlers)
	}
	cs := r.Connections
	row("connections", "subscribers %d/%d made (%d failed), publishers %d/%d (%d failed), %.0f/s over %.2f s",
		cs.Made, cs.Subscribers, cs.Failed, cs.PublishersMade, cs.Publishers, cs.PublishersFailed, cs.RatePerSecond, cs.Seconds)
	if !c.Idle {
		row("messages", "scheduled %d, sent %d (%s/s offered), published %d, publish failed %d",
			m.Scheduled, m.Sent, num(m.OfferedPerSecond), m.Published, m.PublishFailed)
		expected := strconv.FormatInt(m.Expected, 10)
		if m.ExpectedMax != m.Expected {
			expected += fmt.Sprintf(" (%d counting unacknowledged sends)", m.ExpectedMax)
		}
		late := ""
		if m.Late > 0 {
			late = fmt.Sprintf(" (%d more after the window)", m.Late)
		}
		row("deliveries", "expected %s, delivered %d%s, fraction %.4f, %s/s over a %.2f s window",
			expected, m.Delivered, late, m.DeliveredFraction, num(m.DeliveredPerSecond), m.WindowSeconds)
		row("latency ms", "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%d)",
			flt(l.P50), flt(l.P90), flt(l.P99), flt(l.P999), flt(l.Max), l.Count)
		row("schedule lag ms", "p50 %s  p99 %s  max %s, window waits %d",
			flt(r.Schedule.LagP50), flt(r.Schedule.LagP99), flt(r.Schedule.LagMax), r.Schedule.WindowWaits)
	}
	row("resumes", "disconnects %d, resumed %d (%d unrecovered), ended %d",
		r.Resumes.Disconnects, r.Resumes.Resumed, r.Resumes.Unrecovered, r.Resumes.Ended)
	if len(r.Errors) == 0 {
		row("errors", "none")
	} else {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %d", k, r.Errors[k])
		}
		row("errors", "%s", strings.Join(parts, ", "))
	}
	if g := r.Gateways; g != nil {
		row("gateways", "%d process(es): CPU %.2f s (%.2f cores) over %.2f s, %s CPU-s per 1M deliveries",
			len(g.PIDs), g.CPUSeconds, g.Cores, g.WindowSeconds, flt(g.CPUPerMillion))
		row("gateway memory", "RSS %s before, %s connected, %s at end: %s per connection",
			bytesize(float64(g.RSSBefore)), bytesize(float64(g.RSSConnected)), bytesize(float64(g.RSSEnd)), bytesize(g.RSSPerConnection))
	}
	// floorRow prints a floor and the gateways' ratio to it.
	floorRow := func(name, how string, f *FloorReport, ratio float64) {
		s := fmt.Sprintf("%s CPU-s per 1M deliveries (%d sockets, %s)", flt(f.CPUPerMillion), f.Sockets, how)
		if ratio > 0 {
			s += fmt.Sprintf("; gateways at %.2f× the %s", ratio, name)
		}
		row(name, "%s", s)
	}
	if f := r.Floor; f != nil {
		floorRow("floor", fmt.Sprintf("%d frame(s) of %d B per write", f.Coalesce, f.FrameBytes), f, r.FloorRatio)
	}
	if f := r.PacedFloor; f != nil {
		floorRow("paced floor", fmt.Sprintf("paced at %g/s in bursts of %d", f.Rate, f.Burst), f, r.PacedFloorRatio)
	}
	if mc := r.Machine; mc != nil {
		row("machine", "%.2f of %d cores busy over the window (all processes)", mc.BusyCores, mc.CPUs)
	}
	row("load generator", "CPU %.2f s (%.2f cores, %d process(es), GOMAXPROCS %d), %s CPU-s per 1M deliveries",
		r.Loadgen.CPUSeconds, r.Loadgen.Cores, r.Loadgen.Procs, r.Loadgen.GOMAXPROCS, flt(r.Loadgen.CPUPerMillion))
	for _, warn := range r.Warnings {
		row("WARNING", "%s", warn)
	}
	return tw.Flush()
}

func flt(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return fmt.Sprintf("%.3g", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func num(v float64) string {
	if v >= 100 || v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func dur(seconds float64) string {
	return time.Duration(seconds * float64(time.Second)).String()
}

func bytesize(b float64) string {
	neg := ""
	if b < 0 {
		neg, b = "-", -b
	}
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%s%.2f GiB", neg, b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%s%.1f MiB", neg, b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%s%.2f KiB", neg, b/(1<<10))
	}
	return fmt.Sprintf("%s%.0f B", neg, b)
}
