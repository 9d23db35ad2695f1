package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"github.com/roomcast/roomcast/pkg/loadgen"
)

// benchWorkerArg is the hidden subcommand a `bench --procs` coordinator
// runs its workers with: "roomcast bench _worker".
const benchWorkerArg = "_worker"

// startDelay is how far ahead of "now" the coordinator sets the common
// start of the workers' schedules, so every worker has it before it comes.
const startDelay = 200 * time.Millisecond

// workerMsg is one line of the coordinator–worker protocol, JSON over the
// worker's stdin and stdout:
//
//	coordinator → worker  config    the worker's slice of the run
//	worker → coordinator  ready     connected and joined; members per room
//	coordinator → worker  go        the schedules' common start
//	worker → coordinator  published acknowledged publishes per room
//	coordinator → worker  expect    deliveries this worker's members should get
//	worker → coordinator  report    the worker's raw report, after draining
//	coordinator → worker  (EOF)     hang up and exit
//
// A worker that fails sends error and exits 1; a worker whose stdin closes
// early stops.
type workerMsg struct {
	Type      string          `json:"type"`
	Config    *loadgen.Config `json:"config,omitempty"`
	Quiet     bool            `json:"quiet,omitempty"`
	Members   []int64         `json:"members,omitempty"`
	Start     int64           `json:"start,omitempty"`
	Published []int64         `json:"published,omitempty"`
	Expected  int64           `json:"expected,omitempty"`
	Report    *loadgen.Report `json:"report,omitempty"`
	Error     string          `json:"error,omitempty"`
}

// maxWorkerLine bounds one protocol line (a report carries per-room
// counts and two encoded histograms).
const maxWorkerLine = 64 << 20

// readMsgs decodes lines from r into a channel, closed at EOF or on a
// malformed line; then it calls atEOF, if not nil.
func readMsgs(r io.Reader, log *slog.Logger, atEOF func()) <-chan workerMsg {
	ch := make(chan workerMsg, 4)
	go func() {
		defer func() {
			close(ch)
			if atEOF != nil {
				atEOF()
			}
		}()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), maxWorkerLine)
		for sc.Scan() {
			var m workerMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				log.Error("bench: malformed protocol line", "err", err)
				return
			}
			ch <- m
		}
	}()
	return ch
}

// benchWorker is a worker process as its coordinator sees it.
type benchWorker struct {
	n    int
	cmd  *exec.Cmd
	in   io.WriteCloser
	msgs <-chan workerMsg
}

func (w *benchWorker) send(m workerMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("worker %d: encode %s: %w", w.n, m.Type, err)
	}
	if _, err := w.in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("worker %d: send %s: %w", w.n, m.Type, err)
	}
	return nil
}

// next waits for the worker's next message, which must be of type typ.
func (w *benchWorker) next(ctx context.Context, typ string) (workerMsg, error) {
	select {
	case m, ok := <-w.msgs:
		switch {
		case !ok:
			return m, fmt.Errorf("worker %d exited before %q: %v", w.n, typ, w.cmd.Wait())
		case m.Type == "error":
			return m, fmt.Errorf("worker %d: %s", w.n, m.Error)
		case m.Type != typ:
			return m, fmt.Errorf("worker %d sent %q, want %q", w.n, m.Type, typ)
		}
		return m, nil
	case <-ctx.Done():
		return workerMsg{}, fmt.Errorf("waiting for worker %d: %w", w.n, ctx.Err())
	}
}

