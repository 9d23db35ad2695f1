package conn

import (
	"context"
	"log/slog"
)

// connHandler adds the connection's attributes (conn, app, client) to a
// record when one is logged. Logger.With would format them into a new
// handler for every connection up front: ~300 bytes that each idle
// connection would keep for its whole life, for lines that are rare.
type connHandler struct{ c *Conn }

func newConnLogger(c *Conn) *slog.Logger { return slog.New(connHandler{c}) }

func (h connHandler) next() slog.Handler { return h.c.d.Log.Handler() }

func (h connHandler) attrs() []slog.Attr {
	// current, not claims: other goroutines log too, and a refresh keeps
	// the app and client.
	cl := h.c.current.Load()
	return []slog.Attr{slog.String("conn", h.c.ID), slog.String("app", cl.App), slog.String("client", cl.ClientID())}
}

func (h connHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next().Enabled(ctx, l)
}

// Handle puts the connection's attributes first, where With would have.
func (h connHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(h.attrs()...)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return h.next().Handle(ctx, out)
}

func (h connHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.next().WithAttrs(h.attrs()).WithAttrs(as)
}

func (h connHandler) WithGroup(name string) slog.Handler {
	return h.next().WithAttrs(h.attrs()).WithGroup(name)
}
