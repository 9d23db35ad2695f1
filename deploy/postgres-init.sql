-- Run once by the postgres image when deploy/compose.yaml creates its volume.
-- Each service migrates its own database: auth, history and webhooks all
-- record their schema version in goose's default table, so they must not
-- share one. (auth's database is the image's POSTGRES_DB.)
CREATE DATABASE roomcast_history OWNER roomcast;
CREATE DATABASE roomcast_webhooks OWNER roomcast;
