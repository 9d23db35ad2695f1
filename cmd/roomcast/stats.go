package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/roomcast/roomcast/pkg/sdk/rest"
)

// runStats prints an app's (or a room's) usage from the metrics service.
func runStats(ctx context.Context, args []string, e *env) int {
	fs := newFlagSet("stats", "roomcast stats [--room R] [--from T] [--to T] [--unit minute|hour|day] [--json]",
		"Prints the usage of the API key's app, or of one of its rooms, per unit of time: connections opened\n"+
			"(a room: joins), the most and the last connections at once, messages, bytes and presence members.\n"+
			"--from and --to take RFC 3339 times or durations back from now (e.g. 2h); default: the last 60 units.")
	base := fs.String("url", "http://localhost:8085", "metrics service base `URL` (env ROOMCAST_METRICS_URL)")
	fs.env("url", "ROOMCAST_METRICS_URL")
	key := fs.String("key", "", "API key `<app>.<keyId>:<secret>` of the app (env ROOMCAST_KEY); required")
	fs.env("key", "ROOMCAST_KEY")
	room := fs.String("room", "", "a `room` of the app (default: the whole app)")
	from := fs.String("from", "", "start: RFC 3339 `time` or a duration ago")
	to := fs.String("to", "", "end: RFC 3339 `time` or a duration ago (default: now)")
	unit := fs.String("unit", "minute", "bucket `unit`: minute, hour or day")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	if code, ok := fs.parse(args, e); !ok {
		return code
	}
	if *key == "" {
		return fs.usageError(e, "--key (or ROOMCAST_KEY) is required")
	}
	if fs.NArg() != 0 {
		return fs.usageError(e, "stats takes no arguments")
	}
	q := rest.StatsQuery{Unit: *unit}
	var err error
	if q.From, err = parseWhen(*from, e.now()); err != nil {
		return fs.usageError(e, "--from: %v", err)
	}
	if q.To, err = parseWhen(*to, e.now()); err != nil {
		return fs.usageError(e, "--to: %v", err)
	}
	c, err := rest.New(rest.Config{APIKey: *key, MetricsURL: *base})
	if err != nil {
		return fs.usageError(e, "%v", err)
	}
	var u *rest.Usage
	if *room != "" {
		u, err = c.RoomStats(ctx, *room, q)
	} else {
		u, err = c.Stats(ctx, q)
	}
	if err != nil {
		return fail(e, "stats", err)
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(u)
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "START\tCONNECTIONS\tPEAK\tCURRENT\tMESSAGES\tBYTES\tPRESENCE PEAK\tPRESENCE\t")
	row := func(label string, b rest.UsageBucket) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", label, b.Connections, b.PeakConnections, b.CurrentConnections,
			b.Messages, b.Bytes, b.PeakPresence, b.CurrentPresence)
	}
	for _, b := range u.Buckets {
		row(b.Start, b)
	}
	row("total", u.Totals)
	_ = tw.Flush()
	return exitOK
}

// parseWhen reads an RFC 3339 time or a duration before now; "" is zero.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want an RFC 3339 time or a duration, got %q", s)
	}
	return t, nil
}
