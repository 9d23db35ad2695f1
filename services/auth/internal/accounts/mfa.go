package accounts

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/services/auth/internal/mfa"
	"github.com/roomcast/roomcast/services/auth/internal/store"
)

// maxMFAAttempts is how many wrong codes one mfa_token takes before it is
// void (the code limits apply as well).
const maxMFAAttempts = 5

// countAttempt counts a try of an mfa_token, if it still exists (-1 if
// not: a plain HINCRBY would recreate it without its expiry).
//
//go:embed mfa_attempt.lua
var countAttemptSrc string

var countAttempt = redis.NewScript(countAttemptSrc)

func (s *Service) mfaKey(tok string) string { return s.cfg.Prefix + "auth:mfa:" + hashKey(tok) }

// newMFAToken records that user passed the first factor; the token is
// good for one second factor within MFATokenTTL.
func (s *Service) newMFAToken(ctx context.Context, app, userID string) (string, error) {
	tok := newSecretToken("mt_")
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, s.mfaKey(tok), "app", app, "user", userID, "attempts", 0)
	pipe.Expire(ctx, s.mfaKey(tok), s.cfg.MFATokenTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return "", fmt.Errorf("accounts: mfa token: %w", err)
	}
	return tok, nil
}

func totpContext(userID string) string { return "totp:" + userID }

// Challenge completes a sign-in with the second factor: a TOTP code or a
// recovery code (each works once).
func (s *Service) Challenge(ctx context.Context, app, mfaToken, code, recovery string, c Client) (Result, error) {
	p, err := s.policy(ctx, app)
	if err != nil {
		return Result{}, err
	}
	if !strings.HasPrefix(mfaToken, "mt_") || (code == "") == (recovery == "") {
		return Result{}, ErrMFAInvalid
	}
	key := s.mfaKey(mfaToken)
	vals, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return Result{}, fmt.Errorf("accounts: mfa token: %w", err)
	}
	if vals["app"] != app || vals["user"] == "" {
		return Result{}, ErrMFAInvalid
	}
	if err := s.lim.Allow(ctx, s.codeChecks(vals["user"], c)...); err != nil {
		return Result{}, err
	}
	n, err := countAttempt.Run(ctx, s.rdb, []string{key}).Int64()
	if err != nil {
		return Result{}, fmt.Errorf("accounts: mfa token: %w", err)
	}
	if n < 0 || n > maxMFAAttempts {
		s.rdb.Del(ctx, key)
		return Result{}, ErrMFAInvalid
	}
	u, err := s.st.UserByID(ctx, app, vals["user"])
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, ErrMFAInvalid
	}
	if err != nil {
		return Result{}, err
	}
	if u.BlockedAt != nil || u.TOTPConfirmedAt == nil {
		return Result{}, ErrMFAInvalid
	}
	if recovery != "" {
		ok, err := s.st.UseRecoveryCode(ctx, u.ID, mfa.HashRecoveryCode(recovery))
		if err != nil {
			return Result{}, err
		}
		if !ok {
			return Result{}, ErrMFAInvalid
		}
	} else if err := s.checkTOTP(ctx, u, code); err != nil {
		return Result{}, err
	}
	// One use: only the request that deletes the token goes on.
	if n, err := s.rdb.Del(ctx, key).Result(); err != nil || n != 1 {
		return Result{}, ErrMFAInvalid
	}
	return s.newSession(ctx, p, u, c)
}

// checkTOTP checks a code against u's confirmed secret and records its
// step, so the same code never works twice.
func (s *Service) checkTOTP(ctx context.Context, u store.User, code string) error {
	secret, err := s.sealer.Open(u.TOTPSealed, totpContext(u.ID))
	if err != nil {
		return fmt.Errorf("accounts: totp secret of %s: %w", u.ID, err)
	}
	step, err := mfa.Check(string(secret), code, u.TOTPLastStep, s.now())
	if err != nil {
		return ErrMFAInvalid
	}
	if err := s.st.AdvanceTOTPStep(ctx, u.ID, step); errors.Is(err, store.ErrStaleStep) {
		return ErrMFAInvalid
	} else if err != nil {
		return err
	}
	return nil
}

