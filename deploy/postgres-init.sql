-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d/).
-- Temporal's auto-setup creates its own databases (temporal, temporal_visibility);
-- Cairn's contacts, automations and runs index live in their own database.
CREATE DATABASE cairn;
