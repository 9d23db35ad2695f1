//go:build linux

// Package netpoll tells the gateway when an idle socket becomes readable,
// so that an idle WebSocket connection needs no goroutine of its own (a
// parked goroutine keeps a stack of at least 2 KiB and usually 4–8 KiB).
//
// It is a small epoll(7) loop: one goroutine waits for all registered
// sockets. Registrations are one-shot and level-triggered: after a socket
// reports readable it stays quiet until its owner re-arms it, which the
// owner does once it has read everything available. Go's own runtime poller
// keeps the socket registered too (edge-triggered, in its own epoll
// instance), so the owner reads it with ordinary blocking net.Conn calls
// while it is active.
package netpoll

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Handler is told that its socket is readable, has hung up or has an
// error. Ready runs on the poller's goroutine: it must not block (start a
// goroutine to read).
type Handler interface {
	Ready()
}

// Poller is one epoll instance and its waiting goroutine.
type Poller struct {
	epfd int

	mu    sync.RWMutex
	slots []slot // by file descriptor
	gen   uint32
}

type slot struct {
	gen uint32 // 0: free
	h   Handler
}

// Desc is one registered socket (a value: keep it in the socket's owner).
type Desc struct {
	p   *Poller
	fd  int
	gen uint32
}

// New creates a poller and starts its goroutine, which runs for the life of
// the process (the gateway has one poller).
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netpoll: epoll_create1: %w", err)
	}
	p := &Poller{epfd: epfd}
	go p.wait()
	return p, nil
}

const events = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// Add registers the socket behind rc, armed: h.Ready runs once when it is
// readable (or already is). Re-arm with Desc.Rearm after each Ready; call
// Desc.Remove before the socket is closed.
func (p *Poller) Add(rc syscall.RawConn, h Handler) (Desc, error) {
	var fd int
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return Desc{}, fmt.Errorf("netpoll: socket: %w", err)
	}
	p.mu.Lock()
	p.gen++
	if p.gen == 0 {
		p.gen = 1
	}
	gen := p.gen
	if fd >= len(p.slots) {
		p.slots = append(p.slots, make([]slot, fd+1-len(p.slots))...)
	}
	p.slots[fd] = slot{gen: gen, h: h}
	p.mu.Unlock()
	d := Desc{p: p, fd: fd, gen: gen}
	ev := unix.EpollEvent{Events: events, Fd: int32(fd), Pad: int32(gen)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		d.clear()
		return Desc{}, fmt.Errorf("netpoll: epoll_ctl add: %w", err)
	}
	return d, nil
}

// Rearm asks for the next Ready. It fails once the socket was removed or
// closed.
func (d Desc) Rearm() error {
	ev := unix.EpollEvent{Events: events, Fd: int32(d.fd), Pad: int32(d.gen)}
	if err := unix.EpollCtl(d.p.epfd, unix.EPOLL_CTL_MOD, d.fd, &ev); err != nil {
		return fmt.Errorf("netpoll: epoll_ctl mod: %w", err)
	}
	return nil
}

// Remove unregisters the socket; no Ready runs after it returns, except one
// the poller had already begun. It must run before the socket is closed:
// the descriptor's number may then be reused by another socket.
func (d Desc) Remove() {
	_ = unix.EpollCtl(d.p.epfd, unix.EPOLL_CTL_DEL, d.fd, nil)
	d.clear()
}

func (d Desc) clear() {
	d.p.mu.Lock()
	if d.fd < len(d.p.slots) && d.p.slots[d.fd].gen == d.gen {
		d.p.slots[d.fd] = slot{}
	}
	d.p.mu.Unlock()
}

func (p *Poller) wait() {
	evs := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.epfd, evs, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			// Only a bad epoll descriptor gets here, which cannot happen
			// while the process runs.
			panic(fmt.Sprintf("netpoll: epoll_wait: %v", err))
		}
		p.mu.RLock()
		for i := range n {
			fd, gen := int(evs[i].Fd), uint32(evs[i].Pad)
			// A stale event for a descriptor that was removed, or reused
			// by a newer socket, has another generation: skip it.
			if fd < len(p.slots) && p.slots[fd].gen == gen {
				h := p.slots[fd].h
				p.mu.RUnlock()
				h.Ready()
				p.mu.RLock()
			}
		}
		p.mu.RUnlock()
	}
}

// Pending reports whether a read on the socket would return without
// waiting: bytes are there, the peer closed, or the socket failed or was
// closed. It peeks (MSG_PEEK) and consumes nothing.
func Pending(rc syscall.RawConn) bool {
	pending := true
	err := rc.Read(func(fd uintptr) bool {
		pending = peek(fd)
		return true
	})
	return pending || err != nil
}

// WaitReadable parks the caller on the Go runtime's poller until a read on
// the socket would not wait, consuming nothing. Its error is the read
// side's: the read deadline passed, or the socket was closed.
func WaitReadable(rc syscall.RawConn) error {
	looked := false
	return rc.Read(func(fd uintptr) bool {
		if looked {
			return true // called again: the runtime saw the socket readable
		}
		// The runtime forgets readiness it reported before this call, so
		// look first: input may already be waiting.
		looked = true
		return peek(fd)
	})
}

// peek reports whether a read on fd would not wait.
func peek(fd uintptr) bool {
	var b [1]byte
	_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	return !errors.Is(err, unix.EAGAIN)
}
