package accounts

import (
	"context"
	"errors"

	"github.com/roomcast/roomcast/services/auth/internal/abuse"
	"github.com/roomcast/roomcast/services/auth/internal/mail"
	"github.com/roomcast/roomcast/services/auth/internal/password"
	"github.com/roomcast/roomcast/services/auth/internal/store"
)

// SignUp registers email with pw, or, if the address has an account
// already, mails its owner about it instead. The outcome is the same
// either way (nil), so sign-up tells nobody which addresses have
// accounts; a new account gets a verification code.
//
// An existing account whose email is not verified yet takes the new
// password and gets a new code: whoever proves the mailbox decides the
// password, not whoever signed up first.
func (s *Service) SignUp(ctx context.Context, app, email, pw string, c Client) error {
	p, err := s.policy(ctx, app)
	if err != nil {
		return err
	}
	if !p.Signup {
		return ErrSignupDisabled
	}
	if email, err = normEmail(email); err != nil {
		return err
	}
	if password.Validate(pw) != nil {
		return ErrWeakPassword
	}
	if err := s.lim.Allow(ctx, append(s.mailChecks(email, c), s.signupCheck(c))...); err != nil {
		return err
	}
	// Hash first, for every request: the work must not depend on the
	// address.
	hash, err := password.Hash(pw, password.Default)
	if err != nil {
		return err
	}
	u, err := s.st.UserByEmail(ctx, app, email)
	switch {
	case errors.Is(err, store.ErrNotFound):
		u, err = s.st.CreateUser(ctx, store.User{ID: newID("u"), App: app, Email: email, PasswordHash: hash})
		if errors.Is(err, store.ErrConflict) { // signed up concurrently
			return nil
		}
		if err != nil {
			return err
		}
		return s.sendCode(ctx, app, u, email, store.PurposeVerify, mail.KindVerify)
	case err != nil:
		return err
	case !u.EmailVerified && u.BlockedAt == nil:
		if err := s.st.SetUnverifiedPassword(ctx, u.ID, hash); err != nil {
			return err
		}
		return s.sendCode(ctx, app, u, email, store.PurposeVerify, mail.KindVerify)
	default:
		_ = s.mail.Send(ctx, mail.Message{App: app, To: email, Kind: mail.KindExisting})
		return nil
	}
}

func (s *Service) signupCheck(c Client) abuse.Check {
	return abuse.Check{Name: "signup_ip", Rate: s.cfg.Limits.SignupIP, Key: c.IP}
}

// Verify checks a verification code: the email is verified (an anonymous
// user's upgrade completes, keeping its id) and the user signed in.
func (s *Service) Verify(ctx context.Context, app, email, code string, c Client) (Result, error) {
	p, err := s.policy(ctx, app)
	if err != nil {
		return Result{}, err
	}
	if email, err = normEmail(email); err != nil {
		return Result{}, ErrInvalidCredentials
	}
	if err := s.lim.Allow(ctx, s.codeChecks(acct(email), c)...); err != nil {
		return Result{}, err
	}
	u, err := s.st.UserByEmail(ctx, app, email)
	upgrade := false
	if errors.Is(err, store.ErrNotFound) {
		u, err = s.st.UserByPendingEmail(ctx, app, email)
		upgrade = err == nil
	}
	if errors.Is(err, store.ErrNotFound) {
		missingCode(code)
		return Result{}, ErrInvalidCredentials
	}
	if err != nil {
		return Result{}, err
	}
	ok, err := s.checkCode(ctx, u, store.PurposeVerify, code)
	if err != nil {
		return Result{}, err
	}
	if !ok || u.BlockedAt != nil {
		return Result{}, ErrInvalidCredentials
	}
	if upgrade {
		u, err = s.st.CompleteUpgrade(ctx, u.ID)
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return Result{}, ErrInvalidCredentials // the address was taken meanwhile
		}
	} else {
		u, err = s.st.MarkEmailVerified(ctx, u.ID)
	}
	if err != nil {
		return Result{}, err
	}
	return s.signedIn(ctx, p, u, c)
}

