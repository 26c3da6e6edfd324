"""A project's settings: its `[tool.harness]` table, found and loaded (`load_settings`), its
sections and logical images parsed, the environment's overrides applied."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierharness.config.logical_images import LogicalImage, image_specs, images_table
from tierharness.config.sections import (
    BuildConfig,
    DeployConfig,
    LockConfig,
    PerfConfig,
    SecurityConfig,
    StackConfig,
    SupplyConfig,
)
from tierharness.config.tables import known_table, read_toml, strings, templates, typed
from tierharness.config.variables import environment
from tierharness.errors import HarnessError

__all__ = ["Settings", "find_project_root", "load_settings"]


@dataclass(frozen=True)
class Settings:
    root: Path
    state_dir: Path
    build_dir: Path
    images: Mapping[str, LogicalImage]
    lock: LockConfig
    build: BuildConfig
    stack: StackConfig
    perf: PerfConfig
    deploy: DeployConfig = field(default_factory=DeployConfig)
    test_env: Mapping[str, str] = field(default_factory=dict)  # [tool.harness.test-env] templates
    security: SecurityConfig = field(default_factory=SecurityConfig)
    supply: SupplyConfig = field(default_factory=SupplyConfig)

    @property
    def repository(self) -> str:
        """The repository the image is published under in the registry."""
        return self.supply.repository or self.build.image

    @property
    def verify_before_run(self) -> bool:
        """Whether stacks run the image verified, by digest, from the registry."""
        return self.verification()[0]

    def verification(self) -> tuple[bool, str]:
        """(on, why): HARNESS_VERIFY, else [tool.harness.supply] verify. "auto" (the default) is
        on wherever the signing key pair is there (`key_files`), a sign that this machine
        publishes, off elsewhere. On by choice without the pair is an error: nothing could
        be verified, and running the image unverified is what was ruled out."""
        env = environment().verify
        chosen, source = (
            (self.supply.verify, "[tool.harness.supply] verify") if env is None else (env, "HARNESS_VERIFY")
        )
        missing = [str(p) for p in self.key_files if not p.is_file()]
        if chosen is False:
            return False, f"verify-before-run is off ({source})"
        if chosen == "auto":
            if missing:
                return False, f"no signing key pair ({', '.join(missing)} missing), and {source} is auto"
            return True, f"the signing key pair is in {self.key_dir}, and {source} is auto"
        if missing:
            raise HarnessError(
                f"verify-before-run is on ({source}), but there is no key pair to verify with: "
                f"{', '.join(missing)} missing",
                checked=f"{source}, then the key files in {self.key_dir} "
                "(HARNESS_KEY_DIR, [tool.harness.supply] key-dir)",
                fix="make the pair and publish the image (`python -m tierharness keys`, `nox -s publish`), "
                'point HARNESS_KEY_DIR at the pair, or set verify = "auto" (unverified where there is none)',
            )
        return True, f"{source} is on"

    @property
    def key_files(self) -> tuple[Path, Path]:
        """The signing key pair: the private key (cosign.key) and the public one (cosign.pub)."""
        return self.key_dir / "cosign.key", self.key_dir / "cosign.pub"

    @property
    def key_dir(self) -> Path:
        """Where the signing key pair lives: outside the checkout unless configured there
        (and then refused by `harness keys`)."""
        env = environment()
        chosen = env.key_dir or self.supply.key_dir
        if chosen:
            return (self.root / Path(chosen).expanduser()).resolve()
        name = self.repository.replace("/", "-")
        return Path(env.config_home or Path.home() / ".config") / "harness" / "keys" / name

    @property
    def image_record(self) -> Path:
        """`build/image.json`: what the last build made (image, digest, inputs)."""
        return self.build_dir / "image.json"

    def image(self, name: str) -> LogicalImage:
        try:
            return self.images[name]
        except KeyError:
            raise HarnessError(
                f"no logical image named {name!r}",
                checked=f"[tool.harness.images] in {self.root / 'pyproject.toml'}",
                fix=f"use one of: {', '.join(sorted(self.images)) or '(none defined)'}",
            ) from None


_TOP_KEYS = (
    "state-dir", "build-dir", "images", "lock", "build", "stack", "perf", "deploy", "test-env", "security",
    "supply",
)  # fmt: skip


def find_project_root(
    start: Path | None = None,
    *,
    or_else: Callable[[Path], bool] | None = None,
    looked_for: str = "pyproject.toml with a [tool.harness] table in {here} and its parents",
) -> Path:
    """HARNESS_PROJECT_ROOT, else the nearest folder, from `start` (the cwd) upwards, whose
    pyproject.toml has `[tool.harness]` (or, given `or_else`, for which it says yes)."""
    explicit = environment().project_root
    if explicit:
        return Path(explicit).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and "[tool.harness" in candidate.read_text(encoding="utf-8"):
            return folder
        if or_else is not None and or_else(folder):
            return folder
    raise HarnessError(
        "no project configuration found",
        checked=looked_for.format(here=here),
        fix="run from inside the project, or set HARNESS_PROJECT_ROOT",
    )


def load_settings(root: Path | None = None, *, required: bool = True) -> Settings:
    """The settings of the project at `root` (found upwards from the cwd when None). With
    `required=False`, a folder without pyproject.toml gets the defaults."""
    root = root or find_project_root()
    path = root / "pyproject.toml"
    if not required and not path.is_file():
        data: dict[str, Any] = {}
    else:
        data = read_toml(path)
    env = environment()

    table = known_table(data.get("tool", {}).get("harness", {}), "tool.harness", _TOP_KEYS, path)
    lock = known_table(table.get("lock", {}), "tool.harness.lock", ("dir", "files"), path)
    return Settings(
        root=root,
        state_dir=root / (env.state_dir or typed(table, "state-dir", str, ".harness", "tool.harness")),
        build_dir=root / (env.build_dir or typed(table, "build-dir", str, "build", "tool.harness")),
        images=image_specs(root, path, images_table(table.get("images", {}), path), env),
        lock=LockConfig(
            dir=root / typed(lock, "dir", str, "requirements", "tool.harness.lock"),
            files=strings(lock, "files", (), "tool.harness.lock"),
        ),
        build=BuildConfig.parse(table.get("build", {}), path),
        stack=StackConfig.parse(table.get("stack", {}), path),
        perf=PerfConfig.parse(table.get("perf", {}), path),
        supply=SupplyConfig.parse(table.get("supply", {}), path),
        deploy=DeployConfig.parse(table.get("deploy", {}), path),
        test_env=templates(table.get("test-env", {}), "tool.harness.test-env", path),
        security=SecurityConfig.parse(table.get("security", {}), path),
    )
