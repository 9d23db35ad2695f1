// Package observability wires what every Roomcast service exposes to
// operators: structured logs (log/slog), Prometheus metrics, and the
// /healthz (process alive) and /readyz (dependencies reachable) endpoints.
package observability

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roomcast/roomcast/pkg/httpjson"
)

// NewLogger builds the service logger. format is "json" or "text"; level is
// debug, info, warn or error.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("observability: log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json", "":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("observability: log format %q: want json or text", format)
}

// NewRegistry returns a Prometheus registry with the Go and process
// collectors registered.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Check reports whether one dependency is usable.
type Check struct {
	Name string
	// Func returns nil when the dependency is reachable. It gets a context
	// with a short deadline.
	Func func(ctx context.Context) error
}

// Mount registers /healthz, /readyz and /metrics on mux.
func Mount(mux *http.ServeMux, reg *prometheus.Registry, checks ...Check) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		status := http.StatusOK
		result := map[string]string{}
		for _, c := range checks {
			if err := c.Func(ctx); err != nil {
				status = http.StatusServiceUnavailable
				result[c.Name] = err.Error()
			} else {
				result[c.Name] = "ok"
			}
		}
		writeJSON(w, status, map[string]any{"ready": status == http.StatusOK, "checks": result})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	httpjson.Write(w, status, v)
}
