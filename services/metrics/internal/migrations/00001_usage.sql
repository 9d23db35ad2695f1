-- +goose Up
-- Counters by the minute the event happened (its gateway's clock):
-- connections opened (room = '') or joins (a room), messages and bytes.
CREATE TABLE usage_counts (
    app         text        NOT NULL,
    room        text        NOT NULL, -- '' is the app as a whole
    minute      timestamptz NOT NULL,
    connections bigint      NOT NULL DEFAULT 0,
    messages    bigint      NOT NULL DEFAULT 0,
    bytes       bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (app, room, minute)
);

-- Gauges by the minute the service applied a change: the highest and the
-- last value of connections and presence members seen in that minute.
CREATE TABLE usage_gauges (
    app                 text        NOT NULL,
    room                text        NOT NULL,
    minute              timestamptz NOT NULL,
    connections_peak    bigint      NOT NULL DEFAULT 0,
    connections_current bigint      NOT NULL DEFAULT 0,
    presence_peak       bigint      NOT NULL DEFAULT 0,
    presence_current    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (app, room, minute)
);

-- The live values the gauges are taken from.
CREATE TABLE usage_live (
    app         text   NOT NULL,
    room        text   NOT NULL,
    connections bigint NOT NULL DEFAULT 0,
    presence    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (app, room)
);

-- Events already counted: a task delivered again counts nothing.
CREATE TABLE usage_processed (
    id text        PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_processed_at ON usage_processed (at);

-- +goose Down
DROP TABLE usage_processed;
DROP TABLE usage_live;
DROP TABLE usage_gauges;
DROP TABLE usage_counts;
