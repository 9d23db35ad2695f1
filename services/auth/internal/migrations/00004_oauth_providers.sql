-- OAuth 2.0 / OpenID Connect sign-in providers, per app (docs/users-api.md).
-- kind 'oidc' needs an issuer (endpoints and keys come from its discovery
-- document); kind 'github' is plain OAuth2 with no ID token, so its
-- endpoints are stored (empty: GitHub's own). The client secret is sealed
-- with the master key (context "oauth-client-secret:<app>.<name>"); NULL
-- for a public client that relies on PKCE alone.

-- +goose Up
CREATE TABLE oauth_providers (
    app_id               text NOT NULL REFERENCES apps (id),
    name                 text NOT NULL,
    kind                 text NOT NULL CHECK (kind IN ('oidc', 'github')),
    issuer               text NOT NULL DEFAULT '',
    client_id            text NOT NULL,
    client_secret_sealed bytea,
    scopes               text[] NOT NULL DEFAULT '{}',
    auth_url             text NOT NULL DEFAULT '',
    token_url            text NOT NULL DEFAULT '',
    user_url             text NOT NULL DEFAULT '',
    emails_url           text NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, name)
);

-- +goose Down
DROP TABLE oauth_providers;
