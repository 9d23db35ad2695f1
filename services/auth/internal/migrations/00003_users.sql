-- End-user accounts (docs/users-api.md): an app's user policy, its users,
-- their linked OAuth identities, one-time email codes, sessions (refresh
-- token families) and TOTP recovery codes. Secrets are never stored in
-- clear: passwords as argon2id PHC strings, codes and tokens as SHA-256,
-- the TOTP secret sealed with the master key (context "totp:<user id>").

-- +goose Up
-- An app's users get tokens only once the app has a policy. key_id is the
-- API key user tokens are issued for (their "akid"): revoking it cuts every
-- user of the app off. TTLs are in milliseconds.
CREATE TABLE user_policies (
    app_id         text PRIMARY KEY REFERENCES apps (id),
    key_id         text NOT NULL REFERENCES api_keys (id),
    caps           jsonb NOT NULL,
    signup         boolean NOT NULL DEFAULT false,
    anonymous      boolean NOT NULL DEFAULT false,
    access_ttl_ms  bigint NOT NULL,
    refresh_ttl_ms bigint NOT NULL,
    mfa_required   boolean NOT NULL DEFAULT false,
    redirect_uris  text[] NOT NULL DEFAULT '{}',
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- A user id is "u" + 20 base32 characters (100 random bits), unique across
-- apps. email is NULL for anonymous users; pending_email (with its
-- pending_password_hash) is the address an anonymous user is upgrading to,
-- until the code mailed there is verified.
CREATE TABLE users (
    id                    text PRIMARY KEY,
    app_id                text NOT NULL REFERENCES apps (id),
    email                 text,
    password_hash         text,
    email_verified        boolean NOT NULL DEFAULT false,
    anonymous             boolean NOT NULL DEFAULT false,
    pending_email         text,
    pending_password_hash text,
    blocked_at            timestamptz,
    totp_sealed           bytea,
    totp_confirmed_at     timestamptz,
    totp_last_step        bigint NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
-- Emails are unique per app whatever their case.
CREATE UNIQUE INDEX users_app_email ON users (app_id, lower(email)) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX users_app_pending_email ON users (app_id, lower(pending_email)) WHERE pending_email IS NOT NULL;
CREATE INDEX users_app_id ON users (app_id, id);

-- An OAuth/OIDC identity (provider, subject) belongs to one user.
CREATE TABLE user_identities (
    app_id     text NOT NULL REFERENCES apps (id),
    provider   text NOT NULL,
    subject    text NOT NULL,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, provider, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);

-- One live code per user and purpose: a new one replaces the old.
-- attempts counts wrong tries; at the limit the code is void.
CREATE TABLE user_codes (
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('verify', 'signin', 'reset')),
    code_hash  bytea NOT NULL,
    expires_at timestamptz NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, purpose)
);

-- A session is a refresh token family: its id stays, its refresh token
-- rotates. refresh_hash is the SHA-256 of the current refresh token.
CREATE TABLE user_sessions (
    id                 text PRIMARY KEY,
    app_id             text NOT NULL,
    user_id            text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_hash       bytea NOT NULL,
    refresh_expires_at timestamptz NOT NULL,
    user_agent         text NOT NULL DEFAULT '',
    ip                 text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_used_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at         timestamptz
);
CREATE UNIQUE INDEX user_sessions_refresh ON user_sessions (refresh_hash);
CREATE INDEX user_sessions_user ON user_sessions (user_id, created_at);

-- Retired refresh tokens of each family: presenting one again is reuse,
-- which revokes the family.
CREATE TABLE user_refresh_retired (
    refresh_hash bytea PRIMARY KEY,
    session_id   text NOT NULL REFERENCES user_sessions (id) ON DELETE CASCADE,
    retired_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_refresh_retired_session ON user_refresh_retired (session_id);

-- The access tokens minted for a session (by their jti), so a bearer
-- request knows its session and a revoked session's tokens stop working
-- at the auth service at once (gateways accept them until they expire).
CREATE TABLE user_access_tokens (
    jti        text PRIMARY KEY,
    session_id text NOT NULL REFERENCES user_sessions (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL
);
CREATE INDEX user_access_tokens_session ON user_access_tokens (session_id, expires_at);

-- TOTP recovery codes, SHA-256 of the normalised code; each works once.
CREATE TABLE user_recovery_codes (
    user_id   text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

-- +goose Down
DROP TABLE user_recovery_codes;
DROP TABLE user_access_tokens;
DROP TABLE user_refresh_retired;
DROP TABLE user_sessions;
DROP TABLE user_codes;
DROP TABLE user_identities;
DROP TABLE users;
DROP TABLE user_policies;
