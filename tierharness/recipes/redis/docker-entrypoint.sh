#!/bin/sh
# Like the official image: flags alone mean redis-server, and without a config
# file or a password, protected mode is off so other containers can connect.
set -eu
case "${1:-}" in -*) set -- redis-server "$@" ;; esac
if [ "${1:-}" = redis-server ]; then
    case " $* " in
        *" --requirepass "* | *.conf*) ;;
        *) set -- "$@" --protected-mode no ;;
    esac
    case " $* " in *" --bind "*) ;; *) set -- "$@" --bind 0.0.0.0 ;; esac
    # Ephemeral by default: a test cache must not write snapshots.
    case " $* " in *" --save "*) ;; *) set -- "$@" --save "" --appendonly no ;; esac
fi
exec "$@"
