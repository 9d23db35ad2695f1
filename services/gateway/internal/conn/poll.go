package conn

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/roomcast/roomcast/services/gateway/internal/netpoll"
)

// Idle connections hold no goroutine and no read buffer. A connection's
// socket is registered with the node's poller (package netpoll); when it
// becomes readable a goroutine takes a read state (bufio reader, frame
// reader, message buffer) from a pool, reads and handles messages while
// input is pending, waits GATEWAY_READ_LINGER on the runtime's poller for
// more (a busy client keeps its goroutine: a wake-up there is far cheaper
// than a new goroutine after the poller's), then returns the state and
// re-arms the socket. Between two
// messages nothing is half read, so the state holds nothing of the
// connection's. A message that arrives in pieces is read with ordinary
// blocking reads on that goroutine, as before.
//
// The reading goroutines are not a fixed pool: handling a message may wait
// on Redis or the broker (a join, a publish's append), and a fixed pool
// would let a few slow operations stall every connection's input. Their
// number is the number of connections with input being handled.

// readBufferSize is the pooled bufio reader's size: one read syscall takes
// several small commands at once.
const readBufferSize = 4096

// readState is what reading a message needs; pooled between connections.
type readState struct {
	c   *Conn
	br  *bufio.Reader
	rd  wsutil.Reader
	buf []byte
}

var readStates = sync.Pool{New: func() any {
	st := &readState{
		br:  bufio.NewReaderSize(nil, readBufferSize),
		buf: make([]byte, 0, 512),
	}
	return st
}}

// reset points st at c, reading from src.
func (st *readState) reset(c *Conn, src io.Reader) {
	st.c = c
	// The frame reader's unexported state is clean between messages (it
	// resets after each one), so only the connection's settings change.
	st.rd.Source = src
	st.rd.State = ws.StateServerSide
	st.rd.CheckUTF8 = !c.codec.Binary()
	st.rd.MaxFrameSize = int64(c.d.Config.MaxFrameBytes)
	st.rd.MaxMessageSize = int64(c.d.Config.MaxFrameBytes)
	if st.rd.OnIntermediate == nil {
		st.rd.OnIntermediate = func(h ws.Header, r io.Reader) error { return st.c.control(h, r) }
	}
}

var (
	pollerOnce sync.Once
	poller     *netpoll.Poller
)

func sharedPoller(c *Conn) *netpoll.Poller {
	pollerOnce.Do(func() {
		p, err := netpoll.New()
		if err != nil {
			c.d.Log.Warn("no socket poller: every connection keeps a reading goroutine", "err", err)
			return
		}
		poller = p
	})
	return poller
}

// pollConn is a polled connection's socket. Writes go to the embedded
// *net.TCPConn unchanged (net.Buffers still becomes one writev); Close and
// read deadlines also wake the read side, which would otherwise never
// notice them while the socket is parked in the poller.
type pollConn struct {
	*net.TCPConn
	c    *Conn
	rc   syscall.RawConn
	desc netpoll.Desc

	mu       sync.Mutex
	state    pollState
	again    bool // woken while running: look at the socket once more
	closed   bool
	deadline time.Time   // read deadline, zero for none
	timer    *time.Timer // wakes the read side at the deadline
}

type pollState uint8

const (
	parked  pollState = iota // waiting in the poller
	running                  // a goroutine reads
	ended                    // the read side is done
)