// Resend mails a new verification code if email has an unverified account
// (or a pending upgrade); nothing otherwise. Always nil unless limited.
func (s *Service) Resend(ctx context.Context, app, email string, c Client) error {
	if _, err := s.policy(ctx, app); err != nil {
		return err
	}
	email, err := normEmail(email)
	if err != nil {
		return ErrBadEmail
	}
	if err := s.lim.Allow(ctx, s.mailChecks(email, c)...); err != nil {
		return err
	}
	u, err := s.st.UserByEmail(ctx, app, email)
	if errors.Is(err, store.ErrNotFound) {
		u, err = s.st.UserByPendingEmail(ctx, app, email)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case u.EmailVerified && !u.Anonymous, u.BlockedAt != nil:
		return nil
	}
	return s.sendCode(ctx, app, u, email, store.PurposeVerify, mail.KindVerify)
}

// SignIn checks email and password. Unknown email, wrong password and
// blocked user are one error and cost one password hash each; only after
// a right password does an unverified email say so (and get a new code).
func (s *Service) SignIn(ctx context.Context, app, email, pw string, c Client) (Result, error) {
	p, err := s.policy(ctx, app)
	if err != nil {
		return Result{}, err
	}
	if email, err = normEmail(email); err != nil || len(pw) > password.MaxBytes {
		_, _ = s.checkPassword(pw, "")
		return Result{}, ErrInvalidCredentials
	}
	if err := s.lim.Allow(ctx, s.signinChecks(email, c)...); err != nil {
		return Result{}, err
	}
	u, err := s.st.UserByEmail(ctx, app, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Result{}, err
	}
	// An unknown email, or a user without a password, is checked against
	// the dummy hash: the same work as a wrong password.
	ok, err := s.checkPassword(pw, u.PasswordHash)
	if err != nil {
		return Result{}, err
	}
	if !ok || u.ID == "" || u.BlockedAt != nil {
		return Result{}, ErrInvalidCredentials
	}
	if !u.EmailVerified {
		if s.lim.Allow(ctx, s.mailChecks(email, c)...) == nil {
			if err := s.sendCode(ctx, app, u, u.Email, store.PurposeVerify, mail.KindVerify); err != nil {
				return Result{}, err
			}
		}
		return Result{}, ErrEmailNotVerified
	}
	return s.signedIn(ctx, p, u, c)
}

// SendSignInCode mails a one-time sign-in code if email has an account
// that is not blocked; nil either way.
func (s *Service) SendSignInCode(ctx context.Context, app, email string, c Client) error {
	return s.mailCode(ctx, app, email, c, store.PurposeSignIn, mail.KindSignIn)
}

// ResetPassword mails a password reset code if email has an account; nil
// either way.
func (s *Service) ResetPassword(ctx context.Context, app, email string, c Client) error {
	return s.mailCode(ctx, app, email, c, store.PurposeReset, mail.KindReset)
}

func (s *Service) mailCode(ctx context.Context, app, email string, c Client, purpose string, kind mail.Kind) error {
	if _, err := s.policy(ctx, app); err != nil {
		return err
	}
	email, err := normEmail(email)
	if err != nil {
		return ErrBadEmail
	}
	if err := s.lim.Allow(ctx, s.mailChecks(email, c)...); err != nil {
		return err
	}
	u, err := s.st.UserByEmail(ctx, app, email)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case u.BlockedAt != nil:
		return nil
	}
	return s.sendCode(ctx, app, u, u.Email, purpose, kind)
}

// codeUser finds the user a code for email is checked against, applying
// the code limits first.
func (s *Service) codeUser(ctx context.Context, app, email, code string, c Client) (store.User, error) {
	email, err := normEmail(email)
	if err != nil {
		return store.User{}, ErrInvalidCredentials
	}
	if err := s.lim.Allow(ctx, s.codeChecks(acct(email), c)...); err != nil {
		return store.User{}, err
	}
	u, err := s.st.UserByEmail(ctx, app, email)
	if errors.Is(err, store.ErrNotFound) {
		missingCode(code)
		return store.User{}, ErrInvalidCredentials
	}
	return u, err
}

