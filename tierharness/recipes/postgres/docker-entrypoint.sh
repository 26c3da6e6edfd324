#!/bin/sh
# Applies the official image's environment contract to the pre-initialised cluster, then runs
# the server in the foreground.
#
# The marker names the role and database the cluster holds for its container, with a digest
# of the credentials applied (never the password itself). When they are not this
# container's, the cluster takes them over in one single-user session: a fresh cluster holds
# only `postgres` and the database made at build time; a cluster committed from another
# container (the harness's migrated images) holds that container's role and migrated
# database, which are renamed, and the role given this container's password.
set -eu

case "${1:-}" in -*) set -- postgres "$@" ;; esac
[ "${1:-}" = postgres ] || exec "$@"

user=${POSTGRES_USER:-postgres}
password=${POSTGRES_PASSWORD:-}
db=${POSTGRES_DB:-$user}
method=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
marker="$PGDATA/.credentials-applied"
applied=$(printf '%s\n%s\n%s\n%s' "$user" "$db" "$method" "$password" | sha256sum | cut -d' ' -f1)

if [ "$(sed -n 3p "$marker" 2>/dev/null)" != "$applied" ]; then
    if [ -z "$password" ] && [ "$method" != trust ]; then
        echo "error: POSTGRES_PASSWORD is not set." >&2
        echo "  set it (-e POSTGRES_PASSWORD=...) or allow passwordless access with POSTGRES_HOST_AUTH_METHOD=trust" >&2
        exit 1
    fi
    held_user=$(sed -n 1p "$marker" 2>/dev/null || true)
    held_db=$(sed -n 2p "$marker" 2>/dev/null || true)
    held_user=${held_user:-postgres}
    held_db=${held_db:-postgres}
    ident() { printf '"%s"' "$(printf %s "$1" | sed 's/"/""/g')"; }
    literal() { printf "'%s'" "$(printf %s "$1" | sed "s/'/''/g")"; }
    # `postgres` is the session's own role in single-user mode: it can be given a password,
    # never renamed.
    if [ "$user" = "$held_user" ] || [ "$user" = postgres ]; then
        role_sql=""
    elif [ "$held_user" = postgres ]; then
        role_sql="CREATE ROLE $(ident "$user") WITH SUPERUSER LOGIN"
    else
        role_sql="ALTER ROLE $(ident "$held_user") RENAME TO $(ident "$user")"
    fi
    login_sql="ALTER ROLE $(ident "$user") WITH PASSWORD $(literal "$password")"
    [ -n "$password" ] || login_sql="ALTER ROLE $(ident "$user") WITH PASSWORD NULL"
    if [ "$db" = "$held_db" ] || [ "$db" = postgres ]; then
        db_sql=""
    elif [ "$held_db" != postgres ]; then
        # Renaming costs a catalog update; creating one copies a template (~200 ms).
        db_sql="ALTER DATABASE $(ident "$held_db") RENAME TO $(ident "$db")
ALTER DATABASE $(ident "$db") OWNER TO $(ident "$user")"
    else
        db_sql="CREATE DATABASE $(ident "$db") OWNER $(ident "$user")"
    fi
    if [ "$method" = trust ]; then
        sed -i 's/scram-sha-256$/trust/' "$PGDATA/pg_hba.conf"
    fi
    # Single-user mode: each line is one statement in its own transaction, so
    # CREATE DATABASE is allowed, and no client can connect before we are done.
    printf '%s\n%s\n%s\n' "$role_sql" "$login_sql" "$db_sql" | postgres --single -D "$PGDATA" -c fsync=off postgres >/dev/null
    printf '%s\n%s\n%s\n' "$user" "$db" "$applied" > "$marker"
fi
exec "$@"
