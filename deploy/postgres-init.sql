-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d/), by psql
-- as the superuser. Temporal's databases (schemas set by the temporal-schema job) and Cairn's,
-- owned by a role of its own: Cairn never connects as the superuser.
-- The role's password comes from the container's CAIRN_DB_PASSWORD (psql's \getenv).
\set ON_ERROR_STOP on
\getenv cairn_password CAIRN_DB_PASSWORD
\if :{?cairn_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'CAIRN_DB_PASSWORD is not set on the postgresql service'; END $$;
\endif
CREATE DATABASE temporal;
CREATE DATABASE temporal_visibility;
CREATE ROLE cairn LOGIN PASSWORD :'cairn_password';
-- Owner: its public schema too (pg_database_owner, PostgreSQL 15+), so migrations can run.
CREATE DATABASE cairn OWNER cairn;
REVOKE ALL ON DATABASE cairn FROM PUBLIC;
