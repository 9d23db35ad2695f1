-- +goose Up
CREATE TABLE webhook_endpoints (
    id          text PRIMARY KEY,
    app         text NOT NULL,
    url         text NOT NULL,
    description text NOT NULL DEFAULT '',
    types       text[] NOT NULL,
    headers     jsonb NOT NULL DEFAULT '{}',
    enabled     boolean NOT NULL DEFAULT true,
    batch_size  integer NOT NULL DEFAULT 1 CHECK (batch_size >= 1),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_app ON webhook_endpoints (app, created_at);

-- Signing secrets, sealed with WEBHOOKS_MASTER_KEY. Every secret without
-- expires_at, or expiring in the future, signs: a rotation keeps the old
-- one until the end of its overlap.
CREATE TABLE webhook_secrets (
    id          bigserial PRIMARY KEY,
    endpoint_id text NOT NULL REFERENCES webhook_endpoints ON DELETE CASCADE,
    sealed      bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz
);
CREATE INDEX webhook_secrets_endpoint ON webhook_secrets (endpoint_id);

-- One event's delivery to one endpoint: the outbox the dispatchers claim
-- from (lease_until), and the delivery log.
CREATE TABLE webhook_deliveries (
    id           bigserial PRIMARY KEY,
    endpoint_id  text NOT NULL REFERENCES webhook_endpoints ON DELETE CASCADE,
    event_id     text NOT NULL,
    event_type   text NOT NULL,
    body         bytea NOT NULL,
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- retries stop RETRY_HORIZON after this (reset by a replay)
    horizon_from timestamptz NOT NULL DEFAULT now(),
    next_at      timestamptz NOT NULL DEFAULT now(),
    lease_until  timestamptz NOT NULL DEFAULT '-infinity',
    last_error   text NOT NULL DEFAULT '',
    finished_at  timestamptz,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE webhook_attempts (
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries ON DELETE CASCADE,
    n           integer NOT NULL,
    at          timestamptz NOT NULL,
    status      integer NOT NULL,
    latency_ms  bigint NOT NULL,
    error       text NOT NULL DEFAULT '',
    response    text NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, n)
);

-- +goose Down
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_secrets;
DROP TABLE webhook_endpoints;
