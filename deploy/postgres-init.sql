-- Run once by the postgres image when deploy/compose.yaml creates its volume.
-- Each service migrates its own database (each keeps its schema version in
-- <service>_schema_version, so they could share one; separate databases keep
-- backups and permissions per service). auth's is the image's POSTGRES_DB.
CREATE DATABASE roomcast_history OWNER roomcast;
CREATE DATABASE roomcast_webhooks OWNER roomcast;
CREATE DATABASE roomcast_metrics OWNER roomcast;
