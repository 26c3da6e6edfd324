"""`docker buildx build` and `docker load`, with errors that name the failing stage and step.

BuildKit's plain progress output is the only stable interface to *which* step
failed; this module is the one place that reads it.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tierharness.config import environment
from tierharness.engine.client import builder_args, cli_env, docker_cli, require_buildx
from tierharness.engine.naming import tag_image
from tierharness.engine.retention import recording_build_cache
from tierharness.errors import BuildError
from tierharness.process import run
from tierharness.scratch import scratch_folder

__all__ = ["BuildResult", "buildx_build", "docker_load", "failed_step", "redact_values"]

# "#12 [deps 3/5] RUN pip install ..."  -- the step header BuildKit prints.
# A single-stage build prints "[2/3]" without the stage name; internal steps have no position.
_STEP = re.compile(r"^#(?P<id>\d+) \[(?:(?P<stage>[^\]]*?) ?)(?P<pos>\d+/\d+)?\] (?P<instr>.*)$")
_STEP_ERROR = re.compile(r"^#(?P<id>\d+) ERROR: (?P<msg>.*)$")
TAIL_LINES = 40


@dataclass(frozen=True)
class BuildResult:
    log: str
    oci_tar: Path | None = None
    image: str | None = None  # the loaded image's id, where the harness named it (`_named`)

    def steps(self) -> list[tuple[str, str, bool]]:
        """(stage, instruction, cached) of every Dockerfile step, in log order."""
        return _steps(self.log)

    @property
    def cached_steps(self) -> int:
        return sum(1 for _, _, cached in self.steps() if cached)

    @property
    def total_steps(self) -> int:
        return len(self.steps())


def _failed(log: str) -> tuple[str, tuple[str, str, str]] | None:
    """(BuildKit's step id, (stage, step, instruction)) of the step reported as failed."""
    headers: dict[str, tuple[str, str, str]] = {}
    for line in log.splitlines():
        header = _STEP.match(line)
        if header:
            headers[header["id"]] = (header["stage"] or "(unnamed)", header["pos"] or "", header["instr"])
            continue
        error = _STEP_ERROR.match(line)
        if error and error["id"] in headers:
            return error["id"], headers[error["id"]]
    return None


def failed_step(log: str) -> tuple[str, str, str] | None:
    """(stage, step, instruction) of the step BuildKit reported as failed, if any."""
    found = _failed(log)
    return found[1] if found else None


def _steps(log: str) -> list[tuple[str, str, bool]]:
    order: list[str] = []
    info: dict[str, tuple[str, str]] = {}
    cached: set[str] = set()
    for line in log.splitlines():
        header = _STEP.match(line)
        if header and header["pos"]:
            if header["id"] not in info:
                order.append(header["id"])
            info[header["id"]] = (header["stage"] or "(unnamed)", header["instr"])
        elif line.startswith("#") and line.endswith(" CACHED"):
            cached.add(line.split()[0][1:])
    return [(*info[i], i in cached) for i in order]


def _output_tail(log: str, step_id: str | None) -> str:
    lines = log.splitlines()
    if step_id:
        own = [ln for ln in lines if ln.startswith(f"#{step_id} ")]
        if own:
            lines = own
    return "\n".join(lines[-TAIL_LINES:])


def buildx_build(
    context: Path,
    *,
    dockerfile: Path | None = None,
    target: str | None = None,
    tags: Sequence[str] = (),
    build_args: Mapping[str, str] | None = None,
    oci_dest: Path | None = None,
    oci_name: str | None = None,
    load: bool = False,
    no_cache: bool = False,
    source_date_epoch: int | None = None,
    labels: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    cache_from: str | None = None,
    cache_to: str | None = None,
    unshared: bool = False,
) -> BuildResult:
    """Build with BuildKit. With `oci_dest`, export a reproducible OCI tarball
    (timestamps rewritten to SOURCE_DATE_EPOCH, no provenance attestation). `cache_from` /
    `cache_to` are BuildKit cache locations (`type=gha`, `type=registry,ref=...`), for CI
    runners that do not keep a local cache. HARNESS_BUILDER names the buildx builder; by
    default, the builder of the engine DOCKER_HOST (or the docker context) names. With
    `unshared`, no step runs as part of another build (see `_unshared_args`)."""
    require_buildx()
    # Loaded by the engine's own builder, the image is named after the build (`_named`).
    tag_after = list(tags) if load and oci_dest is None and _own_builder(env or {}) else []
    cmd = [docker_cli(), "buildx", "build", *builder_args(), "--progress=plain", "--provenance=false"]
    cmd += _input_args(dockerfile, target, [] if tag_after else tags, build_args, labels)
    cmd += _cache_args(no_cache=no_cache, unshared=unshared, cache_from=cache_from, cache_to=cache_to)
    run_env = dict(env or {})
    if source_date_epoch is not None:
        # Both: the env var drives BuildKit's own timestamp handling, the build arg
        # makes it visible to RUN steps (for .pyc and the like).
        run_env["SOURCE_DATE_EPOCH"] = str(source_date_epoch)
        cmd += ["--build-arg", f"SOURCE_DATE_EPOCH={source_date_epoch}"]
    cmd += _output_args(oci_dest, oci_name, load=load)
    cmd.append(str(context))
    # Build arguments may carry values that must not reach a log or a report: the
    # command shown in an error names them, never their values.
    shown = [_redact(arg) for arg in cmd]
    with _recording(run_env, clean=no_cache), scratch_folder("build") as scratch:
        if tag_after:
            cmd[-1:-1] = shown[-1:-1] = ["--metadata-file", str(scratch / "metadata.json")]
        proc = run(
            cmd,
            what="image build",
            fix=f"fix the failing step; full log: {log_path}" if log_path else "fix the failing step",
            env=cli_env(run_env),
            error=BuildError,
            shown=shown,
            log_path=log_path,
            explain=lambda log: redact_values(_explain_failure(log), (build_args or {}).values()),
        )
        image = _named(scratch / "metadata.json", tag_after) if tag_after else None
    return BuildResult(log=proc.stdout + proc.stderr, oci_tar=oci_dest, image=image)


def _own_builder(env: Mapping[str, str]) -> bool:
    """Whether a build with `env` runs on the harness's engine's own builder: not on a named
    builder (HARNESS_BUILDER), nor on another engine (DOCKER_HOST in `env`)."""
    return not environment().builder and "DOCKER_HOST" not in env


def _recording(env: Mapping[str, str], *, clean: bool) -> contextlib.AbstractContextManager[None]:
    """What the build makes is the harness's to prune (`clean --prune`), when it is on the
    engine's own builder: a named builder keeps its cache where the engine's listing does not
    show it, and is its owner's to prune; another engine is a second engine, gone with its
    command."""
    return recording_build_cache(clean=clean) if _own_builder(env) else contextlib.nullcontext()


def _named(metadata: Path, tags: Sequence[str]) -> str:
    """The id of the image a build loaded unnamed, from its metadata file, once named `tags`.

    The engine's own builder names a loaded image in its exporter, which fails with "already
    exists" when another build names the same tag at that moment: another user's run, another
    clone's (docker/buildx#3576). So it loads the image unnamed, and `tag_image` names it
    (engine/naming.py), by the image's id: the metadata's `containerimage.digest` (an iidfile
    holds the config's digest, which is not an id of the containerd image store). Another engine
    (DOCKER_HOST) is a second engine of one command, which no other run names images in.
    A named builder (HARNESS_BUILDER) loads through `docker load`, which races too, but only
    between different images: loads of one image at once never failed, and the harness's
    rootfs and project images are reproducible. Its naming is left to it: the image a named
    builder loads unnamed could not be checked here (no BuildKit image to run one offline)."""
    image = str(json.loads(metadata.read_text())["containerimage.digest"])
    for tag in tags:
        tag_image(image, tag)
    return image


def _input_args(
    dockerfile: Path | None,
    target: str | None,
    tags: Sequence[str],
    build_args: Mapping[str, str] | None,
    labels: Mapping[str, str] | None,
) -> list[str]:
    """What is built: the Dockerfile and its stage, the tags, build args and labels."""
    args: list[str] = []
    if dockerfile:
        args += ["--file", str(dockerfile)]
    if target:
        args += ["--target", target]
    for tag in tags:
        args += ["--tag", tag]
    for key, value in (build_args or {}).items():
        args += ["--build-arg", f"{key}={value}"]
    for key, value in (labels or {}).items():
        args += ["--label", f"{key}={value}"]
    return args


def _cache_args(*, no_cache: bool, unshared: bool, cache_from: str | None, cache_to: str | None) -> list[str]:
    """How the build uses BuildKit's cache, and others' steps (`_unshared_args`)."""
    args = ["--no-cache"] if no_cache else []
    if unshared:
        args += _unshared_args()
    if cache_from:
        args += ["--cache-from", cache_from]
    if cache_to:
        args += ["--cache-to", cache_to]
    return args


def _output_args(oci_dest: Path | None, oci_name: str | None, *, load: bool) -> list[str]:
    """Where the result goes: an OCI tarball (reproducible timestamps), the engine, or nowhere."""
    if oci_dest is not None:
        oci_dest.parent.mkdir(parents=True, exist_ok=True)
        output = f"type=oci,dest={oci_dest},rewrite-timestamp=true"
        if oci_name:
            output += f",name={oci_name}"
        return ["--output", output]
    if load:
        return ["--load"]
    # Build (and run its steps) for their effect only: no image to store.
    return ["--output", "type=cacheonly"]


def _unshared_args() -> list[str]:
    """Arguments that give this build's RUN steps keys no other build has.

    `--no-cache` only stops BuildKit looking results up in its cache. Steps of builds running at
    once on one BuildKit are one graph: a step with the same definition and inputs as a step
    another build has loaded runs once, and both builds get its result for as long as either
    holds it (moby/buildkit#42, #4674). Two `--no-cache` builds of `RUN date > /stamp` can then
    get the same file, and a reproducibility check would call that step reproducible.

    A host name is part of a RUN step's definition and of its cache key (only its address is
    left out of the key), and buildx sets it on every RUN (`--add-host`). A random name under
    `.invalid` (RFC 2606: never a real name) makes every RUN step, and everything built on one,
    this build's own. It reaches the image only as a line of the /etc/hosts that BuildKit
    mounts while a step runs, which no layer holds; the image config and history do not name it.
    Steps before the first RUN (FROM, COPY, ADD) can still be shared. A builder of its own
    (`--driver docker-container`) would isolate those too, but needs the BuildKit image, which
    an offline machine cannot pull."""
    return ["--add-host", f"build-{uuid.uuid4().hex}.invalid:127.0.0.1"]


def redact_values(text: str, values: Iterable[str]) -> str:
    """`text` with every build-arg value replaced: BuildKit prints a RUN step's build args in
    its header (`RUN |2 NAME=value ...`), and a failed step's lines end up in the error."""
    for value in sorted({v for v in values if len(v) >= 4}, key=len, reverse=True):
        text = text.replace(value, "...")
    return text


def _redact(arg: str) -> str:
    name, sep, _ = arg.partition("=")
    return f"{name}=..." if sep and name.isupper() else arg


def _explain_failure(log: str) -> str:
    found = _failed(log)
    step_id, step = found if found else (None, None)
    where = f"stage {step[0]!r}, step {step[1] or '?'}: {step[2]}" if step else "before any step ran"
    return f"at {where}\n--- last lines of its output ---\n{_output_tail(log, step_id)}"


def docker_load(oci_tar: Path, env: Mapping[str, str] | None = None) -> None:
    """Load `oci_tar` into the engine (`env` may name another one through DOCKER_HOST)."""
    run(
        [docker_cli(), "load", "--input", str(oci_tar)],
        env=cli_env(env),
        what=f"docker load of {oci_tar}",
        fix="the engine needs the containerd image store: rerun scripts/provision-docker.sh",
        error=BuildError,
    )
