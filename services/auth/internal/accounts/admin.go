package accounts

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/services/auth/internal/store"
)

// Online tells whether a user is connected to a gateway now and when they
// were last seen (internal/online).
type Online interface {
	Status(ctx context.Context, app, userID string) (online bool, lastSeen *time.Time, err error)
}

// Policy defaults and bounds.
const (
	DefaultAccessTTL  = 5 * time.Minute
	DefaultRefreshTTL = 720 * time.Hour
	MaxAccessTTL      = 24 * time.Hour
	MaxRefreshTTL     = 8760 * time.Hour
)

// sampleUserID stands for any user id when a policy's caps are checked
// against its key's.
const sampleUserID = "uaaaaaaaaaaaaaaaaaaaa"

// PutPolicy validates and stores app's user policy. Its caps, with any
// user id for "{user}", must be within the key's capabilities.
func (s *Service) PutPolicy(ctx context.Context, app string, in authapi.UserPolicy) (authapi.UserPolicy, error) {
	p := store.UserPolicy{App: app, KeyID: in.Key, Caps: in.Caps, Signup: in.Signup, Anonymous: in.Anonymous,
		MFARequired: in.MFARequired, RedirectURIs: in.RedirectURIs, AccessTTL: DefaultAccessTTL, RefreshTTL: DefaultRefreshTTL}
	var err error
	if in.AccessTTL != "" {
		if p.AccessTTL, err = time.ParseDuration(in.AccessTTL); err != nil || p.AccessTTL < time.Second || p.AccessTTL > MaxAccessTTL {
			return authapi.UserPolicy{}, fmt.Errorf("%w: access_ttl must be a duration from 1s to %s", ErrBadPolicy, MaxAccessTTL)
		}
	}
	if in.RefreshTTL != "" {
		if p.RefreshTTL, err = time.ParseDuration(in.RefreshTTL); err != nil || p.RefreshTTL < p.AccessTTL || p.RefreshTTL > MaxRefreshTTL {
			return authapi.UserPolicy{}, fmt.Errorf("%w: refresh_ttl must be a duration from access_ttl to %s", ErrBadPolicy, MaxRefreshTTL)
		}
	}
	if len(p.Caps) == 0 {
		return authapi.UserPolicy{}, fmt.Errorf(`%w: "caps" is required`, ErrBadPolicy)
	}
	sample := UserCaps(p.Caps, sampleUserID)
	if err := sample.Validate(); err != nil {
		return authapi.UserPolicy{}, fmt.Errorf("%w: %v", ErrBadPolicy, err)
	}
	for _, u := range p.RedirectURIs {
		if pu, err := url.Parse(u); err != nil || pu.Scheme == "" || pu.Host == "" || pu.Fragment != "" {
			return authapi.UserPolicy{}, fmt.Errorf("%w: redirect URI %q must be absolute, without a fragment", ErrBadPolicy, truncate(u, 200))
		}
	}
	key, err := s.st.GetKey(ctx, app, p.KeyID)
	if errors.Is(err, store.ErrNotFound) {
		return authapi.UserPolicy{}, fmt.Errorf("%w: key %q is not a key of app %q", ErrBadPolicy, truncate(p.KeyID, 64), app)
	}
	if err != nil {
		return authapi.UserPolicy{}, err
	}
	if key.RevokedAt != nil {
		return authapi.UserPolicy{}, fmt.Errorf("%w: key %q is revoked", ErrBadPolicy, key.ID)
	}
	if !sample.Within(key.Caps) || !capsWithinForAnyUser(p.Caps, key.Caps) {
		return authapi.UserPolicy{}, fmt.Errorf("%w: caps exceed the key's capabilities", ErrBadPolicy)
	}
	saved, err := s.st.PutUserPolicy(ctx, p)
	if err != nil {
		return authapi.UserPolicy{}, err
	}
	return policyView(saved), nil
}

// capsWithinForAnyUser checks the caps with "{user}" as a wildcard too:
// a key that allows "user.u*" covers every user, one that allows only
// "user.uaaa…" does not.
func capsWithinForAnyUser(caps, limit token.Capabilities) bool {
	wild := make(token.Capabilities, len(caps))
	for pattern, ops := range caps {
		wild[strings.ReplaceAll(pattern, "{user}", "u*")] = ops
	}
	return wild.Within(limit)
}

// GetPolicy returns app's user policy.
func (s *Service) GetPolicy(ctx context.Context, app string) (authapi.UserPolicy, error) {
	p, err := s.policy(ctx, app)
	if err != nil {
		return authapi.UserPolicy{}, err
	}
	return policyView(p), nil
}

func policyView(p store.UserPolicy) authapi.UserPolicy {
	at := p.UpdatedAt.UTC()
	return authapi.UserPolicy{Key: p.KeyID, Caps: p.Caps, Signup: p.Signup, Anonymous: p.Anonymous,
		AccessTTL: p.AccessTTL.String(), RefreshTTL: p.RefreshTTL.String(), MFARequired: p.MFARequired,
		RedirectURIs: p.RedirectURIs, UpdatedAt: &at}
}

// adminView is the user as an admin sees it.
func (s *Service) adminView(ctx context.Context, u store.User, withOnline bool, online Online) (authapi.User, error) {
	v := *userView(u)
	blocked := u.BlockedAt != nil
	v.Blocked = &blocked
	if withOnline && online != nil {
		on, seen, err := online.Status(ctx, u.App, u.ID)
		if err != nil {
			return authapi.User{}, err
		}
		v.Online, v.LastSeenAt = &on, seen
	}
	return v, nil
}

// ListUsers pages app's users by id.
func (s *Service) ListUsers(ctx context.Context, app, after string, limit int) (authapi.Users, error) {
	ok, err := s.st.AppExists(ctx, app)
	if err != nil {
		return authapi.Users{}, err
	}
	if !ok {
		return authapi.Users{}, ErrNotFound
	}
	list, err := s.st.ListUsers(ctx, app, after, limit+1)
	if err != nil {
		return authapi.Users{}, err
	}
	out := authapi.Users{Users: make([]authapi.User, 0, len(list))}
	if len(list) > limit {
		list = list[:limit]
		out.Next = list[limit-1].ID
	}
	for _, u := range list {
		v, _ := s.adminView(ctx, u, false, nil)
		out.Users = append(out.Users, v)
	}
	return out, nil
}

// GetUser returns app's user id with its online status.
func (s *Service) GetUser(ctx context.Context, app, id string, online Online) (authapi.User, error) {
	u, err := s.st.UserByID(ctx, app, id)
	if errors.Is(err, store.ErrNotFound) {
		return authapi.User{}, ErrNotFound
	}
	if err != nil {
		return authapi.User{}, err
	}
	return s.adminView(ctx, u, true, online)
}

// SetBlocked blocks (revoking every session) or unblocks a user.
func (s *Service) SetBlocked(ctx context.Context, app, id string, blocked bool) (authapi.User, error) {
	u, err := s.st.SetBlocked(ctx, app, id, blocked)
	if errors.Is(err, store.ErrNotFound) {
		return authapi.User{}, ErrNotFound
	}
	if err != nil {
		return authapi.User{}, err
	}
	return s.adminView(ctx, u, false, nil)
}
