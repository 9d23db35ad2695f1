package store

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/roomcast/roomcast/pkg/auth/authapi"
	"github.com/roomcast/roomcast/pkg/auth/token"
)

// Errors of the end-user store.
var (
	// ErrRefreshReused: a retired refresh token was presented; its session
	// is now revoked.
	ErrRefreshReused = errors.New("store: refresh token reused")
	// ErrStaleStep: a TOTP step at or before the stored one (a replay that
	// raced another sign-in).
	ErrStaleStep = errors.New("store: TOTP step already used")
)

// UserPolicy is an app's user policy.
type UserPolicy struct {
	App          string
	KeyID        string
	Caps         token.Capabilities
	Signup       bool
	Anonymous    bool
	AccessTTL    time.Duration
	RefreshTTL   time.Duration
	MFARequired  bool
	RedirectURIs []string
	UpdatedAt    time.Time
}

// PutUserPolicy creates or replaces app's user policy. The key must be
// one of app's keys (ErrNotFound otherwise, like a missing app).
func (s *Store) PutUserPolicy(ctx context.Context, p UserPolicy) (UserPolicy, error) {
	caps, err := json.Marshal(p.Caps)
	if err != nil {
		return UserPolicy{}, err
	}
	if p.RedirectURIs == nil {
		p.RedirectURIs = []string{}
	}
	err = s.db.QueryRow(ctx, `
		INSERT INTO user_policies (app_id, key_id, caps, signup, anonymous, access_ttl_ms, refresh_ttl_ms, mfa_required, redirect_uris)
		SELECT $1, k.id, $3, $4, $5, $6, $7, $8, $9 FROM api_keys k WHERE k.id = $2 AND k.app_id = $1
		ON CONFLICT (app_id) DO UPDATE SET key_id = EXCLUDED.key_id, caps = EXCLUDED.caps, signup = EXCLUDED.signup,
			anonymous = EXCLUDED.anonymous, access_ttl_ms = EXCLUDED.access_ttl_ms, refresh_ttl_ms = EXCLUDED.refresh_ttl_ms,
			mfa_required = EXCLUDED.mfa_required, redirect_uris = EXCLUDED.redirect_uris, updated_at = now()
		RETURNING updated_at`,
		p.App, p.KeyID, caps, p.Signup, p.Anonymous, p.AccessTTL.Milliseconds(), p.RefreshTTL.Milliseconds(), p.MFARequired, p.RedirectURIs,
	).Scan(&p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return UserPolicy{}, ErrNotFound
	}
	if err != nil {
		return UserPolicy{}, fmt.Errorf("store: put user policy: %w", err)
	}
	return p, nil
}

// GetUserPolicy returns app's user policy; ErrNotFound if it has none.
func (s *Store) GetUserPolicy(ctx context.Context, app string) (UserPolicy, error) {
	var (
		p        UserPolicy
		caps     []byte
		acc, ref int64
	)
	err := s.db.QueryRow(ctx, `
		SELECT app_id, key_id, caps, signup, anonymous, access_ttl_ms, refresh_ttl_ms, mfa_required, redirect_uris, updated_at
		FROM user_policies WHERE app_id = $1`, app).
		Scan(&p.App, &p.KeyID, &caps, &p.Signup, &p.Anonymous, &acc, &ref, &p.MFARequired, &p.RedirectURIs, &p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return UserPolicy{}, ErrNotFound
	}
	if err != nil {
		return UserPolicy{}, fmt.Errorf("store: user policy: %w", err)
	}
	if err := json.Unmarshal(caps, &p.Caps); err != nil {
		return UserPolicy{}, fmt.Errorf("store: user policy of %s: caps: %w", app, err)
	}
	p.AccessTTL, p.RefreshTTL = time.Duration(acc)*time.Millisecond, time.Duration(ref)*time.Millisecond
	return p, nil
}

