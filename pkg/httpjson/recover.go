package httpjson

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// Recover answers a request whose handler panicked with 500 and the
// documented "internal" code (unless the answer had begun), and logs the
// panic with its stack: a bug in one handler costs one request, never the
// process, and the client gets the error shape it expects. A panic after
// a WebSocket upgrade (the connection hijacked) or http.ErrAbortHandler
// goes on to net/http, as before.
func Recover(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &tracking{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler || rw.hijacked {
				panic(p)
			}
			log.Error("panic serving a request", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if !rw.wrote {
				WriteError(w, http.StatusInternalServerError, protocol.CodeInternal, "internal error; it was logged")
			}
		}()
		next.ServeHTTP(rw, r)
	})
}

// tracking records whether the answer began or the connection was taken
// over; it keeps the Hijacker and Flusher of the writer it wraps.
type tracking struct {
	http.ResponseWriter
	wrote, hijacked bool
}

func (t *tracking) WriteHeader(code int) {
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *tracking) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

func (t *tracking) Flush() {
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		t.wrote = true
		f.Flush()
	}
}

func (t *tracking) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := t.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("httpjson: %T cannot be hijacked", t.ResponseWriter)
	}
	t.hijacked = true
	return h.Hijack()
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (t *tracking) Unwrap() http.ResponseWriter { return t.ResponseWriter }
