#!/usr/bin/env bash
# Provision a Docker engine able to build reproducible OCI images (BuildKit with
# rewrite-timestamp, containerd image store). Idempotent: safe to rerun, and a
# no-op on a host whose engine already qualifies.
#
# Debian 12's own docker.io (20.10) ships a BuildKit too old for reproducible
# output, so the engine comes from Debian 13 "trixie", added as a low-priority
# source so nothing else on the host is upgraded. The mirror is read from the
# machine's own apt configuration: no host name lives in this repository.
set -euo pipefail

MIN_ENGINE_MAJOR=26
MIN_BUILDX_MINOR=13            # buildx 0.13 gives rewrite-timestamp on the OCI exporter
LOG=${HARNESS_DOCKERD_LOG:-/var/log/harness-dockerd.log}
SOCK=/var/run/docker.sock
WAIT_SECONDS=${HARNESS_DOCKERD_WAIT:-60}
DAEMON_JSON=/etc/docker/daemon.json
# BuildKit keeps a build's history record (its logs, trace and provenance, in containerd's
# content store) until it is both beyond the newest 50 and 48 hours old. The harness's canary
# builds make hundreds a day, and containerd's garbage collector walks every one of them on
# each container removal, so every container of every tier cost more as they piled up.
# Kept: the newest 50, and any from the last hour.
HISTORY_MAX_AGE=1h
HISTORY_MAX_ENTRIES=50

say() { printf 'provision-docker: %s\n' "$*" >&2; }
die() {
    say "ERROR: $1"
    shift
    for line in "$@"; do say "  $line"; done
    exit 1
}

# The engine this script started itself records its pid here (dockerd's default pid file).
PIDFILE=/var/run/docker.pid

own_dockerd() {  # the pid of the dockerd that $PIDFILE names, if it runs
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]] && echo "$pid"
}

stop_own_daemon() {  # only the dockerd of $PIDFILE: other users' rootless engines are not ours
    local pid why=${1:-"is running but does not qualify"}
    pid=$(own_dockerd) || return 0
    say "dockerd ($pid) $why; restarting it with the new configuration"
    kill "$pid"
    for _ in $(seq 1 30); do [[ -d /proc/$pid ]] || break; sleep 1; done
}

configure_daemon() {  # FILE: dockerd's configuration, with what the harness needs; "changed" if rewritten
    # The containerd image store is what lets the OCI exporter's output be loaded as-is;
    # without it `docker load` of a rewritten-timestamp image fails. A build history bound
    # already there is the owner's, and stays.
    mkdir -p "$(dirname "$1")"
    python3 - "$1" "$HISTORY_MAX_AGE" "$HISTORY_MAX_ENTRIES" <<'PY'
import copy, json, pathlib, sys
path, max_age, max_entries = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
text = path.read_text() if path.exists() else ""
try:
    before = json.loads(text) if text.strip() else {}
    problem = None if isinstance(before, dict) else f"its top level is a JSON {type(before).__name__}"
    problem = problem or next((f'"{k}" is not an object' for k in ("features", "builder")
                               if not isinstance(before.get(k, {}), dict)), None)
except json.JSONDecodeError as exc:
    problem = f"it is not JSON ({exc})"
if problem:
    sys.exit(f"provision-docker: ERROR: {path} cannot take the engine's settings: {problem}\n"
             f"provision-docker:   checked: {path} as a JSON object whose features and builder are objects\n"
             "provision-docker:   fix: correct it (dockerd refuses what is not JSON too), then rerun; it was left as it was")
cfg = copy.deepcopy(before)
cfg.setdefault("features", {})["containerd-snapshotter"] = True
cfg.setdefault("builder", {}).setdefault("history", {"maxAge": max_age, "maxEntries": max_entries})
if cfg != before:
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    print("changed")
PY
}

# `provision-docker.sh stop-own-daemon [PIDFILE]` runs only that step, which start_daemon takes
# where no service manager runs the engine: a test checks it ends no dockerd but the pid file's.
if [[ ${1:-} == stop-own-daemon ]]; then
    PIDFILE=${2:-$PIDFILE}
    stop_own_daemon
    exit 0
