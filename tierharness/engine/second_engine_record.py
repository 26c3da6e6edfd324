"""A second engine's record (`<state dir>/engines/<id>/engine.json`), and what of it may be
acted on. The sweep and the watcher run as root and kill, unmount, delete and unlink what a
record names, while the state dir sits in a checkout others may be able to write. So a record
is only read from a file, and a folder up to the state dir, that belong to the user acting on
it and that nobody else can write; and only if all it names is what an engine of this harness
has: its own folder, `/run/harness-engine-<id>`, a bridge `hx<id>`, networks in 10.0.0.0/8.
Anything else and the record is refused, saying which file and what was wrong."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from tierharness.errors import HarnessError

__all__ = ["EngineKind", "EngineRecord", "RecordRefusedError", "load_record", "new_engine_folder"]

EngineKind = Literal["process", "container"]

ENGINE_ID = re.compile(r"[0-9a-f]{6}")
_RUN_ID = re.compile(r"engine-[0-9]{10}-[0-9a-f]{6}")  # new_run_id("engine-")
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
_OWN_RANGE = ipaddress.IPv4Network("10.0.0.0/8")  # where second_engine_network.free_subnet cuts networks from
_CHAINS = ("", "DOCKER-USER", "FORWARD")  # what second_engine_network chooses from
_FIX = (
    "remove the folder by hand once you know whose it is; keep the state dir (HARNESS_STATE_DIR) "
    "writable only by its owner (chmod go-w), and run the harness as the user who owns it"
)


@dataclass(frozen=True)
class EngineRecord:
    """What it takes to stop and remove an engine, even from another process."""

    id: str
    root: str  # data root and everything else of this engine, under the state dir
    run_dir: str  # exec root, pid file and socket: short paths (unix sockets allow ~107 bytes)
    bridge: str
    subnet: str
    owner_pid: int
    owner_start: str | None
    dockerd_pid: int = 0
    watcher_pid: int = 0
    watcher_start: str | None = None  # its start time: a dead watcher's pid may be reused
    tcp_port: int = 0  # with TLS: also listening on 127.0.0.1:tcp_port
    cert_path: str = ""
    pool: str = ""  # the /16 its own networks are cut from (the first engine's are elsewhere)
    forward_chain: str = ""  # where its containers' traffic to each other is accepted (iptables)
    kind: EngineKind = "process"
    container: str = ""  # the container kind: its container's id on the first engine
    run_id: str = ""  # the container kind: the run id its container and volume are labelled with
    dockerd_start: str | None = None  # its start time: only that process is ever signalled

    @property
    def host(self) -> str:
        """The engine's DOCKER_HOST."""
        if self.kind == "container":
            return f"tcp://127.0.0.1:{self.tcp_port}"
        return f"unix://{self.run_dir}/docker.sock"

    def save(self) -> None:
        # Atomically: its watcher reads it while the owner rewrites it, and a half-written file
        # read as "no record" would let the watcher leave with the engine still running.
        path = Path(self.root, "engine.json")
        partial = path.with_name(f".engine.json.{os.getpid()}")
        # 0600 whatever the umask: a record others can write is refused (load_record).
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(json.dumps(asdict(self), indent=2))
        os.replace(partial, path)


class RecordRefusedError(HarnessError):
    """A record that is not acted on: someone else could have written it, or it names what
    no engine of this harness has."""


def _refuse(path: Path, why: str) -> RecordRefusedError:
    return RecordRefusedError(
        f"the engine record {path} was not acted on: {why}",
        checked=f"owner (uid {os.geteuid()} expected) and mode of the file and its folders up to the "
        "state dir, and that the record names only its engine's own folder, run dir, bridge and networks",
        fix=_FIX,
    )


