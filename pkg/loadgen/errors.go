package loadgen

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/roomcast/roomcast/pkg/sdk/client"
)

// errorCounts counts errors by "<phase>:<code>" and logs the first of
// each kind (later ones would flood the log at bench rates).
type errorCounts struct {
	mu  sync.Mutex
	m   map[string]int64
	log *slog.Logger
}

func (e *errorCounts) add(phase string, err error) {
	k := phase + ":" + errorCode(err)
	e.mu.Lock()
	if e.m == nil {
		e.m = make(map[string]int64)
	}
	e.m[k]++
	first := e.m[k] == 1
	e.mu.Unlock()
	if first && e.log != nil {
		e.log.Warn("bench error (first of its kind)", "kind", k, "err", err)
	}
}

func (e *errorCounts) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(e.m))
	for k, v := range e.m {
		out[k] = v
	}
	return out
}

// errorCode names an error by its stable code: the server's error code
// for a failed request, the close code for a closed connection, the HTTP
// status for a refused handshake, or a short name for local errors.
func errorCode(err error) string {
	var re *client.ReplyError
	var ce *client.CloseError
	var he *client.HandshakeError
	var ne net.Error
	switch {
	case err == nil:
		return "none"
	case errors.As(err, &re):
		return string(re.Code)
	case errors.As(err, &ce):
		return "close_" + strconv.Itoa(int(ce.Code)) + "_" + ce.Code.String()
	case errors.As(err, &he):
		return "http_" + strconv.Itoa(he.StatusCode)
	case errors.Is(err, client.ErrClosed):
		return "client_closed"
	case errors.Is(err, client.ErrMessageBufferFull):
		return "message_buffer_full"
	case errors.Is(err, client.ErrHeartbeatTimeout):
		return "heartbeat_timeout"
	case errors.Is(err, client.ErrProtocol):
		return "protocol"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection_reset"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_open_files"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_local_ports"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}
