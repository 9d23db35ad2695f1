-- +goose Up
-- One row per archived room message. The primary key is the room's log
-- position, so a batch inserted twice (a retried task) adds nothing, and
-- it is the index of per-room reads by offset: a page is one range scan.
CREATE TABLE history_messages (
    app        text        NOT NULL,
    room       text        NOT NULL,
    epoch      text        NOT NULL,
    msg_offset bigint      NOT NULL,
    ts         bigint      NOT NULL, -- unix milliseconds at the publishing gateway
    event      text        NOT NULL DEFAULT '',
    sender     text        NOT NULL DEFAULT '', -- publisher's client id ('' for backends)
    data       bytea       NOT NULL,
    expires_at timestamptz NOT NULL, -- ts + the app's retention when archived
    PRIMARY KEY (app, room, epoch, msg_offset)
);
-- Reads by time range within a room.
CREATE INDEX history_messages_room_ts ON history_messages (app, room, ts);
-- Retention deletes the oldest expired rows in bounded batches.
CREATE INDEX history_messages_expires ON history_messages (expires_at);

-- A room's epochs in the order they began, so that a room's history reads
-- oldest epoch first without scanning its messages. expires_at is a hint
-- (at least the newest message's); a row goes once no message of its epoch
-- is left.
CREATE TABLE history_epochs (
    app        text        NOT NULL,
    room       text        NOT NULL,
    epoch      text        NOT NULL,
    first_ts   bigint      NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (app, room, epoch)
);
CREATE INDEX history_epochs_expires ON history_epochs (expires_at);

-- +goose Down
DROP TABLE history_epochs;
DROP TABLE history_messages;