def _owner_problem(item: str | Path, st: os.stat_result) -> str | None:
    if stat.S_ISLNK(st.st_mode):
        return f"{item} is a symbolic link"
    if st.st_uid != os.geteuid():
        return f"{item} belongs to uid {st.st_uid}, not to uid {os.geteuid()}, who would act on it"
    if st.st_mode & 0o022:
        return f"{item} can be written by its group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _read_owned(path: Path, state: Path) -> str:
    """The file's text, if it and each folder up to `state` are the acting user's and nobody
    else can write them."""
    # The file is checked on what was opened (no symlink followed), not on a name that could
    # be swapped in between.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise _refuse(path, f"it could not be opened without following a link ({exc.strerror})") from None
    with os.fdopen(fd) as file:
        problem = _owner_problem(path, os.fstat(file.fileno()))
        if problem:
            raise _refuse(path, problem)
        text = file.read()
    for folder in (path.parent, path.parent.parent, state):
        problem = _owner_problem(folder, os.lstat(folder))
        if problem:
            raise _refuse(path, problem)
    return text


def _network_problem(name: str, value: str, prefixlen: int) -> str | None:
    try:
        net = ipaddress.IPv4Network(value)
    except ValueError:
        return f"{name} {value!r} is not an IPv4 network"
    if net.prefixlen != prefixlen or not net.subnet_of(_OWN_RANGE):
        return f"{name} {value} is not a /{prefixlen} in {_OWN_RANGE}, where the harness cuts them from"
    return None


def _content_problem(record: EngineRecord, engine_id: str, state: Path) -> str | None:
    """What in the record is not what an engine of this harness has, or None."""
    if record.id != engine_id:
        return f"its id {record.id!r} is not its folder's name {engine_id!r}"
    if record.root != str(state / "engines" / engine_id):
        return f"its root {record.root!r} is not its own folder {state / 'engines' / engine_id}"
    container = record.kind == "container"
    expected = (
        {"run_dir": "", "bridge": "", "subnet": "", "forward_chain": ""}
        if container
        else {"run_dir": f"/run/harness-engine-{engine_id}", "bridge": f"hx{engine_id}", "run_id": ""}
    )
    for field, value in expected.items():
        if getattr(record, field) != value:
            return f"its {field} {getattr(record, field)!r} is not {value!r}"
    if container and record.run_id and not _RUN_ID.fullmatch(record.run_id):
        return f"its run id {record.run_id!r} is not one the harness makes (engine-TIME-HEX)"
    if container and record.container and not _CONTAINER_ID.fullmatch(record.container):
        return f"its container {record.container!r} is not a container id"
    if record.forward_chain not in _CHAINS:
        return f"its iptables chain {record.forward_chain!r} is none of {', '.join(_CHAINS[1:])}"
    problem = None if container else _network_problem("its subnet", record.subnet, 24)
    return problem or (_network_problem("its pool", record.pool, 16) if record.pool else None)


def load_record(path: Path, state_dir: Path) -> EngineRecord:
    """The record at `<state_dir>/engines/<id>/engine.json`, if it may be acted on; else
    RecordRefusedError naming the file and what was wrong. FileNotFoundError when it is gone."""
    state = state_dir.resolve()
    engine_id = path.parent.name
    in_place = path.name == "engine.json" and path.parent.parent == state / "engines"
    if not in_place or not ENGINE_ID.fullmatch(engine_id):
        raise _refuse(path, f"it is not {state}/engines/<six hex digits>/engine.json")
    text = _read_owned(path, state)
    try:
        record = EngineRecord(**json.loads(text))
    except (ValueError, TypeError) as exc:
        raise _refuse(path, f"it is not a record of this harness ({exc})") from None
    problem = _content_problem(record, engine_id, state)
    if problem:
        raise _refuse(path, problem)
    return record


def new_engine_folder(state_dir: Path) -> tuple[str, Path]:
    """A new engine's id and folder (`<state>/engines/<id>`, 0700), in a state dir its records
    can be trusted in: else its own watcher and the next sweep would refuse them."""
    state = state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    problem = _owner_problem(state, os.lstat(state))
    if problem:
        raise HarnessError(
            f"the state dir {state} cannot hold a second engine's record: {problem}",
            checked="its owner and mode (what is in it is acted on as the user starting the engine)",
            fix=f"chmod go-w {state}, or point HARNESS_STATE_DIR at a folder of the user starting the engine",
        )
    (state / "engines").mkdir(mode=0o700, exist_ok=True)
    engine_id = secrets.token_hex(3)
    folder = state / "engines" / engine_id
    folder.mkdir(mode=0o700)
    return engine_id, folder