// GetKey returns one of app's keys without its secret, revoked or not.
func (s *Store) GetKey(ctx context.Context, app, id string) (authapi.Key, error) {
	k, err := scanKey(s.db.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE app_id = $1 AND id = $2`, app, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return authapi.Key{}, ErrNotFound
	}
	if err != nil {
		return authapi.Key{}, fmt.Errorf("store: key: %w", err)
	}
	return k, nil
}

// User is an end user as stored.
type User struct {
	ID                  string
	App                 string
	Email               string // "" for anonymous users
	PasswordHash        string // "" without a password (anonymous, OAuth)
	EmailVerified       bool
	Anonymous           bool
	PendingEmail        string
	PendingPasswordHash string
	BlockedAt           *time.Time
	TOTPSealed          []byte
	TOTPConfirmedAt     *time.Time
	TOTPLastStep        int64
	CreatedAt           time.Time
}

// userCols lists a user's columns, each qualified with alias (e.g. "u.").
func userCols(alias string) string {
	return fmt.Sprintf(`%[1]sid, %[1]sapp_id, coalesce(%[1]semail, ''), coalesce(%[1]spassword_hash, ''), %[1]semail_verified,
	%[1]sanonymous, coalesce(%[1]spending_email, ''), coalesce(%[1]spending_password_hash, ''), %[1]sblocked_at,
	%[1]stotp_sealed, %[1]stotp_confirmed_at, %[1]stotp_last_step, %[1]screated_at`, alias)
}

var userColumns = userCols("")

func scanUser(r pgx.Row) (User, error) {
	var u User
	err := r.Scan(&u.ID, &u.App, &u.Email, &u.PasswordHash, &u.EmailVerified, &u.Anonymous, &u.PendingEmail,
		&u.PendingPasswordHash, &u.BlockedAt, &u.TOTPSealed, &u.TOTPConfirmedAt, &u.TOTPLastStep, &u.CreatedAt)
	return u, err
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateUser inserts u (ID, App, Email, PasswordHash, EmailVerified,
// Anonymous); ErrConflict if the email is taken in the app, ErrNotFound
// if the app does not exist.
func (s *Store) CreateUser(ctx context.Context, u User) (User, error) {
	out, err := scanUser(s.db.QueryRow(ctx, `
		INSERT INTO users (id, app_id, email, password_hash, email_verified, anonymous)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+userColumns,
		u.ID, u.App, nullIfEmpty(u.Email), nullIfEmpty(u.PasswordHash), u.EmailVerified, u.Anonymous))
	switch {
	case isUniqueViolation(err):
		return User{}, ErrConflict
	case isForeignKeyViolation(err):
		return User{}, ErrNotFound
	case err != nil:
		return User{}, fmt.Errorf("store: create user: %w", err)
	}
	return out, nil
}

func (s *Store) oneUser(ctx context.Context, where string, args ...any) (User, error) {
	u, err := scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE `+where, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("store: user: %w", err)
	}
	return u, nil
}

// UserByEmail finds app's user with email, whatever its case.
func (s *Store) UserByEmail(ctx context.Context, app, email string) (User, error) {
	return s.oneUser(ctx, `app_id = $1 AND lower(email) = lower($2)`, app, email)
}

// UserByPendingEmail finds app's anonymous user upgrading to email.
func (s *Store) UserByPendingEmail(ctx context.Context, app, email string) (User, error) {
	return s.oneUser(ctx, `app_id = $1 AND lower(pending_email) = lower($2)`, app, email)
}

// UserByID finds app's user id.
func (s *Store) UserByID(ctx context.Context, app, id string) (User, error) {
	return s.oneUser(ctx, `app_id = $1 AND id = $2`, app, id)
}

// ListUsers pages app's users by id, after the given id.
func (s *Store) ListUsers(ctx context.Context, app, after string, limit int) ([]User, error) {
	rows, err := s.db.Query(ctx, `SELECT `+userColumns+` FROM users WHERE app_id = $1 AND id > $2 ORDER BY id LIMIT $3`, app, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	return users, nil
}

// AppExists reports whether app exists.
func (s *Store) AppExists(ctx context.Context, app string) (bool, error) {
	var ok bool
	if err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM apps WHERE id = $1)`, app).Scan(&ok); err != nil {
		return false, fmt.Errorf("store: app: %w", err)
	}
	return ok, nil
}

func (s *Store) updateUser(ctx context.Context, op, set, where string, args ...any) (User, error) {
	u, err := scanUser(s.db.QueryRow(ctx, `UPDATE users SET `+set+`, updated_at = now() WHERE `+where+` RETURNING `+userColumns, args...))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return User{}, ErrNotFound
	case isUniqueViolation(err):
		return User{}, ErrConflict
	case err != nil:
		return User{}, fmt.Errorf("store: %s: %w", op, err)
	}
	return u, nil
}

// MarkEmailVerified marks user id's email verified.
func (s *Store) MarkEmailVerified(ctx context.Context, id string) (User, error) {
	return s.updateUser(ctx, "verify email", `email_verified = true`, `id = $1`, id)
}

