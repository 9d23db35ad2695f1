package accounts

import (
	"context"
	"errors"

	"github.com/roomcast/roomcast/services/auth/internal/store"
)

// Identity is who an OAuth/OIDC provider says signed in.
type Identity struct {
	Provider, Subject string
	Email             string
	EmailVerified     bool
}

// AllowCodeCheck applies the per-IP code limit to a request that presents
// a one-time code not tied to an account (an OAuth login code).
func (s *Service) AllowCodeCheck(ctx context.Context, c Client) error {
	return s.lim.Allow(ctx, abuseCheck("code_ip", s.cfg.Limits.CodeIP, c.IP))
}

// OAuthSignIn signs in the user an identity is linked to. An identity
// seen for the first time links to the user with the same email, if the
// provider verified it, or else creates a user (if the policy allows
// sign-up). Linking to an account whose email was never verified takes
// the account over for the provider's verified owner: its password, set
// by whoever signed up, is removed.
func (s *Service) OAuthSignIn(ctx context.Context, app string, id Identity, c Client) (Result, error) {
	p, err := s.policy(ctx, app)
	if err != nil {
		return Result{}, err
	}
	uid, err := s.st.IdentityUser(ctx, app, id.Provider, id.Subject)
	if err == nil {
		u, err := s.st.UserByID(ctx, app, uid)
		if err != nil {
			return Result{}, err
		}
		if u.BlockedAt != nil {
			return Result{}, ErrInvalidCredentials
		}
		return s.signedIn(ctx, p, u, c)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return Result{}, err
	}
	var u store.User
	email := ""
	if id.EmailVerified {
		if email, err = normEmail(id.Email); err != nil {
			email = ""
		}
	}
	if email != "" {
		u, err = s.st.UserByEmail(ctx, app, email)
		switch {
		case err == nil && !u.EmailVerified:
			if u, err = s.st.ClaimUnverified(ctx, u.ID); err != nil {
				return Result{}, err
			}
		case err == nil:
		case errors.Is(err, store.ErrNotFound):
			u = store.User{}
		default:
			return Result{}, err
		}
	}
	if u.ID == "" {
		if !p.Signup {
			return Result{}, ErrSignupDisabled
		}
		u, err = s.st.CreateUser(ctx, store.User{ID: newID("u"), App: app, Email: email, EmailVerified: email != ""})
		if errors.Is(err, store.ErrConflict) { // same email created concurrently
			return Result{}, ErrInvalidCredentials
		}
		if err != nil {
			return Result{}, err
		}
	}
	if u.BlockedAt != nil {
		return Result{}, ErrInvalidCredentials
	}
	if err := s.st.LinkIdentity(ctx, app, id.Provider, id.Subject, u.ID, id.Email); err != nil && !errors.Is(err, store.ErrConflict) {
		return Result{}, err
	}
	return s.signedIn(ctx, p, u, c)
}
