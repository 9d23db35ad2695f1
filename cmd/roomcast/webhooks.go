package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/roomcast/roomcast/pkg/sdk/rest"
	"github.com/roomcast/roomcast/pkg/webhooks"
)

// headersFlag collects repeated --header 'Name: value'.
type headersFlag map[string]string

func (h headersFlag) String() string { return fmt.Sprint(map[string]string(h)) }
func (h headersFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want 'Name: value'")
	}
	h[strings.TrimSpace(k)] = strings.TrimSpace(val)
	return nil
}

// typesFlag collects repeated or comma-separated values.
type typesFlag []string

func (l *typesFlag) String() string { return strings.Join(*l, ",") }
func (l *typesFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func runWebhooks(ctx context.Context, args []string, e *env) int {
	subs := map[string]bool{"create": true, "list": true, "delete": true, "replay": true}
	if len(args) == 0 || !subs[args[0]] {
		fmt.Fprintln(e.stderr, "Usage: roomcast webhooks create|list|delete|replay ... (roomcast webhooks create --help)")
		return exitUsage
	}
	sub, rest_ := args[0], args[1:]
	fs := newFlagSet("webhooks "+sub,
		"roomcast webhooks create --endpoint-url <url> [--type T]... [--header 'N: v']... | list | delete <id> | replay <id> [--delivery D]...",
		"Manages the app's webhook endpoints on the webhooks service, authenticated with an API key.\n"+
			"create prints the endpoint id and its signing secret (shown once, store it now).\n"+
			"replay sends the endpoint's dead deliveries again (or those named with --delivery).\n"+
			"Event types: "+strings.Join(webhooks.Types, ", ")+" (default: all but message.published).")
	base := fs.String("url", "http://localhost:8084", "webhooks service base `URL` (env ROOMCAST_WEBHOOKS_URL)")
	fs.env("url", "ROOMCAST_WEBHOOKS_URL")
	key := fs.String("key", "", "API key `<app>.<keyId>:<secret>` of the app (env ROOMCAST_KEY); required")
	fs.env("key", "ROOMCAST_KEY")
	endpointURL := fs.String("endpoint-url", "", "the endpoint's `URL` (create)")
	desc := fs.String("description", "", "a `description` of the endpoint (create)")
	batch := fs.Int("batch-size", 0, "send up to `n` events per request (create; 0 or 1: one each)")
	var types, deliveries typesFlag
	headers := headersFlag{}
	fs.Var(&types, "type", "event `type` to subscribe to (create); repeat or comma-separate")
	fs.Var(headers, "header", "custom `'Name: value'` header sent with every request (create); repeat for more")
	fs.Var(&deliveries, "delivery", "delivery `id` to replay (replay); repeat for more; none: every dead one")
	if code, ok := fs.parse(rest_, e); !ok {
		return code
	}
	if *key == "" {
		return fs.usageError(e, "--key (or ROOMCAST_KEY) is required")
	}
	c, err := rest.New(rest.Config{APIKey: *key})
	if err != nil {
		return fs.usageError(e, "%v", err)
	}
	wh := c.Webhooks(*base)
	switch sub {
	case "create":
		if *endpointURL == "" || fs.NArg() != 0 {
			return fs.usageError(e, "webhooks create takes --endpoint-url and no arguments")
		}
		ep, err := wh.CreateEndpoint(ctx, webhooks.CreateEndpoint{URL: *endpointURL, Description: *desc, Types: types, Headers: headers, BatchSize: *batch})
		if err != nil {
			return fail(e, "webhooks create", err)
		}
		fmt.Fprintln(e.stderr, "endpoint created; its signing secret is shown once, store it now:")
		fmt.Fprintf(e.stdout, "%s %s\n", ep.ID, ep.Secret)
	case "list":
		eps, err := wh.Endpoints(ctx)
		if err != nil {
			return fail(e, "webhooks list", err)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tURL\tENABLED\tTYPES")
		for _, ep := range eps {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", ep.ID, ep.URL, ep.Enabled, strings.Join(ep.Types, ","))
		}
		_ = tw.Flush()
	case "delete", "replay":
		if fs.NArg() != 1 {
			return fs.usageError(e, "webhooks %s takes one endpoint id", sub)
		}
		if sub == "delete" {
			if err := wh.DeleteEndpoint(ctx, fs.Arg(0)); err != nil {
				return fail(e, "webhooks delete", err)
			}
			fmt.Fprintf(e.stdout, "deleted %s\n", fs.Arg(0))
			return exitOK
		}
		n, err := wh.Replay(ctx, fs.Arg(0), deliveries...)
		if err != nil {
			return fail(e, "webhooks replay", err)
		}
		fmt.Fprintf(e.stdout, "replayed %d\n", n)
	}
	return exitOK
}
