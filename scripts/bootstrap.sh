#!/usr/bin/env bash
# The first of the two commands on a fresh machine; the second is what it prints at the end:
#
#   bash scripts/bootstrap.sh
#   .venv/bin/nox -s tests
#
# 1. the Docker engine and the tools the sessions run (cosign, mmdebstrap, diffoscope), through
#    scripts/provision-docker.sh: as root, or through `sudo -n` for a user who has it (a hosted
#    runner); otherwise only checked; and Debian's chromium with its chromedriver, the browser
#    the report's test opens (build/report/index.html), the same way;
# 2. .venv, made by HARNESS_PYTHON (default python3), with nox installed from
#    requirements/nox.txt with --require-hashes. A stock Debian 12 or Ubuntu 24.04 Python
#    refuses `pip install` outside a venv (PEP 668): nox lives in the project's own venv,
#    and every nox session makes its venvs from that venv's interpreter.
#
# Idempotent: rerunning it reuses what is there and repairs what is not. nox's wheels are
# kept in the machine's cache, so the next bootstrap (a new clone, a CI run) installs them
# without the network; pip checks each against the lockfile's hashes either way. Settings:
#   HARNESS_PYTHON            interpreter for .venv (default python3; >= 3.11). A .venv
#                             made by another interpreter is recreated.
#   HARNESS_BOOTSTRAP_ENGINE  0 skips the Docker engine step (default 1).
#   HARNESS_BOOTSTRAP_VENV    0 skips .venv and nox (default 1): for root on a CI machine,
#                             which provisions the engine and the user first, and makes its
#                             own .venv later, beside that user's set-up.
#   HARNESS_BOOTSTRAP_BROWSER 0 skips the browser step (default 1): for a machine that never
#                             runs the test tiers (lint, the gates page).
#   HARNESS_CACHE_DIR         the machine's cache (default $XDG_CACHE_HOME/harness, or
#                             ~/.cache/harness), as for the harness itself (tierharness/config/variables.py).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${HARNESS_PYTHON:-python3}
ENGINE=${HARNESS_BOOTSTRAP_ENGINE:-1}
BROWSER=${HARNESS_BOOTSTRAP_BROWSER:-1}
MAKE_VENV=${HARNESS_BOOTSTRAP_VENV:-1}
VENV=.venv
NOX_LOCK=requirements/nox.txt
WHEELS=${HARNESS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/harness}/bootstrap-wheels
# The lockfile carries PyPI's hashes: the machine's own pip configuration (local indexes,
# find-links, constraints) is switched off for every pip run.
PIP_ENV=(env -u PIP_CONSTRAINT -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null)

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() {
    say "ERROR: $1"
    shift
    for line in "$@"; do say "  $line"; done
    exit 1
}
is_root() { [[ $(id -u) -eq 0 ]]; }
# A hosted runner's user is not root but may use sudo without a password: provisioning (and
# only provisioning) goes through it there.
can_sudo() { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }

# --- 1. the Docker engine ----------------------------------------------------
provision_engine() {
    case $ENGINE in
        0) say "skipping the Docker engine step (HARNESS_BOOTSTRAP_ENGINE=0)"; return ;;
        1) ;;
        *) die "HARNESS_BOOTSTRAP_ENGINE=$ENGINE is neither 0 nor 1" \
            "checked: the environment variable HARNESS_BOOTSTRAP_ENGINE" \
            "fix: set it to 0 (skip the engine step) or 1, or unset it (default 1)" ;;
    esac
    # As root it installs and starts what is missing; otherwise it only checks, exits 0
    # when the engine qualifies and fails (saying why) when it does not.
    if ! is_root && can_sudo; then
        say "provisioning through sudo (uid $(id -u) has passwordless sudo)"
        # sudo resets the environment: the one setting provisioning reads is passed on.
        sudo -n env ${HARNESS_DEBIAN_MIRROR:+HARNESS_DEBIAN_MIRROR="$HARNESS_DEBIAN_MIRROR"} \
            bash scripts/provision-docker.sh ||
            die "provisioning the Docker engine through sudo failed (see its lines above)" \
                "checked: sudo -n bash scripts/provision-docker.sh" \
                "fix: act on the error above, then rerun bash scripts/bootstrap.sh"
        return
    fi
    if bash scripts/provision-docker.sh; then return; fi
    if is_root; then
        die "provisioning the Docker engine failed (see its lines above)" \
            "checked: bash scripts/provision-docker.sh" \
            "fix: act on the error above, then rerun bash scripts/bootstrap.sh"
    fi
    die "no usable Docker engine (>= 26, buildx >= 0.13, containerd image store), and installing one needs root" \
        "checked: bash scripts/provision-docker.sh as uid $(id -u)" \
        "fix: sudo bash scripts/provision-docker.sh, then rerun bash scripts/bootstrap.sh;" \
        "     if the engine runs but this user cannot reach it, join the docker group (or set DOCKER_HOST);" \
        "     HARNESS_BOOTSTRAP_ENGINE=0 bash scripts/bootstrap.sh sets up nox without an engine"
}

