package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// FloorConfig configures Floor. Every field's zero value is a default.
type FloorConfig struct {
	// Sockets is the number of loopback TCP connections written to. Zero
	// means 1000.
	Sockets int `json:"sockets"`
	// Deliveries is the number of frames to deliver in all (rounded up to
	// a whole number of rounds over all sockets). Zero means 200,000.
	Deliveries int64 `json:"deliveries"`
	// Coalesce is the number of frames per write. Zero means 1.
	Coalesce int `json:"coalesce"`
	// FrameBytes is one frame's size, header included, 52 to 127. Zero
	// means 100.
	FrameBytes int `json:"frame_bytes"`
	// Rate paces the writes at this many deliveries per second, from one
	// writer, so that the readers sleep between bursts the way a real
	// client does between messages. Zero means as fast as the writers go
	// (the classic floor, with readers that are never idle for long).
	Rate float64 `json:"rate,omitempty"`
	// Burst is how many sockets get a write back to back at each paced
	// tick: Sockets for one message fanned out to a whole room (W2), a
	// room's local members for many small rooms (W3). Zero means Sockets.
	// Only with Rate.
	Burst int `json:"burst,omitempty"`
}

// FloorReport is what a floor run cost. CPUPerMillion is the process's
// CPU-seconds (writers and readers, from getrusage) per 1M deliveries.
type FloorReport struct {
	Sockets       int     `json:"sockets"`
	Coalesce      int     `json:"coalesce"`
	FrameBytes    int     `json:"frame_bytes"`
	Deliveries    int64   `json:"deliveries"`
	Rate          float64 `json:"rate,omitempty"`
	Burst         int     `json:"burst,omitempty"`
	Writes        int64   `json:"writes"`
	WallSeconds   float64 `json:"wall_seconds"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	CPUPerMillion float64 `json:"cpu_seconds_per_million"`
}

// minFrameBytes is the smallest frame floorFrame builds.
const minFrameBytes = 52

func (cfg FloorConfig) normalize() (FloorConfig, error) {
	if cfg.Sockets < 0 || cfg.Deliveries < 0 || cfg.Coalesce < 0 || cfg.FrameBytes < 0 || cfg.Rate < 0 || cfg.Burst < 0 {
		return cfg, errors.New("loadgen: negative floor setting")
	}
	if cfg.Sockets == 0 {
		cfg.Sockets = 1000
	}
	if cfg.Deliveries == 0 {
		cfg.Deliveries = 200_000
	}
	if cfg.Coalesce == 0 {
		cfg.Coalesce = 1
	}
	if cfg.FrameBytes == 0 {
		cfg.FrameBytes = 100
	}
	if cfg.Burst == 0 || cfg.Burst > cfg.Sockets {
		cfg.Burst = cfg.Sockets
	}
	if cfg.FrameBytes < minFrameBytes || cfg.FrameBytes > 127 {
		return cfg, fmt.Errorf("loadgen: floor frame size %d, want %d to 127", cfg.FrameBytes, minFrameBytes)
	}
	return cfg, nil
}

// floorFrame is a server-to-client WebSocket text frame (FIN, opcode 1,
// unmasked, 7-bit length) carrying a message-like JSON object padded to
// size bytes in all.
func floorFrame(size int) []byte {
	const head, tail = `{"type":"message","room":"f","offset":1,"data":"`, `"}`
	frame := append([]byte{0x81, 0}, head...)
	for len(frame) < size-len(tail) {
		frame = append(frame, 'x')
	}
	frame = append(frame, tail...)
	frame[1] = byte(len(frame) - 2)
	return frame
}

// Floor measures the cheapest possible fan-out on this machine: raw
// writes of one small WebSocket-like frame per delivery (or Coalesce
// frames per write) to Sockets loopback TCP connections, round-robin like
// one message fanned out to every member, while readers in the same
// process drain the other ends. No encoding, no queues, no per-connection
// goroutine wake-ups: what is left is the kernel's cost of a loopback
// write and read, which a gateway cannot undercut with one write per
// delivery. Setup is excluded from the figures.
func Floor(ctx context.Context, cfg FloorConfig) (FloorReport, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return FloorReport{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return FloorReport{}, fmt.Errorf("loadgen: floor: listen: %w", err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, cfg.Sockets)
	acceptErr := make(chan error, 1)
	go func() {
		for range cfg.Sockets {
			c, err := ln.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			accepted <- c
		}
	}()
	writers := make([]*net.TCPConn, 0, cfg.Sockets)
	readers := make([]net.Conn, 0, cfg.Sockets)
	defer func() {
		for _, c := range writers {
			_ = c.Close()
		}
		for _, c := range readers {
			_ = c.Close()
		}
	}()
	var d net.Dialer
	for range cfg.Sockets {
		r, err := d.DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			return FloorReport{}, fmt.Errorf("loadgen: floor: dial socket %d: %w", len(readers), err)
		}
		readers = append(readers, r)
		select {
		case w := <-accepted:
			writers = append(writers, w.(*net.TCPConn))
		case err := <-acceptErr:
			return FloorReport{}, fmt.Errorf("loadgen: floor: accept: %w", err)
		case <-ctx.Done():
			return FloorReport{}, fmt.Errorf("loadgen: floor: %w", ctx.Err())
		}
	}

	frame := floorFrame(cfg.FrameBytes)
	batch := make([]byte, 0, len(frame)*cfg.Coalesce)
	for range cfg.Coalesce {
		batch = append(batch, frame...)
	}
	perRound := int64(cfg.Sockets) * int64(cfg.Coalesce)
	rounds := (cfg.Deliveries + perRound - 1) / perRound

	var readersDone sync.WaitGroup
	var received atomic.Int64
	for _, c := range readers {
		readersDone.Go(func() {
			buf := make([]byte, 16<<10)
			for {
				n, err := c.Read(buf)
				received.Add(int64(n))
				if err != nil {
					return // EOF once the writer is done (or an error: the writer reports it)
				}
			}
		})
	}

	cpu0, t0 := SelfCPU(), time.Now()
	nw := min(runtime.GOMAXPROCS(0), cfg.Sockets)
	if cfg.Rate > 0 {
		nw = 1 // one paced writer, like a room's worker
	}
	errs := make(chan error, nw)
	var writersDone sync.WaitGroup
	for w := range nw {
		writersDone.Go(func() {
			if cfg.Rate > 0 {
				if err := writePaced(ctx, writers, batch, rounds, cfg); err != nil {
					errs <- err
				}
				return
			}
			for range rounds {
				if err := ctx.Err(); err != nil {
					errs <- err
					return
				}
				for i := w; i < len(writers); i += nw {
					if _, err := writers[i].Write(batch); err != nil {
						errs <- fmt.Errorf("write socket %d: %w", i, err)
						return
					}
				}
			}
		})
	}
	writersDone.Wait()
	for _, c := range writers {
		_ = c.CloseWrite()
	}
	readersDone.Wait()
	cpu, wall := SelfCPU()-cpu0, time.Since(t0)
	close(errs)
	if err := <-errs; err != nil {
		return FloorReport{}, fmt.Errorf("loadgen: floor: %w", err)
	}
	deliveries := rounds * perRound
	if got, want := received.Load(), deliveries*int64(len(frame)); got != want {
		return FloorReport{}, fmt.Errorf("loadgen: floor: readers received %d bytes, want %d", got, want)
	}
	if cfg.Rate == 0 {
		cfg.Burst = 0 // not paced: no bursts to report
	}
	return FloorReport{
		Sockets:       cfg.Sockets,
		Coalesce:      cfg.Coalesce,
		FrameBytes:    cfg.FrameBytes,
		Deliveries:    deliveries,
		Rate:          cfg.Rate,
		Burst:         cfg.Burst,
		Writes:        rounds * int64(cfg.Sockets),
		WallSeconds:   wall.Seconds(),
		CPUSeconds:    cpu.Seconds(),
		CPUPerMillion: ratio(cpu.Seconds()*1e6, float64(deliveries)),
	}, nil
}

// writePaced writes rounds×Sockets batches round-robin, Burst sockets at a
// time, each burst due at Burst×Coalesce/Rate seconds after the last. It
// sleeps until a burst is due rather than spinning, so the process idles
// between bursts as a gateway does.
func writePaced(ctx context.Context, writers []*net.TCPConn, batch []byte, rounds int64, cfg FloorConfig) error {
	total := rounds * int64(len(writers))
	interval := time.Duration(float64(cfg.Burst*cfg.Coalesce) / cfg.Rate * float64(time.Second))
	start := time.Now()
	var n int64
	for tick := int64(0); n < total; tick++ {
		if d := time.Until(start.Add(time.Duration(tick) * interval)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for b := 0; b < cfg.Burst && n < total; b, n = b+1, n+1 {
			i := int(n % int64(len(writers)))
			if _, err := writers[i].Write(batch); err != nil {
				return fmt.Errorf("write socket %d: %w", i, err)
			}
		}
	}
	return nil
}

// maxPacedSockets bounds PacedFloorFor's sockets: two open files each, in
// the load generator's own process.
const maxPacedSockets = 5000

// PacedFloorFor is the floor paced like one gateway's share of cfg's
// deliveries (the URLs are taken to be that many gateways): its delivery
// rate, its subscribers (at most maxPacedSockets) as the sockets, and one
// message's members on that gateway as the burst (see PacedFloor). W2 at 10
// msg/s over two gateways: 5,000/s in bursts of 500; W3: 10,000/s in
// bursts of 5 over 5,000 sockets. Zero (no paced floor) for an idle run.
func PacedFloorFor(cfg Config) FloorConfig {
	if cfg.Idle || cfg.Rate <= 0 || cfg.Connections < 1 {
		return FloorConfig{}
	}
	gateways := float64(max(1, len(cfg.URLs)))
	members := float64(cfg.Connections) // of the room a message goes to
	if cfg.Rooms == RoomsMany {
		members /= float64(max(1, cfg.RoomCount))
	}
	sockets := min(max(1, int(float64(cfg.Connections)/gateways)), maxPacedSockets)
	burst := min(max(1, int(math.Round(members/gateways))), sockets)
	rate := cfg.Rate * members / gateways
	return PacedFloor(sockets, rate, burst)
}

// pacedSeconds is how long a paced floor runs.
const pacedSeconds = 5

// PacedFloor is a floor of sockets written to at rate deliveries per
// second, burst sockets at a time, for pacedSeconds (at least one round).
func PacedFloor(sockets int, rate float64, burst int) FloorConfig {
	return FloorConfig{Sockets: sockets, Rate: rate, Burst: burst, Deliveries: max(int64(rate*pacedSeconds), int64(sockets))}
}

// Floors measures the floors cfg asks for before a run: the classic one
// and, when cfg.PacedFloor.Rate is set, the paced one. Nil for each that
// is skipped.
func Floors(ctx context.Context, cfg Config) (floor, paced *FloorReport, err error) {
	if cfg.SkipFloor {
		return nil, nil, nil
	}
	f, err := Floor(ctx, cfg.Floor)
	if err != nil {
		return nil, nil, err
	}
	if cfg.PacedFloor.Rate == 0 {
		return &f, nil, nil
	}
	pf, err := Floor(ctx, cfg.PacedFloor)
	if err != nil {
		return nil, nil, fmt.Errorf("paced: %w", err)
	}
	return &f, &pf, nil
}
