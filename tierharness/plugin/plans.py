"""What a worker starts (`WorkerPlan`), from the session's options and the rootdir's
`[tool.harness]`: its images made available, its environment mapping's templates. Everything
here takes the options and the rootdir, not pytest's config: it is the layer below the hooks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tierharness.config import environment
from tierharness.errors import HarnessError
from tierharness.plugin.options import HarnessOptions

if TYPE_CHECKING:
    from tierharness.config import Settings
    from tierharness.runtime.plan import WorkerPlan

__all__ = ["image_for", "mapping_plan", "settings_of", "state_dir", "worker_plan"]


def settings_of(rootdir: Path) -> Settings:
    """The rootdir's [tool.harness] (the defaults where it has none)."""
    from tierharness.config import load_settings  # noqa: PLC0415  lazy: plugin start-up time (every process reads state_dir; only provisioning reads the settings)

    return load_settings(rootdir, required=False)


def state_dir(options: HarnessOptions, rootdir: Path) -> Path:
    """--harness-state-dir, else HARNESS_STATE_DIR, else the ini's harness_state_dir."""
    explicit = (options.state_dir if options.state_dir_given else None) or environment().state_dir
    return rootdir / (explicit or options.state_dir or ".harness")


def mapping_plan(options: HarnessOptions, rootdir: Path) -> WorkerPlan:
    """A plan with the worker's mapping (its `templates()`) and no images: what the guard and
    the placeholders need, without resolving or building an image, nor importing the docker
    SDK (runtime.plan, not runtime.worker: the controller that runs the guard starts nothing)."""
    from tierharness.runtime.plan import WorkerPlan  # noqa: PLC0415  lazy: plugin start-up time

    return WorkerPlan(
        rootdir=rootdir,
        state_dir=state_dir(options, rootdir),
        postgres_image="",
        redis_image="" if "redis" in options.service_names else None,
        env_templates={**settings_of(rootdir).test_env, **_env_lines(options)},
    )


def worker_plan(options: HarnessOptions, rootdir: Path) -> WorkerPlan:
    """What this worker should start, from the settings; images made available first."""
    from tierharness.runtime.plan import WorkerPlan  # noqa: PLC0415  lazy: plugin start-up time

    services = options.service_names
    unknown = services - {"postgres", "redis"}
    if unknown or "postgres" not in services:
        raise HarnessError(
            f"harness_services = {options.services!r} is not a set of services it can start",
            checked="--harness-services / ini harness_services",
            fix='use "postgres,redis" or "postgres"',
        )
    settings = settings_of(rootdir)
    extra = _env_lines(options)
    return WorkerPlan(
        rootdir=rootdir,
        state_dir=state_dir(options, rootdir),
        postgres_image=image_for(options, settings, "postgres"),
        redis_image=image_for(options, settings, "redis") if "redis" in services else None,
        migrate=options.migrate,
        seed=options.seed,
        env_templates={**settings.test_env, **extra},
        keep_tables=options.keep_tables,
        reset=options.reset,
        reuse=options.reuse,
        migrate_once=options.migrate_once,
        network=options.network,
    )


def _env_lines(options: HarnessOptions) -> dict[str, str]:
    """harness_env: one VAR=template a line."""
    extra: dict[str, str] = {}
    for line in (ln.strip() for ln in (options.env or "").splitlines() if ln.strip()):
        name, sep, template = line.partition("=")
        if not sep or not name.strip().isidentifier():
            raise HarnessError(
                f"harness_env line {line!r} is not VAR=template",
                checked="--harness-env / ini harness_env",
                fix="write one VARIABLE={postgres.host}-style line per variable",
            )
        extra[name.strip()] = template.strip()
    return extra


def image_for(options: HarnessOptions, settings: Settings, role: str) -> str:
    """The image for a worker's `role`: the setting, made available (local, else pulled), or
    else the harness's own logical image (local, pulled, or built offline)."""
    from tierharness.imaging.resolution import (  # noqa: PLC0415  lazy: plugin start-up time (docker)
        ensure_image,
        resolve_images,
    )

    explicit = options.postgres_image if role == "postgres" else options.redis_image
    if explicit:
        ensure_image(explicit, option=f"--harness-{role}-image (ini harness_{role}_image)")
        return explicit
    (image,) = resolve_images(settings, [role], log=lambda _m: None)
    return image.ref
