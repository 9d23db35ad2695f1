package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
)

// runUsers manages an app's end users on the auth service's admin API:
// the user policy that turns accounts on, and the users themselves.
func runUsers(ctx context.Context, args []string, e *env) int {
	subs := map[string]bool{"policy": true, "list": true, "show": true, "block": true, "unblock": true}
	if len(args) == 0 || !subs[args[0]] {
		fmt.Fprintln(e.stderr, "Usage: roomcast users policy|list|show|block|unblock --app <app> ... (roomcast users policy --help)")
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	fs := newFlagSet("users "+sub,
		"roomcast users policy --app <app> [--key <keyId> --cap 'pattern=op[,op...]' [--signup] [--anonymous] [--mfa-required] [--access-ttl 5m] [--refresh-ttl 720h] [--redirect-uri URL]] | list --app <app> [--limit N] [--after <user>] | show|block|unblock --app <app> <user>",
		"Manages an app's end-user accounts (docs/users-api.md). policy without --key prints\n"+
			"the app's user policy; with --key and --cap it replaces it: user tokens carry that\n"+
			"API key as akid, and the capabilities must be within the key's (\"{user}\" in a\n"+
			"room pattern becomes the user's id). block revokes every session of the user.")
	authURL, adminToken := adminFlags(fs)
	app := fs.String("app", "", "the `app` of the users (env ROOMCAST_APP); required")
	fs.env("app", "ROOMCAST_APP")
	key := fs.String("key", "", "API key `id` of the app that user tokens are issued under (policy)")
	var caps capsFlag
	fs.Var(&caps, "cap", "capability `'pattern=op,op'` of user tokens (policy); repeat for more patterns")
	signup := fs.Bool("signup", false, "allow sign-up with email and password (policy)")
	anonymous := fs.Bool("anonymous", false, "allow anonymous users (policy)")
	mfa := fs.Bool("mfa-required", false, "require a second factor (TOTP) of every user (policy)")
	accessTTL := fs.Duration("access-ttl", 0, "lifetime of access tokens (policy; 0: the service's default, 5m)")
	refreshTTL := fs.Duration("refresh-ttl", 0, "lifetime of refresh tokens (policy; 0: the service's default, 720h)")
	var redirects listFlag
	fs.Var(&redirects, "redirect-uri", "`URL` the OAuth sign-in may return to (policy); repeat or comma-separate")
	limit := fs.Int("limit", 50, "users per page (list)")
	after := fs.String("after", "", "list users after this `user` id (list: the previous page's next)")
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
	appPath := "/admin/v1/apps/" + url.PathEscape(*app)
	switch sub {
	case "policy":
		if fs.NArg() != 0 {
			return fs.usageError(e, "users policy takes no arguments")
		}
		var p authapi.UserPolicy
		if *key == "" {
			if len(caps.caps) > 0 {
				return fs.usageError(e, "--cap needs --key: a policy names the API key its tokens are issued under")
			}
			if err := ac.call(ctx, http.MethodGet, appPath+"/user-policy", nil, &p); err != nil {
				return fail(e, "users policy", err)
			}
			return printJSON(e, p)
		}
		if len(caps.caps) == 0 {
			return fs.usageError(e, "users policy --key needs at least one --cap")
		}
		req := authapi.UserPolicy{Key: *key, Caps: caps.caps, Signup: *signup, Anonymous: *anonymous,
			MFARequired: *mfa, RedirectURIs: redirects.vals}
		if *accessTTL > 0 {
			req.AccessTTL = accessTTL.String()
		}
		if *refreshTTL > 0 {
			req.RefreshTTL = refreshTTL.String()
		}
		if err := ac.call(ctx, http.MethodPut, appPath+"/user-policy", req, &p); err != nil {
			return fail(e, "users policy", err)
		}
		return printJSON(e, p)
	case "list":
		if fs.NArg() != 0 {
			return fs.usageError(e, "users list takes no arguments")
		}
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if *after != "" {
			q.Set("after", *after)
		}
		var users authapi.Users
		if err := ac.call(ctx, http.MethodGet, appPath+"/users?"+q.Encode(), nil, &users); err != nil {
			return fail(e, "users list", err)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEMAIL\tVERIFIED\tKIND\tMFA\tSTATE\tCREATED")
		for _, u := range users.Users {
			kind, state, mfaState := "password", "active", "-"
			if u.Anonymous {
				kind = "anonymous"
			}
			if u.Blocked != nil && *u.Blocked {
				state = "blocked"
			}
			if len(u.MFA) > 0 {
				mfaState = fmt.Sprint(u.MFA)
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%s\n", u.ID, u.Email, u.EmailVerified, kind, mfaState, state, u.CreatedAt.UTC().Format(time.RFC3339))
		}
		_ = tw.Flush()
		if users.Next != "" {
			fmt.Fprintf(e.stderr, "more: roomcast users list --app %s --after %s\n", *app, users.Next)
		}
		return exitOK
	default: // show, block, unblock
		if fs.NArg() != 1 {
			return fs.usageError(e, "users %s takes one user id", sub)
		}
		userPath := appPath + "/users/" + url.PathEscape(fs.Arg(0))
		method := http.MethodGet
		if sub != "show" {
			method, userPath = http.MethodPost, userPath+"/"+sub
		}
		var u authapi.User
		if err := ac.call(ctx, method, userPath, nil, &u); err != nil {
			return fail(e, "users "+sub, err)
		}
		return printJSON(e, u)
	}
}

// printJSON writes v as indented JSON on stdout.
func printJSON(e *env, v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fail(e, "encode", err)
	}
	fmt.Fprintln(e.stdout, string(b))
	return exitOK
}