# --- 1b. the browser the report's test opens ---------------------------------
# Debian's own chromium and the chromedriver built with it (one version, from the machine's
# apt sources, as mmdebstrap and diffoscope are): installed when missing, else left alone.
BROWSER_PACKAGES=(chromium chromium-driver)

has_browser() { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }
browser_candidate() { apt-cache policy chromium-driver 2>/dev/null | awk '/Candidate:/ {print $2}'; }

ensure_browser() {
    case $BROWSER in
        0) say "skipping the browser step (HARNESS_BOOTSTRAP_BROWSER=0)"; return ;;
        1) ;;
        *) die "HARNESS_BOOTSTRAP_BROWSER=$BROWSER is neither 0 nor 1" \
            "checked: the environment variable HARNESS_BOOTSTRAP_BROWSER" \
            "fix: set it to 0 (skip the browser step) or 1, or unset it (default 1)" ;;
    esac
    has_browser && return
    local as=()
    if ! is_root; then
        if ! can_sudo; then
            say "warning: chromium or chromedriver is missing and this is not root; the report's browser test will fail"
            say "  fix: sudo apt-get install ${BROWSER_PACKAGES[*]}, or rerun this script as root"
            return
        fi
        as=(sudo -n)
    fi
    command -v apt-get >/dev/null || die "chromium and chromedriver are missing, and there is no apt-get to install them" \
        "checked: command -v chromium chromedriver apt-get" \
        "fix: install Chromium and its matching chromedriver from your distribution, then rerun this script"
    local candidate
    candidate=$(browser_candidate)
    if [[ -z $candidate || $candidate == "(none)" ]]; then  # never updated, or not in the sources
        "${as[@]}" apt-get update -qq || true
        candidate=$(browser_candidate)
    fi
    if [[ -z $candidate || $candidate == "(none)" ]]; then
        # Ubuntu, for one, has them only as snaps: said, not fatal; the test then fails, saying so.
        say "warning: the apt sources have no chromium-driver; the report's browser test will fail"
        say "  fix: add a Debian source (HARNESS_DEBIAN_MIRROR, see scripts/provision-docker.sh) or install Chromium and its chromedriver yourself"
        return
    fi
    say "installing ${BROWSER_PACKAGES[*]} (the report's test in a headless browser)"
    local install=("${as[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${BROWSER_PACKAGES[@]}")
    "${install[@]}" >/dev/null 2>&1 || { "${as[@]}" apt-get update -qq && "${install[@]}" >/dev/null; } ||
        die "installing ${BROWSER_PACKAGES[*]} failed (see apt-get's lines above)" \
            "checked: apt-get install ${BROWSER_PACKAGES[*]}" \
            "fix: act on apt-get's error (apt-cache policy ${BROWSER_PACKAGES[*]}), then rerun this script"
    has_browser || die "chromium and chromedriver are still not on PATH after installing ${BROWSER_PACKAGES[*]}" \
        "checked: command -v chromium chromedriver" "fix: dpkg -L chromium-driver shows where it went; put it on PATH"
}