// redeemCode finds the user of email and uses up their code of purpose:
// ErrInvalidCredentials for an unknown email, a wrong or void code and a
// blocked user alike.
func (s *Service) redeemCode(ctx context.Context, app, email, code, purpose string, c Client) (store.User, error) {
	u, err := s.codeUser(ctx, app, email, code, c)
	if err != nil {
		return store.User{}, err
	}
	ok, err := s.checkCode(ctx, u, purpose, code)
	if err != nil {
		return store.User{}, err
	}
	if !ok || u.BlockedAt != nil {
		return store.User{}, ErrInvalidCredentials
	}
	return u, nil
}

// SignInWithCode signs in with a mailed sign-in code (which also proves
// the email).
func (s *Service) SignInWithCode(ctx context.Context, app, email, code string, c Client) (Result, error) {
	p, err := s.policy(ctx, app)
	if err != nil {
		return Result{}, err
	}
	u, err := s.redeemCode(ctx, app, email, code, store.PurposeSignIn, c)
	if err != nil {
		return Result{}, err
	}
	if !u.EmailVerified {
		if u, err = s.st.MarkEmailVerified(ctx, u.ID); err != nil {
			return Result{}, err
		}
	}
	return s.signedIn(ctx, p, u, c)
}

// ConfirmReset sets a new password with a reset code, revokes every
// session of the user and signs them in anew.
func (s *Service) ConfirmReset(ctx context.Context, app, email, code, pw string, c Client) (Result, error) {
	p, err := s.policy(ctx, app)
	if err != nil {
		return Result{}, err
	}
	if password.Validate(pw) != nil {
		return Result{}, ErrWeakPassword
	}
	u, err := s.redeemCode(ctx, app, email, code, store.PurposeReset, c)
	if err != nil {
		return Result{}, err
	}
	hash, err := password.Hash(pw, password.Default)
	if err != nil {
		return Result{}, err
	}
	if u, err = s.st.SetPassword(ctx, u.ID, hash); err != nil {
		return Result{}, err
	}
	if err := s.st.RevokeUserSessions(ctx, u.ID, ""); err != nil {
		return Result{}, err
	}
	return s.signedIn(ctx, p, u, c)
}

// Anonymous creates an anonymous user and signs it in.
func (s *Service) Anonymous(ctx context.Context, app string, c Client) (Result, error) {
	p, err := s.policy(ctx, app)
	if err != nil {
		return Result{}, err
	}
	if !p.Anonymous {
		return Result{}, ErrSignupDisabled
	}
	if err := s.lim.Allow(ctx, s.signupCheck(c)); err != nil {
		return Result{}, err
	}
	u, err := s.st.CreateUser(ctx, store.User{ID: newID("u"), App: app, Anonymous: true})
	if err != nil {
		return Result{}, err
	}
	return s.newSession(ctx, p, u, c)
}

// Upgrade starts turning an anonymous user into one with email and pw:
// a code goes to email, and Verify completes it under the same user id.
// If email has an account already, its owner is told instead; the answer
// is the same.
func (s *Service) Upgrade(ctx context.Context, pr Principal, email, pw string, c Client) error {
	if !pr.User.Anonymous {
		return ErrConflict
	}
	email, err := normEmail(email)
	if err != nil {
		return err
	}
	if password.Validate(pw) != nil {
		return ErrWeakPassword
	}
	if err := s.lim.Allow(ctx, s.mailChecks(email, c)...); err != nil {
		return err
	}
	hash, err := password.Hash(pw, password.Default)
	if err != nil {
		return err
	}
	_, err = s.st.UserByEmail(ctx, pr.App, email)
	switch {
	case err == nil:
		_ = s.mail.Send(ctx, mail.Message{App: pr.App, To: email, Kind: mail.KindExisting})
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if err := s.st.SetPendingEmail(ctx, pr.App, pr.User.ID, email, hash); err != nil {
		return err
	}
	return s.sendCode(ctx, pr.App, pr.User, email, store.PurposeVerify, mail.KindVerify)
}