// setupPolling registers the connection with the poller; the read side
// starts with start. It reports false when the connection cannot be polled
// (not a TCP socket, or no poller): it then needs a reading goroutine.
func (c *Conn) setupPolling() bool {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok {
		return false
	}
	p := sharedPoller(c)
	if p == nil {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	// "running" until start: a readiness report meanwhile only sets again.
	pc := &pollConn{TCPConn: tc, c: c, rc: rc, state: running}
	desc, err := p.Add(rc, pc)
	if err != nil {
		c.log.Warn("socket poller refused the connection; reading on a goroutine", "err", err)
		return false
	}
	pc.desc = desc
	c.poll = pc
	c.nc = pc
	if c.pre == nil {
		c.src = pc
	} else {
		c.src = io.MultiReader(c.pre, pc)
	}
	return true
}

// start lets the read side run: at once if the client's first bytes came
// with the handshake, otherwise when the socket becomes readable.
func (p *pollConn) start() {
	if p.c.pre != nil || !p.park() {
		go p.run()
	}
}

// stop ends a connection that never started reading.
func (p *pollConn) stop() {
	p.mu.Lock()
	p.state = ended
	p.mu.Unlock()
}

// Ready implements netpoll.Handler.
func (p *pollConn) Ready() { p.wake() }

// wake makes sure a goroutine looks at the socket.
func (p *pollConn) wake() {
	p.mu.Lock()
	switch p.state {
	case parked:
		p.state = running
		p.mu.Unlock()
		p.c.d.Metrics.ReaderWakeups.Inc()
		go p.run()
		return
	case running:
		p.again = true
	}
	p.mu.Unlock()
}

// run reads and handles messages while input is pending, then parks.
func (p *pollConn) run() {
	c := p.c
	st := acquireReadState(c)
	woken := false // await saw the socket readable: skip pending's peek
	for {
		for woken || p.pending(st) {
			woken = false
			if !c.next(st) {
				// st may be mid-message: drop it rather than pool it.
				p.mu.Lock()
				p.state = ended
				p.mu.Unlock()
				c.finish()
				return
			}
		}
		// Nothing is half read (pending found no buffered input): the read
		// state goes back to the pool while the reader waits or parks.
		releaseReadState(st)
		if woken = p.await(c.d.Config.ReadLinger); !woken && p.park() {
			return
		}
		st = acquireReadState(c)
	}
}

// acquireReadState takes a read state from the pool for c.
func acquireReadState(c *Conn) *readState {
	st := readStates.Get().(*readState)
	st.br.Reset(c.src)
	st.reset(c, st.br)
	return st
}

// releaseReadState returns st, which holds nothing half read, to the pool.
func releaseReadState(st *readState) {
	if cap(st.buf) > readBufferSize {
		st.buf = make([]byte, 0, 512)
	}
	st.c = nil
	st.rd.Source = nil
	st.br.Reset(nil)
	readStates.Put(st)
}

// pending reports whether reading now would not wait: input is buffered or
// waiting in the socket, the peer closed, the socket was closed or its read
// deadline passed.
func (p *pollConn) pending(st *readState) bool {
	if st.br.Buffered() > 0 || (p.c.pre != nil && p.c.pre.Len() > 0) {
		return true
	}
	p.mu.Lock()
	stop := p.closed || (!p.deadline.IsZero() && !time.Now().Before(p.deadline))
	p.mu.Unlock()
	return stop || netpoll.Pending(p.rc)
}

// await waits up to d for the socket to become readable on the Go
// runtime's poller, which wakes a parked goroutine far more cheaply than a
// hand-back to the idle-socket poller and a new goroutine would: a client
// that sends again soon keeps its reader. It reports whether the socket is
// readable (or failed, or was closed); false after d, or at once when the
// connection is closing (its own read deadline is then set).
func (p *pollConn) await(d time.Duration) bool {
	if d <= 0 {
		return false
	}
	p.mu.Lock()
	if p.closed || !p.deadline.IsZero() {
		p.mu.Unlock()
		return false
	}
	_ = p.TCPConn.SetReadDeadline(time.Now().Add(d))
	p.mu.Unlock()
	err := netpoll.WaitReadable(p.rc)
	p.mu.Lock()
	if p.deadline.IsZero() {
		// Unless SetReadDeadline set one meanwhile (closing), reads have
		// no deadline.
		_ = p.TCPConn.SetReadDeadline(time.Time{})
	}
	p.mu.Unlock()
	return err == nil || !errors.Is(err, os.ErrDeadlineExceeded)
}

// park gives the socket back to the poller. It reports false when the
// caller must look at the socket again (it was woken meanwhile, or the
// socket can no longer be polled).
func (p *pollConn) park() bool {
	p.mu.Lock()
	if p.again {
		p.again = false
		p.mu.Unlock()
		return false
	}
	p.state = parked
	p.mu.Unlock()
	if err := p.desc.Rearm(); err != nil {
		// Removed or closed: read once more to see the error, unless a
		// wake-up already started another goroutine.
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.state == parked {
			p.state = running
			return false
		}
	}
	return true
}

// Close unregisters the socket, closes it and wakes the read side.
func (p *pollConn) Close() error {
	p.mu.Lock()
	first := !p.closed
	p.closed = true
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.mu.Unlock()
	if first {
		p.desc.Remove() // before the descriptor's number can be reused
	}
	err := p.TCPConn.Close()
	p.wake()
	return err
}

// SetReadDeadline sets the socket's read deadline and wakes the read side
// when it passes.
func (p *pollConn) SetReadDeadline(t time.Time) error {
	p.mu.Lock() // with the socket's own, so that await cannot undo it
	err := p.TCPConn.SetReadDeadline(t)
	p.deadline = t
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	if !t.IsZero() && !p.closed {
		p.timer = time.AfterFunc(time.Until(t), p.wake)
	}
	p.mu.Unlock()
	return err
}

// SetDeadline sets both deadlines (see SetReadDeadline).
func (p *pollConn) SetDeadline(t time.Time) error {
	if err := p.TCPConn.SetWriteDeadline(t); err != nil {
		return err
	}
	return p.SetReadDeadline(t)
}

// tryWrite writes bufs without waiting; see netpoll.TryWrite.
func (p *pollConn) tryWrite(bufs [][]byte) ([][]byte, error) {
	return netpoll.TryWrite(p.rc, bufs)
}
