package authapi

import (
	"time"

	"github.com/roomcast/roomcast/pkg/protocol"
)

// CodeOAuthFailed: an OAuth/OIDC sign-in failed — a bad, expired or
// replayed state or login code, a nonce mismatch, an ID token that does
// not verify, a code the provider refused. One answer for all, so a
// caller learns nothing about which check failed.
const CodeOAuthFailed protocol.Code = "oauth_failed"

// OAuth provider kinds (docs/users-api.md).
const (
	// OAuthKindOIDC is any OpenID Connect provider: endpoints and keys come
	// from the issuer's discovery document, the user from the ID token.
	OAuthKindOIDC = "oidc"
	// OAuthKindGitHub is GitHub-style OAuth2: no ID token, the user and
	// their emails come from two JSON endpoints.
	OAuthKindGitHub = "github"
)

// PutOAuthProvider is the body of PUT
// /admin/v1/apps/{app}/oauth-providers/{provider}. Issuer is for kind
// "oidc"; the four URLs are for kind "github" (empty: GitHub's own).
// An empty ClientSecret keeps the stored one (none for a new provider: a
// public client relying on PKCE alone). Empty Scopes take the kind's
// defaults ("openid email profile"; "read:user user:email"); "openid" is
// always requested from an OIDC provider.
type PutOAuthProvider struct {
	Kind         string   `json:"kind"`
	Issuer       string   `json:"issuer,omitempty"`
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
	AuthURL      string   `json:"auth_url,omitempty"`
	TokenURL     string   `json:"token_url,omitempty"`
	UserURL      string   `json:"user_url,omitempty"`
	EmailsURL    string   `json:"emails_url,omitempty"`
}

// OAuthProvider describes a provider as the admin API shows it: never
// its client secret, only whether it has one.
type OAuthProvider struct {
	App             string    `json:"app"`
	ID              string    `json:"id"`
	Kind            string    `json:"kind"`
	Issuer          string    `json:"issuer,omitempty"`
	ClientID        string    `json:"client_id"`
	HasClientSecret bool      `json:"has_client_secret"`
	Scopes          []string  `json:"scopes"`
	AuthURL         string    `json:"auth_url,omitempty"`
	TokenURL        string    `json:"token_url,omitempty"`
	UserURL         string    `json:"user_url,omitempty"`
	EmailsURL       string    `json:"emails_url,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	// CallbackURL is the redirect URI to register at the provider, when
	// the service knows its public URL (AUTH_PUBLIC_URL).
	CallbackURL string `json:"callback_url,omitempty"`
}

// OAuthProviders answers GET /admin/v1/apps/{app}/oauth-providers.
type OAuthProviders struct {
	Providers []OAuthProvider `json:"providers"`
}
