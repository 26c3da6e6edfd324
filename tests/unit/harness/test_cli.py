from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tierharness.__main__ import build_parser, main
from tierharness.cli import handlers
from tierharness.config import RECIPES
from tierharness.config.variables import Environment
from tierharness.engine import retention
from tierharness.errors import HarnessError


@pytest.fixture
def project_copy(tmp_path: Path, project_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy2(project_root / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(project_root / "requirements", tmp_path / "requirements")
    monkeypatch.setenv("HARNESS_PROJECT_ROOT", str(tmp_path))
    return tmp_path


def test_lock_check_passes_on_the_committed_tree(
    project_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lock", "--check"]) == 0
    assert "ok    requirements/app.txt" in capsys.readouterr().out


def test_lock_check_fails_naming_the_stale_file(
    project_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = project_copy / "requirements" / "lint.in"
    source.write_text(source.read_text() + "black\n")
    assert main(["lock", "--check"]) == 1
    err = capsys.readouterr().err
    assert "STALE requirements/lint.txt: black is required by lint.in but not pinned" in err
    assert "nox -s lock" in err


def test_lock_check_fails_on_a_pin_without_hash(
    project_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = project_copy / "requirements" / "nox.txt"
    lines = lock.read_text().splitlines()
    first_pin = next(i for i, line in enumerate(lines) if line and line[0].isalpha())
    name_version = lines[first_pin].split(" ")[0]
    end = next(i for i in range(first_pin + 1, len(lines)) if not lines[i].strip().startswith("--hash"))
    lock.write_text("\n".join([*lines[:first_pin], name_version, *lines[end:]]) + "\n")
    assert main(["lock", "--check", "nox"]) == 1
    assert f"pins without a hash: {name_version}" in capsys.readouterr().err


def test_every_recipe_that_installs_debian_packages_has_a_lock_that_the_check_reads(
    project_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by what the recipes do, not by what the configuration says they do: an unlocked
    `apt-get install` is whatever the mirror holds on the day of the build."""
    installing = sorted(
        d.parent for d in RECIPES.glob("*/Dockerfile") if "apt-get install" in d.read_text(encoding="utf-8")
    )
    assert {r.name for r in installing} >= {"postgres", "redis", "haproxy", "prometheus"}
    assert main(["lock", "--check"]) == 0
    out = capsys.readouterr().out
    for recipe in installing:
        assert (recipe / "packages.lock").is_file(), recipe
        assert f"ok    {recipe / 'packages.lock'}" in out


def test_lock_check_fails_on_a_recipe_that_installs_debian_packages_without_a_lock(
    project_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = project_copy / "recipes" / "tool"
    recipe.mkdir(parents=True)
    (recipe / "Dockerfile").write_text("FROM harness/base:3.13-trixie\nRUN apt-get install -y curl\n")
    with (project_copy / "pyproject.toml").open("a") as pyproject:
        pyproject.write('\n[tool.harness.images.tool]\nref = "tool:1"\nlocal = "harness/tool:1"\n'
                        'recipe = "recipes/tool"\nkind = "dockerfile"\ndepends-on = "base"\n')  # fmt: skip
    assert main(["lock", "--check"]) == 1
    err = capsys.readouterr().err
    assert "STALE recipes/tool/packages.lock: missing, and the `tool` image installs Debian packages" in err
    assert "[tool.harness.images.tool] packages" in err
    assert "`nox -s lock -- --images tool`" in err


def test_errors_exit_2_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HARNESS_PROJECT_ROOT", str(tmp_path))
    (tmp_path / "pyproject.toml").write_text("[tool.harness\n")
    assert main(["lock", "--check"]) == 2
    assert "fix the TOML syntax" in capsys.readouterr().err


def test_cache_dir_names_the_machines_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HARNESS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert main(["cache-dir", "mypy"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "xdg" / "harness" / "mypy")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "mine"))
    assert main(["cache-dir"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "mine")


# The command line as it stood before its parser was built from one table: every command, in
# order, with its option strings and positionals. A change here is a change of the interface.
COMMANDS = {
    "images": ["--help", "--offline", "--quiet", "--rebuild", "-h", "names"],
    "lock": ["--check", "--help", "--images", "--upgrade", "-h", "names"],
    "build": ["--force", "--help", "--no-cache", "-h"],
    "repro-check": ["--help", "--independent", "--keep", "-h"],
    "dist": ["--check", "--help", "-h"],
    "diff": ["--help", "--report-dir", "-h", "first", "second"],
    "clean": ["--all-users", "--build-cache", "--help", "--keep-migrated", "--prune", "-h"],
    "connect": ["--help", "--redis", "--url", "-h", "test"],
    "cache-dir": ["--help", "-h", "name"],
    "shard": ["--help", "-h", "spec"],
    "merge-reports": ["--help", "-h"],
    "perf": [
        "--accept-knee",
        "--capacity",
        "--capacity-max-users",
        "--capacity-start-users",
        "--capacity-step-seconds",
        "--capacity-step-users",
        "--duration",
        "--help",
        "--knee-baseline",
        "--knee-tolerance",
        "--max-fail-ratio",
        "--min-requests",
        "--min-rps",
        "--p95-ms",
        "--spawn-rate",
        "--target-url",
        "--users",
        "-h",
    ],
    "keys": ["--force", "--help", "--if-missing", "-h"],
    "publish": ["--help", "--if-verifying", "-h"],
    "verify": ["--help", "-h"],
    "registry": ["--help", "-h"],
    "deploy": ["--candidate", "--expect-rollback", "--help", "-h"],
    "rotate-secrets": ["--help", "-h"],
    "doctor": ["--help", "-h"],
    "security": ["--help", "--image", "--strict-vulns", "-h"],
    "gates": ["--help", "-h"],
}


def test_the_commands_and_their_options_are_those_of_the_interface() -> None:
    (sub,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert [c.dest for c in sub._choices_actions] == list(COMMANDS)
    assert all(c.help for c in sub._choices_actions)
    options = {
        name: sorted(s for a in parser._actions for s in (a.option_strings or [a.dest]))
        for name, parser in sub.choices.items()
    }
    assert options == COMMANDS


def test_words_after_a_double_dash_go_to_the_command_that_takes_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["clean", "--", "-c", "select 1"])
    assert exit_.value.code == 2
    assert "`clean` takes no arguments after --" in capsys.readouterr().err
    args = build_parser().parse_args(["connect", "t::x", "--redis"])
    assert args.passthrough == []  # connect takes them (main fills them in)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_answers_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: tierharness {command}" in capsys.readouterr().out


def test_python_dash_m_tierharness_lists_every_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tierharness", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert all(name in done.stdout for name in COMMANDS)


def test_clean_prune_hands_the_build_cache_budget_on_in_bytes_and_says_what_it_left(
    project_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: dict[str, object] = {}

    def prune_build_cache(idle: float, *, keep_bytes: int, client: object) -> retention.CachePruned:
        asked.update(idle=idle, keep_bytes=keep_bytes)
        return retention.CachePruned(0, 0, held=3, held_size=5 * 2**20)

    monkeypatch.setattr(retention, "prune_build_cache", prune_build_cache)
    monkeypatch.setattr(retention, "prune_loopback_pulls", lambda client: ())
    monkeypatch.setattr(retention, "prune_old_builds", lambda image, keep, client: ())
    monkeypatch.setenv("HARNESS_BUILD_CACHE_KEEP", "1.5")
    monkeypatch.setenv("HARNESS_BUILD_CACHE_IDLE", "60")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "machine"))  # its stage caches, not yours
    stale = tmp_path / "machine" / "stage-cache" / "app" / "test"
    stale.mkdir(parents=True)
    os.utime(stale, (0, 0))

    assert handlers._prune(object()) == 0

    assert asked == {"idle": 60.0, "keep_bytes": 3 * 2**19}
    said = capsys.readouterr().out
    assert "left 3 such record(s) (5 MiB): within HARNESS_BUILD_CACHE_KEEP (2 MiB)" in said
    assert "1 stage cache(s) no build exported into for 60 s" in said
    assert not stale.exists()


@pytest.mark.parametrize("other", ["--prune", "--all-users"])
def test_clean_build_cache_with_a_flag_that_cleans_more_is_refused_before_the_engine(
    other: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # reached, it would fail otherwise
    assert main(["clean", "--build-cache", other]) == 2
    err = capsys.readouterr().err
    assert "--build-cache prunes this user's build cache and nothing else" in err
    assert "fix: run `clean --build-cache` alone, or `clean --prune`" in err


def test_a_build_cache_budget_that_is_no_number_says_what_it_should_be() -> None:
    with pytest.raises(HarnessError, match="HARNESS_BUILD_CACHE_KEEP='4GB' is not a number") as caught:
        Environment.read({"HARNESS_BUILD_CACHE_KEEP": "4GB"})
    assert caught.value.fix == "set HARNESS_BUILD_CACHE_KEEP to a number of MiB, or unset it (default 4096)"
