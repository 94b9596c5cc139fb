#!/bin/sh
# First start on an empty volume: create the cluster (superuser DB_USER, password DB_PASSWORD), the database
# DB_NAME and its tables. Every start: run PostgreSQL in the foreground (SIGINT from 'docker stop' = fast shutdown).
set -eu
: "${DB_USER:?}" "${DB_NAME:?}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${DB_PASSWORD:?DB_PASSWORD is empty: start the stack with 'dockyard compose up'}"
    pwfile=$(mktemp)
    printf '%s\n' "$DB_PASSWORD" > "$pwfile"
    # Local socket (only processes in this container): trust; TCP (the compose network): password only.
    initdb --pgdata="$PGDATA" --username="$DB_USER" --pwfile="$pwfile" --encoding=UTF8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses=''" --wait --silent start
    createdb --username="$DB_USER" "$DB_NAME"
    psql --quiet --no-psqlrc -v ON_ERROR_STOP=1 --username="$DB_USER" --dbname="$DB_NAME" -f /opt/store/schema.sql
    pg_ctl --pgdata="$PGDATA" --mode=fast --wait --silent stop
    echo "store: created database $DB_NAME"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
