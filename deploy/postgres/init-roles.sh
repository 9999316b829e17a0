#!/bin/sh
# Least-privilege roles of the LimiQuantix database (README: database roles), run once by the
# postgres image's entrypoint when it creates the cluster (/docker-entrypoint-initdb.d):
#
#   lq_owner  runs the migrations (the migrate service) and owns the tables and the database
#   lq_app    what the control-plane replicas connect as: owns nothing; after every migration
#             run lq_owner grants it SELECT and INSERT on the audit tables (no UPDATE, DELETE,
#             TRUNCATE; not the owner, so it cannot disable their triggers) and what it needs on
#             the others
#
# POSTGRES_USER (limiquantix) stays the superuser, for the operator only. The passwords come from
# LQ_DB_OWNER_PASSWORD and LQ_DB_APP_PASSWORD (deploy/.env). A cluster made before this script
# existed: run the same statements by hand (README: database roles).
set -eu
: "${LQ_DB_OWNER_PASSWORD:?set it in deploy/.env}"
: "${LQ_DB_APP_PASSWORD:?set it in deploy/.env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner_pw="$LQ_DB_OWNER_PASSWORD" -v app_pw="$LQ_DB_APP_PASSWORD" -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE lq_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_pw';
CREATE ROLE lq_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_pw';
ALTER DATABASE :"db" OWNER TO lq_owner;
-- PostgreSQL 15+: the public schema belongs to the database's owner; make it so explicitly.
ALTER SCHEMA public OWNER TO lq_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
