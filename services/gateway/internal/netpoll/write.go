//go:build linux

package netpoll

import (
	"errors"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxIovecs is the most buffers one writev takes (IOV_MAX on Linux).
const maxIovecs = 1024

// writer is one TryWrite's state, pooled so that handing a callback to
// RawConn.Write does not allocate.
type writer struct {
	bufs  [][]byte
	iov   []unix.Iovec
	tried int // bytes the attempt offered
	n     int
	err   error
	fn    func(fd uintptr) bool
}

var writers = sync.Pool{New: func() any {
	w := &writer{iov: make([]unix.Iovec, 0, 16)}
	w.fn = w.write
	return w
}}

// write makes one write or writev attempt; it never waits (the callback
// returns true whatever happened, so RawConn.Write does not park).
func (w *writer) write(fd uintptr) bool {
	for {
		var r uintptr
		var errno syscall.Errno
		if len(w.bufs) == 1 {
			b := w.bufs[0]
			w.tried = len(b)
			r, _, errno = unix.Syscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		} else {
			w.iov, w.tried = w.iov[:0], 0
			for _, b := range w.bufs[:min(len(w.bufs), maxIovecs)] {
				if len(b) == 0 {
					continue
				}
				v := unix.Iovec{Base: unsafe.SliceData(b)}
				v.SetLen(len(b))
				w.iov = append(w.iov, v)
				w.tried += len(b)
			}
			if len(w.iov) == 0 {
				w.n, w.err = 0, nil
				return true
			}
			r, _, errno = unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(unsafe.SliceData(w.iov))), uintptr(len(w.iov)))
		}
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			w.n, w.err = 0, errno
		} else {
			w.n, w.err = int(r), nil
		}
		return true
	}
}

// TryWrite writes bufs to the socket without waiting: as much as its send
// buffer takes now, in one write or writev per 1,024 buffers. It returns
// what is left unwritten — nil when everything went, bufs itself (or its
// tail, with the first buffer resliced) when the send buffer is full — and
// an error when the socket failed or was closed. The buffers' bytes are not
// modified; bufs' elements may be.
func TryWrite(rc syscall.RawConn, bufs [][]byte) ([][]byte, error) {
	w := writers.Get().(*writer)
	defer func() {
		w.bufs = nil
		clear(w.iov[:cap(w.iov)])
		w.iov = w.iov[:0]
		writers.Put(w)
	}()
	for len(bufs) > 0 {
		w.bufs = bufs
		if err := rc.Write(w.fn); err != nil {
			return bufs, err
		}
		if errors.Is(w.err, unix.EAGAIN) {
			return bufs, nil
		}
		if w.err != nil {
			return bufs, w.err
		}
		bufs = consume(bufs, w.n)
		if w.n < w.tried {
			return bufs, nil // the send buffer is full
		}
	}
	return nil, nil
}

// consume drops n written bytes from the front of bufs.
func consume(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 {
		if n < len(bufs[0]) {
			bufs[0] = bufs[0][n:]
			return bufs
		}
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	return bufs
}