// SetPassword replaces user id's password hash; the code that allowed it
// proved the email, so it is verified too.
func (s *Store) SetPassword(ctx context.Context, id, hash string) (User, error) {
	return s.updateUser(ctx, "set password", `password_hash = $2, email_verified = true`, `id = $1`, id, hash)
}

// SetUnverifiedPassword replaces the password of user id while its email
// is not verified (a repeated sign-up); ErrNotFound once it is verified.
func (s *Store) SetUnverifiedPassword(ctx context.Context, id, hash string) error {
	tag, err := s.db.Exec(ctx, `UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1 AND NOT email_verified`, id, hash)
	if err != nil {
		return fmt.Errorf("store: set password: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// ClaimUnverified marks user id's email verified and removes the
// password whoever signed up with it chose (an OAuth provider proved the
// address to someone else).
func (s *Store) ClaimUnverified(ctx context.Context, id string) (User, error) {
	return s.updateUser(ctx, "claim user", `email_verified = true, password_hash = NULL`, `id = $1`, id)
}

// SetPendingEmail records the email and password an anonymous user is
// upgrading to. Another anonymous user's pending upgrade to the same
// address is dropped: only the newest can complete.
func (s *Store) SetPendingEmail(ctx context.Context, app, id, email, hash string) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE users SET pending_email = NULL, pending_password_hash = NULL
			WHERE app_id = $1 AND lower(pending_email) = lower($2) AND id <> $3`, app, email, id); err != nil {
			return fmt.Errorf("store: pending email: %w", err)
		}
		tag, err := tx.Exec(ctx, `UPDATE users SET pending_email = $3, pending_password_hash = $4, updated_at = now()
			WHERE app_id = $1 AND id = $2 AND anonymous`, app, id, email, hash)
		if err != nil {
			return fmt.Errorf("store: pending email: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// CompleteUpgrade turns anonymous user id into a normal user with its
// pending email (verified) and password; ErrConflict if the email was
// taken meanwhile.
func (s *Store) CompleteUpgrade(ctx context.Context, id string) (User, error) {
	return s.updateUser(ctx, "upgrade", `email = pending_email, password_hash = pending_password_hash,
		pending_email = NULL, pending_password_hash = NULL, anonymous = false, email_verified = true`,
		`id = $1 AND anonymous AND pending_email IS NOT NULL`, id)
}

// SetBlocked blocks or unblocks app's user id; blocking revokes every
// session of the user in the same transaction.
func (s *Store) SetBlocked(ctx context.Context, app, id string, blocked bool) (User, error) {
	var u User
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		if blocked {
			u, err = scanUser(tx.QueryRow(ctx, `UPDATE users SET blocked_at = coalesce(blocked_at, now()), updated_at = now()
				WHERE app_id = $1 AND id = $2 RETURNING `+userColumns, app, id))
		} else {
			u, err = scanUser(tx.QueryRow(ctx, `UPDATE users SET blocked_at = NULL, updated_at = now()
				WHERE app_id = $1 AND id = $2 RETURNING `+userColumns, app, id))
		}
		if err != nil {
			return err
		}
		if blocked {
			_, err = tx.Exec(ctx, `UPDATE user_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL`, id)
		}
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("store: block user: %w", err)
	}
	return u, nil
}

// Code purposes (user_codes.purpose).
const (
	PurposeVerify = "verify"
	PurposeSignIn = "signin"
	PurposeReset  = "reset"
)

// PutCode stores a code's hash for user and purpose, replacing the
// previous one.
func (s *Store) PutCode(ctx context.Context, userID, purpose string, hash []byte, ttl time.Duration) error {
	_, err := s.db.Exec(ctx, `
		INSERT INTO user_codes (user_id, purpose, code_hash, expires_at) VALUES ($1, $2, $3, clock_timestamp() + $4::interval)
		ON CONFLICT (user_id, purpose) DO UPDATE SET code_hash = EXCLUDED.code_hash, expires_at = EXCLUDED.expires_at,
			attempts = 0, created_at = now()`, userID, purpose, hash, ttl.String())
	if err != nil {
		return fmt.Errorf("store: put code: %w", err)
	}
	return nil
}

// UseCode checks hash against user's live code of purpose in constant
// time. A right code is consumed; a wrong one counts an attempt, and the
// maxAttempts-th wrong one voids the code. An expired code is deleted.
func (s *Store) UseCode(ctx context.Context, userID, purpose string, hash []byte, maxAttempts int) (bool, error) {
	ok := false
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var (
			stored   []byte
			attempts int
			live     bool
		)
		err := tx.QueryRow(ctx, `SELECT code_hash, attempts, expires_at > clock_timestamp() FROM user_codes
			WHERE user_id = $1 AND purpose = $2 FOR UPDATE`, userID, purpose).Scan(&stored, &attempts, &live)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		match := subtle.ConstantTimeCompare(stored, hash) == 1
		switch {
		case live && match && attempts < maxAttempts:
			ok = true
			_, err = tx.Exec(ctx, `DELETE FROM user_codes WHERE user_id = $1 AND purpose = $2`, userID, purpose)
		case !live || attempts+1 >= maxAttempts:
			_, err = tx.Exec(ctx, `DELETE FROM user_codes WHERE user_id = $1 AND purpose = $2`, userID, purpose)
		default:
			_, err = tx.Exec(ctx, `UPDATE user_codes SET attempts = attempts + 1 WHERE user_id = $1 AND purpose = $2`, userID, purpose)
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: use code: %w", err)
	}
	return ok, nil
}

// Session is a refresh-token family.
type Session struct {
	ID               string
	App              string
	UserID           string
	RefreshExpiresAt time.Time
	UserAgent        string
	IP               string
	CreatedAt        time.Time
	LastUsedAt       time.Time
}

// CreateSession stores a new session with its first refresh token's hash.
func (s *Store) CreateSession(ctx context.Context, se Session, refreshHash []byte) (Session, error) {
	err := s.db.QueryRow(ctx, `
		INSERT INTO user_sessions (id, app_id, user_id, refresh_hash, refresh_expires_at, user_agent, ip)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at, last_used_at`,
		se.ID, se.App, se.UserID, refreshHash, se.RefreshExpiresAt, se.UserAgent, se.IP).Scan(&se.CreatedAt, &se.LastUsedAt)
	if err != nil {
		return Session{}, fmt.Errorf("store: create session: %w", err)
	}
	return se, nil
}

// RotateRefresh replaces the refresh token oldHash of one of app's
// sessions with newHash. The old token is retired: presenting it again
// revokes the session and fails with ErrRefreshReused. An unknown,
// expired or revoked token, or a blocked user's, is ErrNotFound. issue
// runs before the rotation commits (it mints the new access token): if
// it fails, nothing changes and the old refresh token still works, so a
// failed refresh never turns the client's retry into "reuse".
func (s *Store) RotateRefresh(ctx context.Context, app string, oldHash, newHash []byte, expires time.Time, ip string, issue func(Session) error) (Session, error) {
	var (
		se    Session
		reuse bool
	)
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var live bool
		err := tx.QueryRow(ctx, `
			SELECT s.id, s.app_id, s.user_id, s.user_agent, s.ip, s.created_at,
				s.revoked_at IS NULL AND s.refresh_expires_at > clock_timestamp() AND u.blocked_at IS NULL
			FROM user_sessions s JOIN users u ON u.id = s.user_id
			WHERE s.refresh_hash = $1 AND s.app_id = $2 FOR NO KEY UPDATE OF s`, oldHash, app).
			Scan(&se.ID, &se.App, &se.UserID, &se.UserAgent, &se.IP, &se.CreatedAt, &live)
		if errors.Is(err, pgx.ErrNoRows) {
			// Retired? Then the family is compromised: revoke it.
			var sid string
			err := tx.QueryRow(ctx, `SELECT r.session_id FROM user_refresh_retired r JOIN user_sessions s ON s.id = r.session_id
				WHERE r.refresh_hash = $1 AND s.app_id = $2`, oldHash, app).Scan(&sid)
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			reuse = true
			_, err = tx.Exec(ctx, `UPDATE user_sessions SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1`, sid)
			return err
		}
		if err != nil {
			return err
		}
		if !live {
			return ErrNotFound
		}
		if _, err := tx.Exec(ctx, `INSERT INTO user_refresh_retired (refresh_hash, session_id) VALUES ($1, $2)`, oldHash, se.ID); err != nil {
			return err
		}
		se.RefreshExpiresAt, se.IP = expires, ip
		// Issue before the UPDATE: it inserts rows referencing the session
		// from another connection, which the row lock taken so far (FOR NO
		// KEY UPDATE) allows and the UPDATE's (it changes a unique
		// column: FOR UPDATE) would not.
		if err := issue(se); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `UPDATE user_sessions SET refresh_hash = $2, refresh_expires_at = $3, last_used_at = now(), ip = $4
			WHERE id = $1 RETURNING last_used_at`, se.ID, newHash, expires, ip).Scan(&se.LastUsedAt)
	})
	switch {
	case reuse && err == nil:
		return Session{}, ErrRefreshReused
	case errors.Is(err, ErrNotFound):
		return Session{}, ErrNotFound
	case err != nil:
		return Session{}, fmt.Errorf("store: rotate refresh token: %w", err)
	}
	return se, nil
}

// SessionByRefresh finds the live session whose current refresh token
// hashes to hash.
func (s *Store) SessionByRefresh(ctx context.Context, app string, hash []byte) (Session, error) {
	var se Session
	err := s.db.QueryRow(ctx, `SELECT id, app_id, user_id FROM user_sessions
		WHERE refresh_hash = $1 AND app_id = $2 AND revoked_at IS NULL`, hash, app).Scan(&se.ID, &se.App, &se.UserID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("store: session: %w", err)
	}
	return se, nil
}

// RevokeSession revokes user's session id (ErrNotFound if it is not one
// of theirs).
func (s *Store) RevokeSession(ctx context.Context, userID, id string) error {
	tag, err := s.db.Exec(ctx, `UPDATE user_sessions SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND user_id = $2`, id, userID)
	if err != nil {
		return fmt.Errorf("store: revoke session: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// RevokeUserSessions revokes every session of user except keep.
func (s *Store) RevokeUserSessions(ctx context.Context, userID, keep string) error {
	_, err := s.db.Exec(ctx, `UPDATE user_sessions SET revoked_at = now() WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL`, userID, keep)
	if err != nil {
		return fmt.Errorf("store: revoke sessions: %w", err)
	}
	return nil
}

// ListSessions lists user's live sessions, newest first.
func (s *Store) ListSessions(ctx context.Context, userID string) ([]Session, error) {
	rows, err := s.db.Query(ctx, `SELECT id, app_id, user_id, refresh_expires_at, user_agent, ip, created_at, last_used_at
		FROM user_sessions WHERE user_id = $1 AND revoked_at IS NULL AND refresh_expires_at > now() ORDER BY created_at DESC`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Session, error) {
		var se Session
		err := r.Scan(&se.ID, &se.App, &se.UserID, &se.RefreshExpiresAt, &se.UserAgent, &se.IP, &se.CreatedAt, &se.LastUsedAt)
		return se, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: sessions: %w", err)
	}
	return out, nil
}

// RecordAccessToken remembers that jti was minted for session, and drops
// the session's expired ones.
func (s *Store) RecordAccessToken(ctx context.Context, jti, sessionID string, expires time.Time) error {
	_, err := s.db.Exec(ctx, `
		WITH gone AS (DELETE FROM user_access_tokens WHERE session_id = $2 AND expires_at < now())
		INSERT INTO user_access_tokens (jti, session_id, expires_at) VALUES ($1, $2, $3)`, jti, sessionID, expires)
	if err != nil {
		return fmt.Errorf("store: access token: %w", err)
	}
	return nil
}

// SessionByAccess finds the live session an access token (by jti) was
// minted for, and its user; ErrNotFound if the session is revoked or the
// user blocked.
func (s *Store) SessionByAccess(ctx context.Context, app, jti string) (Session, User, error) {
	var se Session
	row := s.db.QueryRow(ctx, `SELECT s.id, s.app_id, s.user_id, `+userCols("u.")+`
		FROM user_access_tokens a JOIN user_sessions s ON s.id = a.session_id JOIN users u ON u.id = s.user_id
		WHERE a.jti = $1 AND s.app_id = $2 AND s.revoked_at IS NULL AND u.blocked_at IS NULL AND a.expires_at > now()`, jti, app)
	var u User
	err := row.Scan(&se.ID, &se.App, &se.UserID, &u.ID, &u.App, &u.Email, &u.PasswordHash, &u.EmailVerified, &u.Anonymous,
		&u.PendingEmail, &u.PendingPasswordHash, &u.BlockedAt, &u.TOTPSealed, &u.TOTPConfirmedAt, &u.TOTPLastStep, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, User{}, ErrNotFound
	}
	if err != nil {
		return Session{}, User{}, fmt.Errorf("store: session by access token: %w", err)
	}
	return se, u, nil
}

// SetTOTPPending stores a new, unconfirmed TOTP secret (sealed); it does
// nothing to a user whose TOTP is confirmed (ErrConflict).
func (s *Store) SetTOTPPending(ctx context.Context, id string, sealed []byte) error {
	tag, err := s.db.Exec(ctx, `UPDATE users SET totp_sealed = $2, totp_last_step = 0, updated_at = now()
		WHERE id = $1 AND totp_confirmed_at IS NULL`, id, sealed)
	if err != nil {
		return fmt.Errorf("store: totp: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrConflict
	}
	return nil
}

// ConfirmTOTP confirms user id's pending secret at step and replaces the
// recovery codes with hashes.
func (s *Store) ConfirmTOTP(ctx context.Context, id string, step int64, hashes [][]byte) error {
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE users SET totp_confirmed_at = now(), totp_last_step = $2, updated_at = now()
			WHERE id = $1 AND totp_sealed IS NOT NULL AND totp_confirmed_at IS NULL AND totp_last_step < $2`, id, step)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrStaleStep
		}
		if _, err := tx.Exec(ctx, `DELETE FROM user_recovery_codes WHERE user_id = $1`, id); err != nil {
			return err
		}
		for _, h := range hashes {
			if _, err := tx.Exec(ctx, `INSERT INTO user_recovery_codes (user_id, code_hash) VALUES ($1, $2) ON CONFLICT DO NOTHING`, id, h); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, ErrStaleStep) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: confirm totp: %w", err)
	}
	return nil
}