# --- 2. the interpreter and its venv module ----------------------------------
# "prefix version" of an interpreter; a venv reports its base interpreter's prefix.
identity() { "$1" -c 'import sys; print(sys.base_prefix, sys.version.split()[0])'; }

check_interpreter() {
    command -v "$PYTHON" >/dev/null || die "no Python interpreter '$PYTHON'" \
        "checked: command -v $PYTHON (HARNESS_PYTHON, default python3)" \
        "fix: install Python >= 3.11 (Debian/Ubuntu: apt-get install python3 python3-venv)," \
        "     or set HARNESS_PYTHON to one"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$PYTHON is Python $("$PYTHON" -c 'import sys; print(sys.version.split()[0])'); the harness needs >= 3.11" \
            "checked: $PYTHON -c 'import sys; print(sys.version)'" \
            "fix: set HARNESS_PYTHON to a Python 3.11 or newer"
}

has_venv_module() { "$PYTHON" -c 'import ensurepip, venv; ensurepip.version()' >/dev/null 2>&1; }

ensure_venv_module() {
    has_venv_module && return
    # Debian and Ubuntu ship ensurepip, which venv needs, in python3.X-venv.
    local pkg
    pkg="python$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
    if is_root && command -v apt-get >/dev/null; then
        say "$PYTHON cannot make a venv (no ensurepip): installing $pkg"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1 ||
            { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null; }
        has_venv_module && return
    fi
    die "$PYTHON cannot make a venv: its venv/ensurepip modules are missing" \
        "checked: $PYTHON -c 'import ensurepip, venv; ensurepip.version()'" \
        "fix: sudo apt-get install $pkg (Debian/Ubuntu: python3-venv for the default python3)," \
        "     or set HARNESS_PYTHON to an interpreter that has them"
}

# --- 3. .venv with nox -------------------------------------------------------
# The pip wheel the interpreter's ensurepip installs from: CPython's own folder, or Debian's
# and Ubuntu's /usr/share/python-wheels.
bundled_pip() {
    "$PYTHON" - <<'PY'
import ensurepip, pathlib, sys
for folder in (pathlib.Path(ensurepip.__file__).parent / "_bundled", pathlib.Path("/usr/share/python-wheels")):
    for wheel in sorted(folder.glob("pip-*.whl"), reverse=True):
        print(wheel)
        sys.exit(0)
sys.exit(1)
PY
}

make_venv() {
    if [[ -x $VENV/bin/python ]] && [[ $(identity "$VENV/bin/python" 2>/dev/null) == "$(identity "$PYTHON")" ]] &&
        "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        say "reusing $VENV ($(identity "$VENV/bin/python"))"
        return
    fi
    if [[ -e $VENV ]]; then
        say "recreating $VENV: it was not made by $PYTHON ($(identity "$PYTHON")) or is broken"
    fi
    local wheel
    # `venv` installs pip (and, before 3.12, setuptools) through ensurepip: 5 CPU-seconds.
    # pip installing itself from the same wheel, alone, takes half that.
    if wheel=$(bundled_pip 2>/dev/null); then
        { "$PYTHON" -m venv --clear --without-pip "$VENV" &&
            "${PIP_ENV[@]}" "$VENV/bin/python" "$wheel/pip" install --quiet --disable-pip-version-check --no-index "$wheel"; } ||
            die "making $VENV with $PYTHON failed (see above)" \
                "checked: $PYTHON -m venv --clear --without-pip $VENV, then pip installing itself from $wheel" \
                "fix: install the venv module for $PYTHON (Debian/Ubuntu: python3-venv), or set HARNESS_PYTHON"
        return
    fi
    "$PYTHON" -m venv --clear "$VENV" || die "$PYTHON -m venv $VENV failed (see above)" \
        "checked: $PYTHON -m venv --clear $VENV" \
        "fix: install the venv module for $PYTHON (Debian/Ubuntu: python3-venv), or set HARNESS_PYTHON"
}

