"""Configuration is parsed in one place, into types, and a typo is an error naming it."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from tierharness import config
from tierharness.config import PERF_OPTIONS, Environment, PerfConfig, load_settings
from tierharness.errors import HarnessError

IMAGE = '[tool.harness.images.x]\nref = "x"\nlocal = "x"\nrecipe = "x"\nkind = "dockerfile"\n'


@pytest.mark.parametrize(
    ("toml", "where", "key"),
    [
        ("[tool.harness]\nstate_dir = 'x'\n", "tool.harness", "state_dir"),
        ("[tool.harness.build]\ndockerfiel = 'x'\n", "tool.harness.build", "dockerfiel"),
        ("[tool.harness.stack]\nports = 1\n", "tool.harness.stack", "ports"),
        ("[tool.harness.lock]\nfile = []\n", "tool.harness.lock", "file"),
        ("[tool.harness.perf]\nusers_ = 1\n", "tool.harness.perf", "users_"),
        (IMAGE + "recipie = 'y'\n", "tool.harness.images.x", "recipie"),
    ],
)
def test_every_table_refuses_unknown_keys_naming_key_and_table(
    tmp_path: Path, toml: str, where: str, key: str
) -> None:
    (tmp_path / "pyproject.toml").write_text(toml)
    with pytest.raises(HarnessError) as err:
        load_settings(tmp_path)
    assert f"unknown key(s) in [{where}]: {key}" in str(err.value)


def test_a_value_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.harness.stack]\nport = "8000"\n')
    with pytest.raises(HarnessError, match=r"\[tool.harness.stack\].port must be a int"):
        load_settings(tmp_path)


@pytest.mark.parametrize("keep", ["0", "-2", "true"])
def test_keep_images_below_one_is_refused(tmp_path: Path, keep: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.harness.build]\nkeep-images = {keep}\n")
    with pytest.raises(HarnessError, match=r"\[tool.harness.build\].keep-images must be 1 or more"):
        load_settings(tmp_path)


def test_tables_become_typed_settings(project_root: Path) -> None:
    settings = load_settings(project_root)
    assert settings.build.dockerfile == "Dockerfile.enterprise"
    assert settings.stack.port == 8000
    assert "DATABASE_URL" in settings.stack.env
    assert settings.perf.p95_ms == 100.0  # an int in TOML, a float here
    assert settings.lock.files[0] == "nox"
    assert settings.image_record == settings.build_dir / "image.json"
    assert settings.build.keep_images == 3
    assert Environment.read({"HARNESS_BUILD_CACHE_IDLE": "60"}).build_cache_idle == 60.0


def test_environment_is_read_when_asked_and_bad_numbers_name_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HARNESS_READY_TIMEOUT", "7")
    monkeypatch.setenv("HARNESS_IMAGE_POSTGRES_REF", "postgres:17")
    env = Environment.read()
    assert env.ready_timeout == 7.0
    assert env.image_refs == {"postgres": "postgres:17"}
    monkeypatch.setenv("HARNESS_ENGINE_TIMEOUT", "soon")
    with pytest.raises(HarnessError, match="HARNESS_ENGINE_TIMEOUT='soon' is not a number"):
        Environment.read()


def test_perf_defaults_come_from_the_one_declaration() -> None:
    defaults = PerfConfig()
    for option in PERF_OPTIONS:
        assert getattr(defaults, option.attr) == option.default


def test_a_project_without_an_images_table_gets_the_harness_own_images(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.harness]\n")
    images = load_settings(tmp_path).images
    assert set(images) == {"base", "postgres", "redis", "registry", "engine", "haproxy", "prometheus"}
    for name in ("base", "postgres", "redis", "registry", "engine", "haproxy", "prometheus"):
        assert (images[name].recipe / "Dockerfile").is_file()  # the recipe ships in the package
    assert images["postgres"].depends_on == "base"


def test_a_project_table_overrides_the_default_image_key_by_key(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.harness.images.postgres]\nref = "postgres:16"\n')
    postgres = load_settings(tmp_path).image("postgres")
    assert postgres.ref == "postgres:16"
    assert postgres.local == "harness/postgres:17"  # the rest stays the harness's


def test_a_folder_without_pyproject_gets_defaults_only_when_allowed(tmp_path: Path) -> None:
    assert load_settings(tmp_path, required=False).perf.p95_ms > 0
    with pytest.raises(HarnessError, match="cannot read"):
        load_settings(tmp_path)


def test_deploy_table_refuses_unknown_keys_and_wrong_types(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.harness.deploy]\nsettle-secs = 3\n")
    with pytest.raises(HarnessError, match=r"unknown key\(s\) in \[tool.harness.deploy\]: settle-secs"):
        load_settings(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.harness.deploy]\nproxy-port = "8080"\n')
    with pytest.raises(HarnessError, match="proxy-port must be a int"):
        load_settings(tmp_path)
    table = "[tool.harness.deploy]\nsettle-seconds = 3\nproxy-port = 18080\n"
    (tmp_path / "pyproject.toml").write_text(table)
    deploy = load_settings(tmp_path).deploy
    assert (deploy.settle_seconds, deploy.proxy_port) == (3.0, 18080)


def test_each_public_name_is_its_submodules_own() -> None:
    """The package imports its submodules when a name is asked for: each name in `__all__` is
    there, the very object the submodule that defines it holds, and nothing else is."""
    submodules = [
        importlib.import_module(f"tierharness.config.{m.name}") for m in pkgutil.iter_modules(config.__path__)
    ]
    for name in config.__all__:
        homes = [m for m in submodules if getattr(m, name, None) is not None and name in m.__all__]
        assert len(homes) == 1, f"{name}: defined in {[m.__name__ for m in homes]}"
        assert getattr(config, name) is getattr(homes[0], name)
    with pytest.raises(AttributeError):
        _ = config.no_such_setting


def test_the_environment_alone_imports_no_other_submodule() -> None:
    """What the pytest plugin imports in every process of a run: the sections and settings are
    parsed only when something asks for them (a fresh interpreter: this one has them all)."""
    probe = (
        "import sys\n"
        "from tierharness.config import environment, withhold_secrets\n"
        "print(sorted(m for m in sys.modules if m.startswith('tierharness.config.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['tierharness.config.variables']"