fi
# `provision-docker.sh configure-daemon FILE` only edits FILE as it would dockerd's configuration.
if [[ ${1:-} == configure-daemon ]]; then
    [[ -n ${2:-} ]] || die "configure-daemon needs the file to edit" "fix: bash $0 configure-daemon FILE"
    configure_daemon "$2"
    exit 0
fi

engine_major() { docker version --format '{{.Server.Version}}' 2>/dev/null | cut -d. -f1; }
buildx_minor() { docker buildx version 2>/dev/null | sed -nE 's/.* v?0\.([0-9]+)\..*/\1/p'; }
uses_containerd_store() { docker info --format '{{json .DriverStatus}}' 2>/dev/null | grep -q 'io.containerd.snapshotter'; }

engine_qualifies() {
    local major minor
    major=$(engine_major || true)
    minor=$(buildx_minor || true)
    [[ -n $major && $major -ge $MIN_ENGINE_MAJOR ]] || return 1
    [[ -n $minor && $minor -ge $MIN_BUILDX_MINOR ]] || return 1
    uses_containerd_store
}

# mmdebstrap builds the `base` image offline (see tierharness/recipes/base); bookworm's own is
# fine. As a user other than root it runs in a user namespace, mapped through newuidmap (uidmap).
if ! command -v mmdebstrap >/dev/null || ! command -v newuidmap >/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
        say "installing mmdebstrap and uidmap (offline base image builds, as root or as a user)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap uidmap >/dev/null 2>&1 ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap uidmap >/dev/null; }
    else
        say "warning: mmdebstrap or newuidmap is missing and this is not root; offline base builds will fail"
    fi
fi

# --- the mirror, from the machine's own apt configuration --------------------
mirror_uri() {
    local f uri
    # A machine without a Debian source (an Ubuntu runner) is given one: the same setting the
    # harness reads for its offline images.
    if [[ -n ${HARNESS_DEBIAN_MIRROR:-} ]]; then echo "$HARNESS_DEBIAN_MIRROR"; return; fi
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -e $f ]] || continue
        # deb822: the URIs of the stanza whose Suites name bookworm (not -security)
        uri=$(awk '
            /^URIs:/   { u=$2 }
            /^Suites:/ { for (i=2;i<=NF;i++) if ($i=="bookworm" || $i=="trixie") s=1 }
            /^$/       { if (s && u) { print u; exit } s=0; u="" }
            END        { if (s && u) print u }' "$f")
        [[ -n $uri ]] && { echo "$uri"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -e $f ]] || continue
        uri=$(awk '$1=="deb" && ($3=="bookworm" || $3=="trixie") {print $2; exit}' "$f")
        [[ -n $uri ]] && { echo "$uri"; return; }
    done
}

add_trixie() {
    local mirror keyring
    [[ -e /etc/apt/sources.list.d/harness-trixie.sources ]] && return 0
    mirror=$(mirror_uri)
    [[ -n $mirror ]] || die "no Debian mirror found in the apt configuration" \
        "checked: /etc/apt/sources.list.d/*.sources and *.list, /etc/apt/sources.list for a bookworm entry" \
        "fix: set HARNESS_DEBIAN_MIRROR to a Debian mirror's URI, configure apt for Debian 12, or install Docker Engine >= $MIN_ENGINE_MAJOR with buildx >= 0.$MIN_BUILDX_MINOR (and cosign 2.5) yourself"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    if [[ ! -e $keyring ]]; then  # Ubuntu packages Debian's archive keys too
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debian-archive-keyring >/dev/null
    fi
    say "adding Debian trixie (pinned low) from the machine's mirror"
    cat > /etc/apt/sources.list.d/harness-trixie.sources <<SRC
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: $keyring
SRC
    cat > /etc/apt/preferences.d/harness-trixie <<PIN
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
}

# --- supply-chain tools: cosign 2.5 (signing, offline) comes from trixie only --------
# Needed by publish, verify-before-run and the deploy rehearsal, not by the test tiers: on a
# machine without a Debian mirror (Ubuntu, say) its absence is said, not fatal.
if ! command -v cosign >/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
        if [[ $(apt-cache policy cosign 2>/dev/null | awk '/Candidate:/ {print $2}') =~ ^2\.([5-9]|[1-9][0-9]) ]]; then
            say "installing cosign from the machine's own apt sources"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cosign >/dev/null
        elif (add_trixie); then
            say "installing cosign from trixie (image signing and attestations, offline)"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cosign/trixie >/dev/null
        else
            say "warning: cosign could not be installed (no Debian mirror); publish and verification will fail"
            say "  fix: install cosign >= 2.5 from its release packages, then rerun this script"
        fi
    else
        say "warning: cosign is missing and this is not root; publish and verification will fail"
    fi
