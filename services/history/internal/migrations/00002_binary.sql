-- +goose Up
-- The message's binary mark (protocol.Message.Binary): its data is opaque
-- bytes published as such, not JSON text, even when the bytes happen to be
-- valid JSON. Rows archived before the mark are false: readers treat a
-- false row whose data is not UTF-8 JSON as binary (pkg/history). A
-- constant default makes this a catalog-only change, however large the
-- table.
ALTER TABLE history_messages ADD COLUMN is_binary boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE history_messages DROP COLUMN is_binary;
