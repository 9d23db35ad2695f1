-- Apps and their API keys. A key's secret is stored twice: SHA-256 for
-- authenticating the key (comparison only) and AES-256-GCM under the master
-- key, because gateways need the secret itself to verify HS256 tokens.

-- +goose Up
CREATE TABLE apps (
    id         text PRIMARY KEY,
    name       text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Every change to api_keys takes the next value, under an advisory lock, so
-- that max(version) only grows in commit order: gateways poll with it as
-- an ETag and can never miss a change.
CREATE SEQUENCE api_key_versions;

CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    app_id        text NOT NULL REFERENCES apps (id),
    name          text NOT NULL DEFAULT '',
    caps          jsonb NOT NULL,
    secret_hash   bytea NOT NULL,
    secret_sealed bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    version       bigint NOT NULL
);
CREATE INDEX api_keys_app_id ON api_keys (app_id, created_at);
CREATE INDEX api_keys_version ON api_keys (version);

-- +goose Down
DROP TABLE api_keys;
DROP SEQUENCE api_key_versions;
DROP TABLE apps;
