package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// OAuthProvider is an app's OAuth 2.0 / OpenID Connect sign-in provider
// (table oauth_providers). ClientSecret is in clear only in what
// OAuthProvider returns; lists leave it nil and say HasClientSecret.
type OAuthProvider struct {
	App, Name       string
	Kind            string // "oidc" or "github"
	Issuer          string
	ClientID        string
	ClientSecret    []byte
	HasClientSecret bool
	Scopes          []string
	// AuthURL, TokenURL, UserURL and EmailsURL are a "github" provider's
	// endpoints (empty: GitHub's own).
	AuthURL, TokenURL, UserURL, EmailsURL string
	CreatedAt, UpdatedAt                  time.Time
}

// oauthSecretContext binds a sealed client secret to its provider.
func oauthSecretContext(app, name string) string { return "oauth-client-secret:" + app + "." + name }

// PutOAuthProvider creates or replaces an app's provider. A nil
// ClientSecret keeps the stored one. It reports whether the provider is
// new; ErrNotFound if the app does not exist.
func (s *Store) PutOAuthProvider(ctx context.Context, p OAuthProvider) (OAuthProvider, bool, error) {
	var sealed []byte
	if p.ClientSecret != nil {
		sealed = s.sealer.Seal(p.ClientSecret, oauthSecretContext(p.App, p.Name))
	}
	if p.Scopes == nil {
		p.Scopes = []string{}
	}
	var created bool
	err := s.db.QueryRow(ctx, `
		INSERT INTO oauth_providers (app_id, name, kind, issuer, client_id, client_secret_sealed, scopes,
		                             auth_url, token_url, user_url, emails_url)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (app_id, name) DO UPDATE SET
			kind = EXCLUDED.kind, issuer = EXCLUDED.issuer, client_id = EXCLUDED.client_id,
			client_secret_sealed = COALESCE(EXCLUDED.client_secret_sealed, oauth_providers.client_secret_sealed),
			scopes = EXCLUDED.scopes, auth_url = EXCLUDED.auth_url, token_url = EXCLUDED.token_url,
			user_url = EXCLUDED.user_url, emails_url = EXCLUDED.emails_url, updated_at = now()
		RETURNING created_at, updated_at, client_secret_sealed IS NOT NULL, xmax = 0`,
		p.App, p.Name, p.Kind, p.Issuer, p.ClientID, sealed, p.Scopes,
		p.AuthURL, p.TokenURL, p.UserURL, p.EmailsURL,
	).Scan(&p.CreatedAt, &p.UpdatedAt, &p.HasClientSecret, &created)
	if isForeignKeyViolation(err) {
		return OAuthProvider{}, false, ErrNotFound
	}
	if err != nil {
		return OAuthProvider{}, false, fmt.Errorf("store: put oauth provider: %w", err)
	}
	p.ClientSecret = nil
	return p, created, nil
}

const oauthColumns = `app_id, name, kind, issuer, client_id, client_secret_sealed, scopes,
	auth_url, token_url, user_url, emails_url, created_at, updated_at`

func scanOAuthProvider(r pgx.Row) (OAuthProvider, []byte, error) {
	var p OAuthProvider
	var sealed []byte
	err := r.Scan(&p.App, &p.Name, &p.Kind, &p.Issuer, &p.ClientID, &sealed, &p.Scopes,
		&p.AuthURL, &p.TokenURL, &p.UserURL, &p.EmailsURL, &p.CreatedAt, &p.UpdatedAt)
	p.HasClientSecret = sealed != nil
	return p, sealed, err
}

// OAuthProvider returns an app's provider with its client secret opened;
// ErrNotFound if there is none.
func (s *Store) OAuthProvider(ctx context.Context, app, name string) (OAuthProvider, error) {
	p, sealed, err := scanOAuthProvider(s.db.QueryRow(ctx,
		`SELECT `+oauthColumns+` FROM oauth_providers WHERE app_id = $1 AND name = $2`, app, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return OAuthProvider{}, ErrNotFound
	}
	if err != nil {
		return OAuthProvider{}, fmt.Errorf("store: oauth provider: %w", err)
	}
	if sealed != nil {
		if p.ClientSecret, err = s.sealer.Open(sealed, oauthSecretContext(app, name)); err != nil {
			return OAuthProvider{}, fmt.Errorf("store: oauth provider %s.%s: client secret: %w", app, name, err)
		}
	}
	return p, nil
}

// ListOAuthProviders lists an app's providers by name, without their
// secrets; ErrNotFound if the app does not exist.
func (s *Store) ListOAuthProviders(ctx context.Context, app string) ([]OAuthProvider, error) {
	var exists bool
	if err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM apps WHERE id = $1)`, app).Scan(&exists); err != nil {
		return nil, fmt.Errorf("store: list oauth providers: %w", err)
	}
	if !exists {
		return nil, ErrNotFound
	}
	rows, err := s.db.Query(ctx, `SELECT `+oauthColumns+` FROM oauth_providers WHERE app_id = $1 ORDER BY name`, app)
	if err != nil {
		return nil, fmt.Errorf("store: list oauth providers: %w", err)
	}
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OAuthProvider, error) {
		p, _, err := scanOAuthProvider(r)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list oauth providers: %w", err)
	}
	return ps, nil
}

// DeleteOAuthProvider removes an app's provider; ErrNotFound if there is
// none.
func (s *Store) DeleteOAuthProvider(ctx context.Context, app, name string) error {
	tag, err := s.db.Exec(ctx, `DELETE FROM oauth_providers WHERE app_id = $1 AND name = $2`, app, name)
	if err != nil {
		return fmt.Errorf("store: delete oauth provider: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}
