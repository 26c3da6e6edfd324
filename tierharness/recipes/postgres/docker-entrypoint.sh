#!/bin/sh
# Applies the official image's environment contract to the pre-initialised cluster,
# once per container, then runs the server in the foreground.
set -eu

case "${1:-}" in -*) set -- postgres "$@" ;; esac
[ "${1:-}" = postgres ] || exec "$@"

marker="$PGDATA/.credentials-applied"
if [ ! -e "$marker" ]; then
    user=${POSTGRES_USER:-postgres}
    password=${POSTGRES_PASSWORD:-}
    db=${POSTGRES_DB:-$user}
    method=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
    if [ -z "$password" ] && [ "$method" != trust ]; then
        echo "error: POSTGRES_PASSWORD is not set." >&2
        echo "  set it (-e POSTGRES_PASSWORD=...) or allow passwordless access with POSTGRES_HOST_AUTH_METHOD=trust" >&2
        exit 1
    fi
    ident() { printf '"%s"' "$(printf %s "$1" | sed 's/"/""/g')"; }
    literal() { printf "'%s'" "$(printf %s "$1" | sed "s/'/''/g")"; }
    if [ "$user" = postgres ]; then
        role_sql="ALTER ROLE postgres WITH PASSWORD $(literal "$password")"
    else
        role_sql="CREATE ROLE $(ident "$user") WITH SUPERUSER LOGIN PASSWORD $(literal "$password")"
    fi
    db_sql=""
    if [ "$db" != postgres ] && [ -e "$PGDATA/.prepared-database" ]; then
        # Made at build time: renaming it costs a catalog update, creating one copies a template.
        db_sql="ALTER DATABASE harness_prepared RENAME TO $(ident "$db")
ALTER DATABASE $(ident "$db") OWNER TO $(ident "$user")"
        rm -f "$PGDATA/.prepared-database"
    elif [ "$db" != postgres ]; then
        db_sql="CREATE DATABASE $(ident "$db") OWNER $(ident "$user")"
    fi
    if [ "$method" = trust ]; then
        sed -i 's/scram-sha-256$/trust/' "$PGDATA/pg_hba.conf"
    fi
    # Single-user mode: each line is one statement in its own transaction, so
    # CREATE DATABASE is allowed, and no client can connect before we are done.
    printf '%s\n%s\n' "$role_sql" "$db_sql" | postgres --single -D "$PGDATA" -c fsync=off postgres >/dev/null
    touch "$marker"
fi
exec "$@"