// AdvanceTOTPStep records step as user id's last used TOTP step, if it is
// after the stored one (ErrStaleStep otherwise: a concurrent use of the
// same code lost).
func (s *Store) AdvanceTOTPStep(ctx context.Context, id string, step int64) error {
	tag, err := s.db.Exec(ctx, `UPDATE users SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2`, id, step)
	if err != nil {
		return fmt.Errorf("store: totp step: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrStaleStep
	}
	return nil
}

// DisableTOTP removes user id's TOTP secret and recovery codes.
func (s *Store) DisableTOTP(ctx context.Context, id string) error {
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE users SET totp_sealed = NULL, totp_confirmed_at = NULL, updated_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM user_recovery_codes WHERE user_id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: disable totp: %w", err)
	}
	return nil
}

// UseRecoveryCode consumes user id's recovery code with hash; false if
// there is none (never issued, or used already).
func (s *Store) UseRecoveryCode(ctx context.Context, id string, hash []byte) (bool, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM user_recovery_codes WHERE user_id = $1 AND code_hash = $2`, id, hash)
	if err != nil {
		return false, fmt.Errorf("store: recovery code: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// IdentityUser returns the user an OAuth identity is linked to
// (ErrNotFound if none).
func (s *Store) IdentityUser(ctx context.Context, app, provider, subject string) (string, error) {
	var id string
	err := s.db.QueryRow(ctx, `SELECT user_id FROM user_identities WHERE app_id = $1 AND provider = $2 AND subject = $3`,
		app, provider, subject).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("store: identity: %w", err)
	}
	return id, nil
}

// LinkIdentity links an OAuth identity to user id (ErrConflict if it is
// linked already).
func (s *Store) LinkIdentity(ctx context.Context, app, provider, subject, userID, email string) error {
	_, err := s.db.Exec(ctx, `INSERT INTO user_identities (app_id, provider, subject, user_id, email) VALUES ($1, $2, $3, $4, $5)`,
		app, provider, subject, userID, email)
	if isUniqueViolation(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("store: link identity: %w", err)
	}
	return nil
}

// PruneUsers deletes what can no longer matter: expired codes and access
// token records, retired refresh hashes older than their app's
// refresh_ttl (such a token would have expired anyway, so presenting it
// is refused without them), and sessions revoked or expired more than
// keep ago (with their rows). It returns how many rows went.
func (s *Store) PruneUsers(ctx context.Context, keep time.Duration) (int64, error) {
	var total int64
	for _, st := range []struct {
		q    string
		args []any
	}{
		{q: `DELETE FROM user_codes WHERE expires_at < now()`},
		{q: `DELETE FROM user_access_tokens WHERE expires_at < now()`},
		{q: `DELETE FROM user_refresh_retired r USING user_sessions s, user_policies p
			WHERE s.id = r.session_id AND p.app_id = s.app_id AND r.retired_at < now() - p.refresh_ttl_ms * interval '1 millisecond'`},
		{q: `DELETE FROM user_sessions WHERE coalesce(revoked_at, refresh_expires_at) < now() - $1::interval`, args: []any{keep.String()}},
	} {
		tag, err := s.db.Exec(ctx, st.q, st.args...)
		if err != nil {
			return total, fmt.Errorf("store: prune users: %w", err)
		}
		total += tag.RowsAffected()
	}
	return total, nil
}
