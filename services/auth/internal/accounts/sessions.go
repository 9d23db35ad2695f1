package accounts

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
	"github.com/roomcast/roomcast/services/auth/internal/store"
)

// Refresh rotates a refresh token: the session keeps its id and gets a
// new access and refresh token; the old refresh token is retired, and
// presenting it again revokes the session (ErrRefreshReused).
func (s *Service) Refresh(ctx context.Context, app, refresh string, c Client) (Result, error) {
	p, err := s.policy(ctx, app)
	if err != nil {
		return Result{}, err
	}
	if err := s.lim.Allow(ctx, abuseCheck("refresh_ip", s.cfg.Limits.RefreshIP, c.IP)); err != nil {
		return Result{}, err
	}
	if !strings.HasPrefix(refresh, "rt_") {
		return Result{}, ErrInvalidCredentials
	}
	next := newSecretToken("rt_")
	var res Result
	_, err = s.st.RotateRefresh(ctx, app, tokenHash(refresh), tokenHash(next), s.now().Add(p.RefreshTTL).Truncate(time.Second), c.IP,
		func(se store.Session) error {
			u, err := s.st.UserByID(ctx, app, se.UserID)
			if err != nil {
				return err
			}
			res, err = s.result(ctx, p, u, se, next)
			return err
		})
	switch {
	case errors.Is(err, store.ErrRefreshReused):
		s.log.Warn("refresh token reused: session revoked", "app", app, "ip", c.IP)
		return Result{}, ErrRefreshReused
	case errors.Is(err, store.ErrNotFound):
		return Result{}, ErrInvalidCredentials
	case err != nil:
		return Result{}, err
	}
	return res, nil
}

// Authenticate checks a bearer access token of app: signed by this
// service for the app's policy key, and its session still live (a
// revoked session's tokens stop working here at once; gateways accept
// them until they expire, within the access TTL).
func (s *Service) Authenticate(ctx context.Context, app, bearer string) (Principal, error) {
	p, err := s.policy(ctx, app)
	if err != nil {
		return Principal{}, err
	}
	published, err := s.st.PublishedSigningKeys(ctx)
	if err != nil {
		return Principal{}, err
	}
	keys := make([]token.Key, 0, len(published)+1)
	for _, k := range published {
		keys = append(keys, token.Key{ID: k.ID, Public: k.Public})
	}
	key, err := s.st.GetKey(ctx, app, p.KeyID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Principal{}, err
	}
	if err == nil && key.RevokedAt == nil {
		keys = append(keys, token.Key{App: app, ID: key.ID, Caps: key.Caps})
	}
	v := token.Verifier{Keys: token.NewStaticKeyring(keys...), Now: s.now}
	claims, err := v.Verify(bearer)
	if err != nil || claims.App != app || claims.ID == "" {
		return Principal{}, ErrInvalidCredentials
	}
	se, u, err := s.st.SessionByAccess(ctx, app, claims.ID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.ID != claims.Subject) {
		return Principal{}, ErrInvalidCredentials
	}
	if err != nil {
		return Principal{}, err
	}
	return Principal{App: app, User: u, SessionID: se.ID}, nil
}

// SignOut revokes the session of a bearer (pr) or of a refresh token
// (counted by the refresh limit: it takes a secret).
func (s *Service) SignOut(ctx context.Context, app string, pr *Principal, refresh string, c Client) error {
	if pr != nil {
		return s.st.RevokeSession(ctx, pr.User.ID, pr.SessionID)
	}
	if _, err := s.policy(ctx, app); err != nil {
		return err
	}
	if err := s.lim.Allow(ctx, abuseCheck("refresh_ip", s.cfg.Limits.RefreshIP, c.IP)); err != nil {
		return err
	}
	se, err := s.st.SessionByRefresh(ctx, app, tokenHash(refresh))
	if errors.Is(err, store.ErrNotFound) {
		return ErrInvalidCredentials
	}
	if err != nil {
		return err
	}
	return s.st.RevokeSession(ctx, se.UserID, se.ID)
}

// Me is the signed-in user.
func (s *Service) Me(pr Principal) *authapi.User { return userView(pr.User) }

// Sessions lists the user's live sessions, marking the caller's.
func (s *Service) Sessions(ctx context.Context, pr Principal) ([]authapi.SessionInfo, error) {
	list, err := s.st.ListSessions(ctx, pr.User.ID)
	if err != nil {
		return nil, err
	}
	out := make([]authapi.SessionInfo, 0, len(list))
	for _, se := range list {
		out = append(out, authapi.SessionInfo{ID: se.ID, CreatedAt: se.CreatedAt.UTC(), LastUsedAt: se.LastUsedAt.UTC(),
			UserAgent: se.UserAgent, IP: se.IP, Current: se.ID == pr.SessionID})
	}
	return out, nil
}

// RevokeSession revokes one of the user's sessions.
func (s *Service) RevokeSession(ctx context.Context, pr Principal, id string) error {
	err := s.st.RevokeSession(ctx, pr.User.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	return err
}
