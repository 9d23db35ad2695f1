package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/protocol"
)

// adminClient calls the auth service's admin API.
type adminClient struct {
	base, token string
	http        *http.Client
}

// adminFlags adds --auth-url and --admin-token to fs.
func adminFlags(fs *flagSet) (authURL, adminToken *string) {
	authURL = fs.String("auth-url", "http://localhost:8081", "auth service base `URL` (env ROOMCAST_AUTH_URL)")
	fs.env("auth-url", "ROOMCAST_AUTH_URL")
	adminToken = fs.String("admin-token", "", "the auth service's admin `credential` (env ROOMCAST_ADMIN_TOKEN); required")
	fs.env("admin-token", "ROOMCAST_ADMIN_TOKEN")
	return authURL, adminToken
}

func newAdminClient(fs *flagSet, e *env, authURL, adminToken string) (*adminClient, int, bool) {
	if adminToken == "" {
		return nil, fs.usageError(e, "--admin-token (or ROOMCAST_ADMIN_TOKEN) is required"), false
	}
	return &adminClient{base: strings.TrimRight(authURL, "/"), token: adminToken, http: &http.Client{Timeout: 30 * time.Second}}, 0, true
}

// call sends body (nil: none) to method path and decodes the answer into out.
func (a *adminClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e authapi.Error
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			return &adminError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
		}
		return fmt.Errorf("auth service answered %s", resp.Status)
	}
	return json.Unmarshal(raw, out)
}

// adminError is an error answer of the admin API.
type adminError struct {
	Status  int
	Code    protocol.Code
	Message string
}

func (e *adminError) Error() string { return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code) }

func runApps(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 || (args[0] != "create" && args[0] != "list" && !strings.HasPrefix(args[0], "-")) {
		fmt.Fprintln(e.stderr, "Usage: roomcast apps create <id> [--name N] | roomcast apps list")
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	fs := newFlagSet("apps "+sub, "roomcast apps create <id> [--name <name>] | roomcast apps list",
		"Creates or lists apps on the auth service's admin API.")
	authURL, adminToken := adminFlags(fs)
	name := fs.String("name", "", "display `name` of the app (create)")
	if code, ok := fs.parse(rest, e); !ok {
		return code
	}
	ac, code, ok := newAdminClient(fs, e, *authURL, *adminToken)
	if !ok {
		return code
	}
	switch sub {
	case "create":
		if fs.NArg() != 1 {
			return fs.usageError(e, "apps create takes one app id")
		}
		var app authapi.App
		if err := ac.call(ctx, http.MethodPost, "/admin/v1/apps", authapi.CreateApp{ID: fs.Arg(0), Name: *name}, &app); err != nil {
			return fail(e, "apps create", err)
		}
		fmt.Fprintln(e.stdout, app.ID)
	case "list":
		var apps authapi.Apps
		if err := ac.call(ctx, http.MethodGet, "/admin/v1/apps", nil, &apps); err != nil {
			return fail(e, "apps list", err)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED")
		for _, a := range apps.Apps {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", a.ID, a.Name, a.CreatedAt.UTC().Format(time.RFC3339))
		}
		_ = tw.Flush()
	default:
		return fs.usageError(e, "unknown subcommand %q", sub)
	}
	return exitOK
}

func runKeys(ctx context.Context, args []string, e *env) int {
	subs := map[string]bool{"create": true, "list": true, "revoke": true, "rotate": true}
	if len(args) == 0 || !subs[args[0]] {
		fmt.Fprintln(e.stderr, "Usage: roomcast keys create|list|revoke|rotate --app <app> ... (roomcast keys create --help)")
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	fs := newFlagSet("keys "+sub,
		"roomcast keys create --app <app> --cap 'pattern=op[,op...]' [--name N] | list --app <app> | revoke --app <app> <keyId> | rotate --app <app> [--grace 1h] <keyId>",
		"Manages API keys on the auth service's admin API. create and rotate print the new\n"+
			"API key <app>.<keyId>:<secret> on stdout: it is shown once, store it now.\n"+
			"Operations: "+opNames()+".")
	authURL, adminToken := adminFlags(fs)
	app := fs.String("app", "", "the `app` the keys belong to (env ROOMCAST_APP); required")
	fs.env("app", "ROOMCAST_APP")
	name := fs.String("name", "", "display `name` of the key (create)")
	grace := fs.Duration("grace", 0, "how long the old key keeps working after rotate (0: revoked at once)")
	var caps capsFlag
	fs.Var(&caps, "cap", "capability `'pattern=op,op'` of the key (create); repeat for more patterns")
	if code, ok := fs.parse(rest, e); !ok {
		return code
	}
	if *app == "" {
		return fs.usageError(e, "--app (or ROOMCAST_APP) is required")
	}
	ac, code, ok := newAdminClient(fs, e, *authURL, *adminToken)
	if !ok {
		return code
	}
	keysPath := "/admin/v1/apps/" + url.PathEscape(*app) + "/keys"
	var k authapi.Key
	switch sub {
	case "create":
		if fs.NArg() != 0 || len(caps.caps) == 0 {
			return fs.usageError(e, "keys create takes at least one --cap and no arguments")
		}
		if err := ac.call(ctx, http.MethodPost, keysPath, authapi.CreateKey{Name: *name, Caps: caps.caps}, &k); err != nil {
			return fail(e, "keys create", err)
		}
	case "rotate", "revoke":
		if fs.NArg() != 1 {
			return fs.usageError(e, "keys %s takes one key id", sub)
		}
		var body any
		if sub == "rotate" {
			body = authapi.RotateKey{Grace: grace.String()}
		}
		if err := ac.call(ctx, http.MethodPost, keysPath+"/"+url.PathEscape(fs.Arg(0))+"/"+sub, body, &k); err != nil {
			return fail(e, "keys "+sub, err)
		}
		if sub == "revoke" {
			fmt.Fprintf(e.stdout, "revoked %s\n", k.ID)
			return exitOK
		}
	case "list":
		var keys authapi.Keys
		if err := ac.call(ctx, http.MethodGet, keysPath, nil, &keys); err != nil {
			return fail(e, "keys list", err)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSTATE\tCAPS")
		for _, k := range keys.Keys {
			state := "active"
			switch {
			case k.RevokedAt != nil:
				state = "revoked"
			case k.ExpiresAt != nil && !k.ExpiresAt.After(e.now()):
				state = "expired"
			case k.ExpiresAt != nil:
				state = "expires " + k.ExpiresAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Name, state, (&capsFlag{caps: k.Caps}).String())
		}
		_ = tw.Flush()
		return exitOK
	}
	fmt.Fprintln(e.stderr, "API key created; it is shown once, store it now:")
	fmt.Fprintln(e.stdout, k.APIKey)
	return exitOK
}
