-- The service's Ed25519 token-signing keys. The private key is sealed with
-- the master key; the public key is published in the JWKS until retire_at.
-- The active key is the newest one without retire_at.

-- +goose Up
CREATE TABLE signing_keys (
    id             text PRIMARY KEY,
    public_key     bytea NOT NULL,
    private_sealed bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    retire_at      timestamptz
);
CREATE INDEX signing_keys_created_at ON signing_keys (created_at);

-- +goose Down
DROP TABLE signing_keys;
