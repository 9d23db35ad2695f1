//go:build !linux

package netpoll

import (
	"errors"
	"syscall"
)

// Handler is told that its socket is readable.
type Handler interface {
	Ready()
}

// Poller is not available on this system: New fails and the gateway keeps
// a reading goroutine per connection.
type Poller struct{}

// Desc is one registered socket.
type Desc struct{}

// New reports that there is no poller here.
func New() (*Poller, error) { return nil, errors.New("netpoll: only on Linux") }

// Add is never reached without a poller.
func (p *Poller) Add(syscall.RawConn, Handler) (Desc, error) {
	return Desc{}, errors.New("netpoll: only on Linux")
}

// Rearm is never reached without a poller.
func (d Desc) Rearm() error { return errors.New("netpoll: only on Linux") }

// Remove is never reached without a poller.
func (d Desc) Remove() {}

// Pending is never reached without a poller.
func Pending(syscall.RawConn) bool { return true }

// WaitReadable is never reached without a poller.
func WaitReadable(syscall.RawConn) error { return nil }

// TryWrite writes nothing here: the caller's goroutine does blocking
// writes instead.
func TryWrite(_ syscall.RawConn, bufs [][]byte) ([][]byte, error) { return bufs, nil }
