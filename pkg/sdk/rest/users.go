package rest

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
)

// User is an end user of the app as its backend sees them: with Blocked,
// Online (connected to a gateway now) and LastSeenAt set.
type User = authapi.User

// UsersPage is a page of users; Next is the After of the next page ("" on
// the last).
type UsersPage = authapi.Users

// User returns one of the app's end users (GET /v1/apps/{app}/users/{user}
// on the auth service). The API key needs "admin" on "*".
func (c *Client) User(ctx context.Context, id string) (User, error) {
	var u User
	err := c.call(ctx, http.MethodGet, c.cfg.AuthURL, c.usersPath()+"/"+url.PathEscape(id), nil, &u, true)
	return u, err
}

// Users returns a page of the app's end users, by id after after; limit 0
// takes the service's default page size.
func (c *Client) Users(ctx context.Context, after string, limit int) (UsersPage, error) {
	v := url.Values{}
	if after != "" {
		v.Set("after", after)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	path := c.usersPath()
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var page UsersPage
	err := c.call(ctx, http.MethodGet, c.cfg.AuthURL, path, nil, &page, true)
	return page, err
}

// BlockUser blocks an end user: every session of theirs is revoked and
// they can neither sign in nor refresh until UnblockUser.
func (c *Client) BlockUser(ctx context.Context, id string) (User, error) {
	return c.setBlocked(ctx, id, "block")
}

// UnblockUser lets a blocked user sign in again.
func (c *Client) UnblockUser(ctx context.Context, id string) (User, error) {
	return c.setBlocked(ctx, id, "unblock")
}

func (c *Client) setBlocked(ctx context.Context, id, action string) (User, error) {
	var u User
	// Blocking twice is blocking once: retry.
	err := c.call(ctx, http.MethodPost, c.cfg.AuthURL, c.usersPath()+"/"+url.PathEscape(id)+"/"+action, nil, &u, true)
	return u, err
}

func (c *Client) usersPath() string { return "/v1/apps/" + url.PathEscape(c.key.App) + "/users" }