fi
# diffoscope gives repro-check's report a deep diff of each changed file (bookworm's is fine).
if ! command -v diffoscope >/dev/null && [[ $(id -u) -eq 0 ]]; then
    say "installing diffoscope (deep diffs in repro-check reports)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends diffoscope >/dev/null 2>&1 ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends diffoscope >/dev/null; }
fi

install_engine() {
    add_trixie
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        docker.io/trixie containerd/trixie docker-buildx/trixie \
        iptables ca-certificates >/dev/null
}

start_daemon() {  # [WHY]: why a running dockerd of our own is restarted
    # Where the service manager runs the engine (a hosted runner, a workstation), it restarts it.
    if command -v systemctl >/dev/null && systemctl is-active --quiet docker 2>/dev/null; then
        say "restarting docker.service with the new configuration"
        systemctl restart docker
    else
        stop_own_daemon "${1:-}"
        rm -f "$PIDFILE"
        say "starting dockerd (log: $LOG)"
        # setsid: the daemon must outlive this script and the shell that ran it.
        setsid nohup dockerd --pidfile "$PIDFILE" >"$LOG" 2>&1 </dev/null &
    fi
    local i
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        if [[ -S $SOCK ]] && docker info >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    die "dockerd did not answer on $SOCK within ${WAIT_SECONDS}s" \
        "checked: docker info" "last lines of $LOG:" "$(tail -n 20 "$LOG" 2>/dev/null)"
}

have_engine_binaries() {
    command -v dockerd >/dev/null || return 1
    local v
    v=$(dockerd --version 2>/dev/null | sed -nE 's/.*version ([0-9]+)\..*/\1/p')
    [[ -n $v && $v -ge $MIN_ENGINE_MAJOR ]] || return 1
    [[ -n $(buildx_minor) && $(buildx_minor) -ge $MIN_BUILDX_MINOR ]]
}

apply_to_running() {  # daemon.json changed under an engine that qualifies: restarted only if ours and idle
    say "$DAEMON_JSON updated: build history bounded (kept: the newest $HISTORY_MAX_ENTRIES, and any from the last $HISTORY_MAX_AGE)"
    if command -v systemctl >/dev/null && systemctl is-active --quiet docker 2>/dev/null; then
        say "it takes effect when docker.service restarts (systemctl restart docker)"
    elif ! own_dockerd >/dev/null; then
        say "it takes effect when the engine restarts ($PIDFILE names no running dockerd: not started here)"
    elif [[ -n $(docker ps -q) ]]; then
        say "it takes effect when dockerd restarts: containers are running, so it was left running"
    else
        start_daemon "runs no container"
    fi
}

if engine_qualifies; then
    changed=""
    if [[ $(id -u) -eq 0 ]]; then changed=$(configure_daemon "$DAEMON_JSON"); fi
    if [[ -n $changed ]]; then
        apply_to_running
    else
        say "engine $(docker version --format '{{.Server.Version}}') with buildx $(docker buildx version | awk '{print $2}') and the containerd image store is already running: nothing to do"
    fi
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "installing and starting the engine needs root" \
    "checked: id -u = $(id -u)" "fix: rerun as root (sudo bash $0)"

have_engine_binaries || install_engine
configure_daemon "$DAEMON_JSON" >/dev/null
start_daemon
engine_qualifies || die "the engine started but does not qualify" \
    "checked: engine >= $MIN_ENGINE_MAJOR ($(engine_major || echo none)), buildx >= 0.$MIN_BUILDX_MINOR ($(buildx_minor || echo none)), containerd image store" \
    "fix: see $LOG and /etc/docker/daemon.json"
say "ready: engine $(docker version --format '{{.Server.Version}}'), $(docker buildx version | awk '{print $1, $2}')"
