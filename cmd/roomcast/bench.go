package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/roomcast/roomcast/pkg/loadgen"
)

// listFlag collects a repeatable flag whose values may also be
// comma-separated.
type listFlag struct{ vals []string }

func (f *listFlag) String() string {
	if f == nil {
		return ""
	}
	return strings.Join(f.vals, ",")
}

func (f *listFlag) Set(s string) error {
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			f.vals = append(f.vals, v)
		}
	}
	return nil
}

// pidsFlag collects process ids: repeated or comma-separated.
type pidsFlag struct{ pids []int }

func (f *pidsFlag) String() string {
	if f == nil {
		return ""
	}
	s := make([]string, len(f.pids))
	for i, p := range f.pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

func (f *pidsFlag) Set(s string) error {
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		p, err := strconv.Atoi(v)
		if err != nil || p <= 0 {
			return fmt.Errorf("%q is not a process id", v)
		}
		f.pids = append(f.pids, p)
	}
	return nil
}

const benchAbout = `Load-tests gateways: opens --connections subscriber connections spread over
the --url gateways at --connect-rate, joins them to rooms (--rooms one: all in
one room; many: connection i joins room i % --room-count), then --publishers
connections publish --rate messages per second in total for --duration, on a
fixed schedule that does not slow down when the server does. Each message
carries its scheduled send time; subscribers measure latency against it.

The report (a table, or JSON with --json) gives connections made and failed
and the connect rate, offered vs delivered messages (expected deliveries =
acknowledged publishes × members of their room) and the delivered fraction,
latency p50/p90/p99/max, resumes, errors by code, the load generator's own CPU,
and — with --pids — the gateways' CPU seconds per 1M deliveries, RSS per
connection and the ratio to the floor (raw loopback writes, measured first in
the same run; see 'roomcast bench floor'). --paced-floor auto adds the ratio
to a floor paced like one gateway's share of the workload, whose readers sleep
between messages as real clients do. Warnings say when the load generator or
the machine was the bottleneck.

The load generator runs its garbage collector at GOGC=400 unless GOGC is
set: it holds little memory, and it spends less CPU that way.

--procs K runs K worker processes (this binary re-executed), each with a slice
of the connections and publishers, and merges their reports exactly.
--publisher-procs P puts the publishers in P worker processes of their own
(with --procs K subscriber workers), so that a publisher's schedule and
replies do not wait behind thousands of receiving goroutines.

Subcommand: 'roomcast bench floor --help'.`

// loadGenGCPercent is the load generator's GC target unless GOGC is set:
// it holds little memory, and at a million deliveries a second the
// collector at Go's default (100) took ~10 % of its CPU.
const loadGenGCPercent = 400

// tuneLoadGenGC applies loadGenGCPercent to this process.
func tuneLoadGenGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(loadGenGCPercent)
	}
}

