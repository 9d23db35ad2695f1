-- Live connections by the gateway that holds them, so that the connections
-- of a gateway that died (SIGKILL, lost host: it never sends their
-- connection.closed) can be taken off usage_live when its lease runs out.

-- +goose Up
CREATE TABLE usage_live_nodes (
    app         text   NOT NULL,
    room        text   NOT NULL,
    node        text   NOT NULL,
    connections bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (node, app, room)
);

-- Gateways already swept: a late event of theirs (queued before the crash,
-- handled after the sweep) must not take the same connection off twice.
CREATE TABLE usage_dead_nodes (
    node text        PRIMARY KEY,
    at   timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE usage_dead_nodes;
DROP TABLE usage_live_nodes;