install_nox() {
    say "installing nox into $VENV from $NOX_LOCK (--require-hashes)"
    local pip=("${PIP_ENV[@]}" "$VENV/bin/python" -m pip)
    local offline=(install --quiet --disable-pip-version-check --require-hashes --no-index --find-links "$WHEELS"
        -r "$NOX_LOCK")
    mkdir -p "$WHEELS"
    # First from the kept wheels, without the network; when one is missing (a first run, a
    # changed lockfile) or does not match its hash, pip fetches what it lacks, then again.
    if ! "${pip[@]}" "${offline[@]}" >/dev/null 2>&1; then
        say "fetching nox's wheels into $WHEELS"
        { "${pip[@]}" download --quiet --disable-pip-version-check --require-hashes --dest "$WHEELS" \
            -r "$NOX_LOCK" && "${pip[@]}" "${offline[@]}"; } ||
            die "installing nox from $NOX_LOCK failed (see pip's lines above)" \
                "checked: pip download --require-hashes -r $NOX_LOCK --dest $WHEELS, then pip install from there" \
                "fix: check that PyPI is reachable; a hash mismatch means $NOX_LOCK must be recompiled (nox -s lock)"
    fi
    "$VENV/bin/nox" --version >/dev/null 2>&1 || die "$VENV/bin/nox does not run" \
        "checked: $VENV/bin/nox --version" "fix: rm -rf $VENV and rerun bash scripts/bootstrap.sh"
}

# --- 4. the non-root user the tiers run as (HARNESS_BOOTSTRAP_USER, root only) -
ensure_user() {
    local name=${HARNESS_BOOTSTRAP_USER:-}
    [[ -n $name ]] || return 0
    is_root || die "HARNESS_BOOTSTRAP_USER=$name needs root (it makes a user)" \
        "checked: id -u = $(id -u)" "fix: unset it, or run the bootstrap as root"
    [[ $name =~ ^[a-z_][a-z0-9_-]*$ && $name != root ]] ||
        die "HARNESS_BOOTSTRAP_USER=$name is not a valid non-root user name" \
            "checked: the name against ^[a-z_][a-z0-9_-]*$, and not root" \
            "fix: set a plain user name such as harness-ci"
    getent group docker >/dev/null || die "there is no docker group to add $name to" \
        "checked: getent group docker" "fix: provision the engine first (HARNESS_BOOTSTRAP_ENGINE=1)"
    if ! id "$name" >/dev/null 2>&1; then
        say "making the user $name (in the docker group, not root)"
        useradd --create-home --groups docker --shell /bin/bash "$name"
    elif ! id -nG "$name" | tr ' ' '\n' | grep -qx docker; then
        say "adding $name to the docker group"
        usermod --append --groups docker "$name"
    fi
    # That user's python3 is the system's (/usr/bin/python3), not root's.
    local python
    python=$(runuser -u "$name" -- bash -lc 'command -v python3' 2>/dev/null || true)
    [[ -n $python ]] || die "the user $name has no python3 on its PATH" \
        "checked: runuser -u $name -- bash -lc 'command -v python3'" \
        "fix: apt-get install python3 python3-venv"
    if ! runuser -u "$name" -- "$python" -c 'import ensurepip, venv' >/dev/null 2>&1 && command -v apt-get >/dev/null; then
        local pkg
        pkg="python$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
        say "$python cannot make a venv: installing $pkg"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1 ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null; }
    fi
    say "user $name ready (uid $(id -u "$name"), groups $(id -nG "$name"))"
}

case $MAKE_VENV in
    0 | 1) ;;
    *) die "HARNESS_BOOTSTRAP_VENV=$MAKE_VENV is neither 0 nor 1" \
        "checked: the environment variable HARNESS_BOOTSTRAP_VENV" \
        "fix: set it to 0 (skip .venv and nox) or 1, or unset it (default 1)" ;;
esac
provision_engine
ensure_browser
ensure_user
if [[ $MAKE_VENV == 0 ]]; then
    say "skipping .venv and nox (HARNESS_BOOTSTRAP_VENV=0)"
    exit 0
fi
check_interpreter
ensure_venv_module
make_venv
install_nox
say "ready: $VENV (Python $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])'), nox $("$VENV/bin/nox" --version 2>&1))"
say "next, the test command:"
echo ".venv/bin/nox -s tests"
