#!/bin/sh
# The credentials arrive as files in a mounted folder (never as environment variables,
# which `docker inspect` shows); the bcrypt hash is made here and kept in memory-backed /tmp.
set -eu
secrets=/run/harness-registry
if [ -r "$secrets/password" ]; then
    htpasswd -iBc /tmp/htpasswd "$(cat "$secrets/user")" < "$secrets/password" 2>/dev/null
fi
exec "$@"