// runBenchProcs runs cfg split over k subscriber worker processes and p
// publisher workers (this executable, re-run as "bench _worker"; p = 0:
// the k workers share the publishers) in step, and merges their reports.
// The floor and the gateway probe run here, around all workers.
func runBenchProcs(ctx context.Context, cfg loadgen.Config, k, p int, log *slog.Logger) (loadgen.Report, error) {
	parts, err := loadgen.SplitPublishers(cfg, k, p)
	if err != nil {
		return loadgen.Report{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		return loadgen.Report{}, fmt.Errorf("find own executable to run workers: %w", err)
	}
	floor, paced, err := loadgen.Floors(ctx, cfg)
	if err != nil {
		return loadgen.Report{}, err
	}
	probe, err := loadgen.StartProbe(cfg.GatewayPIDs)
	if err != nil {
		return loadgen.Report{}, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // kills the workers if we return early
	quiet := !log.Enabled(ctx, slog.LevelInfo)
	workers := make([]*benchWorker, len(parts))
	defer func() {
		for _, w := range workers {
			if w != nil {
				_ = w.in.Close()
			}
		}
		for _, w := range workers {
			if w != nil {
				_ = w.cmd.Wait()
			}
		}
	}()
	for i, part := range parts {
		cmd := exec.CommandContext(ctx, exe, "bench", benchWorkerArg)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return loadgen.Report{}, fmt.Errorf("worker %d: %w", i, err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return loadgen.Report{}, fmt.Errorf("worker %d: %w", i, err)
		}
		if err := cmd.Start(); err != nil {
			return loadgen.Report{}, fmt.Errorf("start worker %d: %w", i, err)
		}
		w := &benchWorker{n: i, cmd: cmd, in: in, msgs: readMsgs(out, log, nil)}
		workers[i] = w
		if err := w.send(workerMsg{Type: "config", Config: &part, Quiet: quiet}); err != nil {
			return loadgen.Report{}, err
		}
	}
	log.Info("bench: workers started", "procs", len(workers))

	members := make([][]int64, len(workers))
	for i, w := range workers {
		m, err := w.next(ctx, "ready")
		if err != nil {
			return loadgen.Report{}, err
		}
		members[i] = m.Members
	}
	if err := probe.Connected(); err != nil {
		return loadgen.Report{}, err
	}
	start := time.Now().Add(startDelay)
	for _, w := range workers {
		if err := w.send(workerMsg{Type: "go", Start: start.UnixNano()}); err != nil {
			return loadgen.Report{}, err
		}
	}
	time.Sleep(time.Until(start))
	if err := probe.Start(); err != nil {
		return loadgen.Report{}, err
	}
	var published []int64
	for _, w := range workers {
		m, err := w.next(ctx, "published")
		if err != nil {
			return loadgen.Report{}, err
		}
		for len(published) < len(m.Published) {
			published = append(published, 0)
		}
		for r, n := range m.Published {
			published[r] += n
		}
	}
	for i, w := range workers {
		if err := w.send(workerMsg{Type: "expect", Expected: loadgen.Expected(published, members[i])}); err != nil {
			return loadgen.Report{}, err
		}
	}
	reports := make([]loadgen.Report, len(workers))
	for i, w := range workers {
		m, err := w.next(ctx, "report")
		if err != nil {
			return loadgen.Report{}, err
		}
		if m.Report == nil {
			return loadgen.Report{}, fmt.Errorf("worker %d sent an empty report", i)
		}
		reports[i] = *m.Report
	}
	if err := probe.Stop(); err != nil {
		return loadgen.Report{}, err
	}
	rep, err := loadgen.Merge(reports)
	if err != nil {
		return loadgen.Report{}, err
	}
	rep.Floor, rep.PacedFloor = floor, paced
	rep.Gateways = probe.Stats()
	rep.Machine = probe.Machine()
	rep.Finalize()
	return rep, nil
}

// runBenchWorker is one worker process: it follows the coordinator's
// protocol on stdin and stdout and logs to stderr.
func runBenchWorker(ctx context.Context, e *env) int {
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The coordinator closing our stdin early cancels the run: it is gone.
	msgs := readMsgs(e.stdin, log, cancel)
	out := json.NewEncoder(e.stdout)
	// next returns the coordinator's next message.
	next := func(typ string) (workerMsg, error) {
		select {
		case m, ok := <-msgs:
			if !ok {
				return m, errors.New("coordinator closed the protocol")
			}
			if m.Type != typ {
				return m, fmt.Errorf("coordinator sent %q, want %q", m.Type, typ)
			}
			return m, nil
		case <-ctx.Done():
			return workerMsg{}, ctx.Err()
		}
	}
	failed := func(err error) int {
		_ = out.Encode(workerMsg{Type: "error", Error: err.Error()})
		return fail(e, "bench worker", err)
	}
	m, err := next("config")
	if err != nil || m.Config == nil {
		return failed(fmt.Errorf("no config: %v", err))
	}
	level := slog.LevelInfo
	if m.Quiet {
		level = slog.LevelWarn
	}
	cfg := *m.Config
	cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})).
		With("worker", fmt.Sprintf("%d+%d", cfg.FirstConnection, cfg.Connections))
	l, err := loadgen.Connect(ctx, cfg)
	if err != nil {
		return failed(err)
	}
	defer l.Close()
	if err := out.Encode(workerMsg{Type: "ready", Members: l.Members()}); err != nil {
		return failed(err)
	}
	m, err = next("go")
	if err != nil {
		return failed(err)
	}
	published := l.Publish(ctx, time.Unix(0, m.Start))
	if err := out.Encode(workerMsg{Type: "published", Published: published}); err != nil {
		return failed(err)
	}
	m, err = next("expect")
	if err != nil {
		return failed(err)
	}
	l.Drain(ctx, m.Expected)
	rep, err := l.Report()
	if err != nil {
		return failed(err)
	}
	if err := out.Encode(workerMsg{Type: "report", Report: &rep}); err != nil {
		return failed(err)
	}
	// Hold the connections until the coordinator has taken its last
	// sample of the gateways (it closes our stdin).
	for range msgs {
	}
	return exitOK
}