// MFAPrincipal is the user behind an mfa_token whose user must enroll
// TOTP (the policy requires it): the token stands in for the bearer of
// /mfa/totp/enroll and /mfa/totp/confirm.
func (s *Service) MFAPrincipal(ctx context.Context, app, mfaToken string) (Principal, error) {
	if _, err := s.policy(ctx, app); err != nil {
		return Principal{}, err
	}
	if !strings.HasPrefix(mfaToken, "mt_") {
		return Principal{}, ErrMFAInvalid
	}
	vals, err := s.rdb.HGetAll(ctx, s.mfaKey(mfaToken)).Result()
	if err != nil {
		return Principal{}, fmt.Errorf("accounts: mfa token: %w", err)
	}
	if vals["app"] != app || vals["user"] == "" {
		return Principal{}, ErrMFAInvalid
	}
	u, err := s.st.UserByID(ctx, app, vals["user"])
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrMFAInvalid
	}
	if err != nil {
		return Principal{}, err
	}
	if u.BlockedAt != nil {
		return Principal{}, ErrMFAInvalid
	}
	return Principal{App: app, User: u}, nil
}

// FinishEnrollment signs in the user of an mfa_token that has just
// confirmed TOTP; the token is used up.
func (s *Service) FinishEnrollment(ctx context.Context, app, mfaToken string, pr Principal, c Client) (Result, error) {
	p, err := s.policy(ctx, app)
	if err != nil {
		return Result{}, err
	}
	if n, err := s.rdb.Del(ctx, s.mfaKey(mfaToken)).Result(); err != nil || n != 1 {
		return Result{}, ErrMFAInvalid
	}
	u, err := s.st.UserByID(ctx, app, pr.User.ID)
	if err != nil {
		return Result{}, err
	}
	return s.newSession(ctx, p, u, c)
}

// EnrollTOTP creates a new TOTP secret for the user, to be confirmed with
// a code; ErrConflict if TOTP is on already (disable it first).
func (s *Service) EnrollTOTP(ctx context.Context, pr Principal) (authapi.TOTPEnrollment, error) {
	if pr.User.TOTPConfirmedAt != nil {
		return authapi.TOTPEnrollment{}, ErrConflict
	}
	account := pr.User.Email
	if account == "" {
		account = pr.User.ID
	}
	e, err := mfa.Enroll(pr.App, account)
	if err != nil {
		return authapi.TOTPEnrollment{}, err
	}
	err = s.st.SetTOTPPending(ctx, pr.User.ID, s.sealer.Seal([]byte(e.Secret), totpContext(pr.User.ID)))
	if errors.Is(err, store.ErrConflict) {
		return authapi.TOTPEnrollment{}, ErrConflict
	}
	if err != nil {
		return authapi.TOTPEnrollment{}, err
	}
	return authapi.TOTPEnrollment{Secret: e.Secret, OTPAuthURI: e.URI, QRPNG: e.QRPNG}, nil
}

// ConfirmTOTP turns TOTP on with a first code from the authenticator app
// and returns the recovery codes (shown once).
func (s *Service) ConfirmTOTP(ctx context.Context, pr Principal, code string, c Client) ([]string, error) {
	if err := s.lim.Allow(ctx, s.codeChecks(pr.User.ID, c)...); err != nil {
		return nil, err
	}
	u := pr.User
	if u.TOTPSealed == nil || u.TOTPConfirmedAt != nil {
		return nil, ErrConflict
	}
	secret, err := s.sealer.Open(u.TOTPSealed, totpContext(u.ID))
	if err != nil {
		return nil, fmt.Errorf("accounts: totp secret of %s: %w", u.ID, err)
	}
	step, err := mfa.Check(string(secret), code, u.TOTPLastStep, s.now())
	if err != nil {
		return nil, ErrMFAInvalid
	}
	plain, hashes, err := mfa.NewRecoveryCodes()
	if err != nil {
		return nil, err
	}
	if err := s.st.ConfirmTOTP(ctx, u.ID, step, hashes); errors.Is(err, store.ErrStaleStep) {
		return nil, ErrMFAInvalid
	} else if err != nil {
		return nil, err
	}
	return plain, nil
}

// DisableTOTP turns TOTP off; it takes a current code (or a recovery
// code), so a stolen access token alone cannot remove the second factor.
func (s *Service) DisableTOTP(ctx context.Context, pr Principal, code string, c Client) error {
	if err := s.lim.Allow(ctx, s.codeChecks(pr.User.ID, c)...); err != nil {
		return err
	}
	u := pr.User
	if u.TOTPConfirmedAt == nil {
		return ErrConflict
	}
	if err := s.checkTOTP(ctx, u, code); err != nil {
		ok, rerr := s.st.UseRecoveryCode(ctx, u.ID, mfa.HashRecoveryCode(code))
		if rerr != nil {
			return rerr
		}
		if !ok {
			return err
		}
	}
	return s.st.DisableTOTP(ctx, u.ID)
}