func runBench(ctx context.Context, args []string, e *env) int {
	if len(args) > 0 {
		switch args[0] {
		case "floor":
			return runBenchFloor(ctx, args[1:], e)
		case benchWorkerArg:
			tuneLoadGenGC()
			return runBenchWorker(ctx, e)
		}
	}
	tuneLoadGenGC()
	fs := newFlagSet("bench",
		"roomcast bench [--url URL]... (--key K | --token T) [flags]\n       roomcast bench floor [flags]",
		benchAbout)
	var urls listFlag
	var pids pidsFlag
	fs.Var(&urls, "url", "gateway WebSocket `URL`; repeat or comma-separate for several gateways (env ROOMCAST_URL, comma-separated; default "+defaultURL+")")
	key := fs.String("key", "", "API key `<app>.<keyId>:<secret>` to mint one token per connection with (env ROOMCAST_KEY)")
	tok := fs.String("token", "", "one client `token` for every connection; must allow join and publish on the bench rooms (env ROOMCAST_TOKEN)")
	conns := fs.Int("connections", 100, "number of subscriber connections")
	connectRate := fs.Float64("connect-rate", 500, "connections opened per second")
	connectTimeout := fs.Duration("connect-timeout", 30*time.Second, "time limit for one connection's dial and join")
	rooms := fs.String("rooms", loadgen.RoomsOne, "room `pattern`: one (every subscriber in one room) or many (see --room-count)")
	roomCount := fs.Int("room-count", 10, "number of rooms with --rooms many; subscriber i joins room i % `n`")
	roomPrefix := fs.String("room-prefix", "", "`prefix` of the room names (default bench.<random>.)")
	pubs := fs.Int("publishers", 1, "number of publishing connections (they do not join); with --rooms many each message goes to a random room")
	rate := fs.Float64("rate", 100, "offered `messages` per second, in total over all publishers")
	duration := fs.Duration("duration", 10*time.Second, "how long to publish (or, with --idle, to hold the connections)")
	payload := fs.Int("payload", 64, "message data size in `bytes` (at least ~60: it carries the send time)")
	transient := fs.Bool("transient", false, "publish transient messages (no offsets, no Redis, no recovery)")
	codec := fs.String("codec", loadgen.CodecJSON, "wire `encoding` of every connection: json (roomcast.v1.json) or msgpack (roomcast.v1.msgpack; payloads published as binary)")
	inFlight := fs.Int("in-flight", 256, "publishes one publisher may have awaiting their reply before the next send waits")
	idle := fs.Bool("idle", false, "publish nothing: connect, join, hold for --duration (memory per idle connection)")
	drain := fs.Duration("drain-timeout", 10*time.Second, "how long to wait after the last publish for the expected deliveries")
	msgBuf := fs.Int("message-buffer", 0, "SDK message buffer per subscriber (default the SDK's, 1024; with --queued-handlers)")
	queued := fs.Bool("queued-handlers", false, "run the receive handler on the SDK's delivery goroutine, behind its message buffer (default: on the connection's reader, InlineHandlers)")
	fs.Var(&pids, "pids", "gateway process `ids` (this machine) to account CPU and RSS for; repeat or comma-separate (env ROOMCAST_BENCH_PIDS)")
	procs := fs.Int("procs", 1, "number of load generator worker processes")
	pubProcs := fs.Int("publisher-procs", 0, "worker processes for the publishers alone (0: publishers share the --procs workers)")
	noFloor := fs.Bool("no-floor", false, "skip the floor measurement")
	floorMsgs := fs.Int64("floor-messages", 200_000, "deliveries of the floor measured before the run")
	pacedFloor := fs.String("paced-floor", "", "also measure a floor paced like the workload: auto (one gateway's share of the deliveries, its sockets, one message's local members per burst) or a rate in deliveries/s; 5 s long; see 'bench floor --rate'")
	pacedBurst := fs.Int("paced-floor-burst", 0, "sockets per burst of the paced floor (0: all --paced-floor-sockets)")
	pacedSockets := fs.Int("paced-floor-sockets", 1000, "sockets of the paced floor")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	raw := fs.Bool("raw", false, "with --json, include the raw data (per-room counts, encoded histograms) needed to merge reports")
	quiet := fs.Bool("quiet", false, "log only warnings on stderr")
	cpuProfile := fs.String("cpuprofile", "", "write the load generator's CPU profile (pprof) to `file`, to see what the load generator itself spends")
	fs.env("url", "ROOMCAST_URL")
	fs.env("key", "ROOMCAST_KEY")
	fs.env("token", "ROOMCAST_TOKEN")
	fs.env("pids", "ROOMCAST_BENCH_PIDS")
	if code, ok := fs.parse(args, e); !ok {
		return code
	}
	if fs.NArg() != 0 {
		return fs.usageError(e, "unexpected argument %q", fs.Arg(0))
	}
	if len(urls.vals) == 0 {
		urls.vals = []string{defaultURL}
	}
	if *tok != "" && *key != "" {
		switch tokExplicit, keyExplicit := fs.explicit("token"), fs.explicit("key"); {
		case tokExplicit && !keyExplicit:
			*key = ""
		case keyExplicit && !tokExplicit:
			*tok = ""
		default:
			return fs.usageError(e, "give --token or --key, not both")
		}
	}
	if *tok == "" && *key == "" {
		return fs.usageError(e, "--key or --token is required (or ROOMCAST_KEY / ROOMCAST_TOKEN)")
	}
	if *rooms != loadgen.RoomsOne && *rooms != loadgen.RoomsMany {
		return fs.usageError(e, "--rooms must be %s or %s", loadgen.RoomsOne, loadgen.RoomsMany)
	}
	if *codec != loadgen.CodecJSON && *codec != loadgen.CodecMsgpack {
		return fs.usageError(e, "--codec must be %s or %s", loadgen.CodecJSON, loadgen.CodecMsgpack)
	}
	if *roomCount < 1 {
		return fs.usageError(e, "--room-count must be at least 1")
	}
	var pacedRate float64
	if *pacedFloor != "" && *pacedFloor != "auto" {
		r, err := strconv.ParseFloat(*pacedFloor, 64)
		if err != nil || r < 0 {
			return fs.usageError(e, "--paced-floor must be auto or a rate of deliveries/s")
		}
		pacedRate = r
	}
	if *pacedBurst < 0 || *pacedSockets < 1 {
		return fs.usageError(e, "--paced-floor-burst must not be negative, --paced-floor-sockets at least 1")
	}
	if *procs < 1 {
		return fs.usageError(e, "--procs must be at least 1")
	}
	if *pubProcs < 0 || (*pubProcs > 0 && (*idle || *pubProcs > *pubs)) {
		return fs.usageError(e, "--publisher-procs must be between 0 and --publishers (and 0 with --idle)")
	}
	if *conns < 1 {
		return fs.usageError(e, "--connections must be at least 1")
	}
	if *pubs < 1 && !*idle {
		return fs.usageError(e, "--publishers must be at least 1")
	}
	for name, v := range map[string]float64{"connect-rate": *connectRate, "rate": *rate} {
		if v <= 0 {
			return fs.usageError(e, "--%s must be positive", name)
		}
	}
	if *duration <= 0 || *drain <= 0 {
		return fs.usageError(e, "--duration and --drain-timeout must be positive")
	}
	level := slog.LevelInfo
	if *quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	cfg := loadgen.Config{
		URLs:           urls.vals,
		Connections:    *conns,
		ConnectRate:    *connectRate,
		ConnectTimeout: *connectTimeout,
		Rooms:          *rooms,
		RoomCount:      *roomCount,
		RoomPrefix:     *roomPrefix,
		Publishers:     *pubs,
		Rate:           *rate,
		Duration:       *duration,
		PayloadBytes:   *payload,
		Transient:      *transient,
		Codec:          *codec,
		InFlight:       *inFlight,
		Idle:           *idle,
		Key:            *key,
		Token:          *tok,
		GatewayPIDs:    pids.pids,
		DrainTimeout:   *drain,
		MessageBuffer:  *msgBuf,
		QueuedHandlers: *queued,
		Floor:          loadgen.FloorConfig{Deliveries: *floorMsgs},
		PacedFloor:     loadgen.PacedFloor(*pacedSockets, pacedRate, *pacedBurst),
		SkipFloor:      *noFloor,
		Logger:         log,
	}
	if *pacedFloor == "auto" {
		cfg.PacedFloor = loadgen.PacedFloorFor(cfg)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fail(e, "bench", fmt.Errorf("cpu profile: %w", err))
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(e, "bench", fmt.Errorf("cpu profile: %w", err))
		}
		defer pprof.StopCPUProfile()
	}
	var rep loadgen.Report
	var err error
	if *procs == 1 && *pubProcs == 0 {
		rep, err = loadgen.Run(ctx, cfg)
	} else {
		rep, err = runBenchProcs(ctx, cfg, *procs, *pubProcs, log)
	}
	if err != nil {
		return fail(e, "bench", err)
	}
	return writeReport(e.stdout, &rep, *asJSON, *raw, e)
}

func writeReport(w io.Writer, rep *loadgen.Report, asJSON, raw bool, e *env) int {
	if !raw {
		rep.Raw = nil
	}
	var err error
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteTable(w)
	}
	if err != nil {
		return fail(e, "bench", fmt.Errorf("write report: %w", err))
	}
	return exitOK
}

func runBenchFloor(ctx context.Context, args []string, e *env) int {
	fs := newFlagSet("bench floor",
		"roomcast bench floor [--sockets N] [--messages N] [--coalesce N] [--frame-bytes N] [--rate R [--burst B]] [--json]",
		"Measures the floor of fan-out on this machine: opens --sockets loopback TCP\n"+
			"socket pairs in this process and writes one small WebSocket-like frame per\n"+
			"delivery (or --coalesce frames per write) round-robin to all of them while\n"+
			"readers drain the other ends, and reports the process's CPU-seconds\n"+
			"(getrusage: writers and readers) per 1M deliveries. A gateway doing one\n"+
			"write per delivery cannot be cheaper; every bench report states its ratio\n"+
			"to this figure.\n\n"+
			"--rate paces one writer at R deliveries/s, --burst sockets at a time, so\n"+
			"the readers sleep between bursts as real clients do between messages:\n"+
			"waking a sleeping reader is part of every delivery at low rates. W2 at\n"+
			"10 msg/s on one of two gateways is --sockets 500 --rate 5000 (a burst is\n"+
			"the whole room); W3 is --sockets 5000 --rate 10000 --burst 5.")
	sockets := fs.Int("sockets", 1000, "number of loopback socket pairs")
	msgs := fs.Int64("messages", 1_000_000, "deliveries in all (frames written)")
	coalesce := fs.Int("coalesce", 1, "frames per write")
	frame := fs.Int("frame-bytes", 100, "frame size in bytes, header included (52 to 127)")
	rate := fs.Float64("rate", 0, "pace the writes at this many deliveries/s (0: as fast as possible)")
	burst := fs.Int("burst", 0, "sockets written back to back at each paced tick (0: all of them)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if code, ok := fs.parse(args, e); !ok {
		return code
	}
	if fs.NArg() != 0 {
		return fs.usageError(e, "unexpected argument %q", fs.Arg(0))
	}
	if *sockets < 1 || *msgs < 1 || *coalesce < 1 {
		return fs.usageError(e, "--sockets, --messages and --coalesce must be at least 1")
	}
	if *frame < 52 || *frame > 127 {
		return fs.usageError(e, "--frame-bytes must be 52 to 127")
	}
	if *rate < 0 || *burst < 0 || (*burst > 0 && *rate == 0) {
		return fs.usageError(e, "--rate and --burst must not be negative, and --burst needs --rate")
	}
	r, err := loadgen.Floor(ctx, loadgen.FloorConfig{Sockets: *sockets, Deliveries: *msgs, Coalesce: *coalesce, FrameBytes: *frame, Rate: *rate, Burst: *burst})
	if err != nil {
		return fail(e, "bench floor", err)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return fail(e, "bench floor", err)
		}
		return exitOK
	}
	paced := ""
	if r.Rate > 0 {
		paced = fmt.Sprintf(", paced at %g/s in bursts of %d", r.Rate, r.Burst)
	}
	fmt.Fprintf(e.stdout, "floor: %.3f CPU-s per 1M deliveries (%d deliveries to %d sockets, %d frame(s) of %d B per write: %d writes%s; CPU %.3f s, wall %.3f s)\n",
		r.CPUPerMillion, r.Deliveries, r.Sockets, r.Coalesce, r.FrameBytes, r.Writes, paced, r.CPUSeconds, r.WallSeconds)
	return exitOK
}
