"""packages.lock: reading, and what apt's simulation and dpkg's status say."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierharness.errors import LockfileError
from tierharness.imaging.debs import (
    Deb,
    check_installed,
    dpkg_installed,
    read_lock,
    simulated_installs,
    write_lock,
)

HASH = "a" * 64


def test_a_lock_round_trips_sorted_and_deduplicated(tmp_path: Path) -> None:
    debs = [Deb("zlib1g", "1:1.3", "amd64", HASH), Deb("adduser", "3.152", "all", HASH)]
    path = write_lock(tmp_path / "packages.lock", [*debs, debs[0]], image="demo")
    assert read_lock(path) == sorted(debs)
    assert path.read_text().startswith("# Debian packages of the `demo` image")


@pytest.mark.parametrize("line", ["adduser 3.152 all", "adduser 3.152 all not-a-hash", "adduser"])
def test_a_lock_line_without_a_hash_is_refused_naming_the_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "packages.lock"
    path.write_text(f"# header\nzlib1g 1:1.3 amd64 {HASH}\n{line}\n")
    with pytest.raises(LockfileError, match=r"packages.lock:3: expected `name version arch sha256`"):
        read_lock(path)


def test_apt_simulation_lines_become_entries() -> None:
    out = (
        "NOTE: This is only a simulation!\n"
        "Inst adduser (3.152 Debian:13.8/stable [all])\n"
        "Inst redis-tools (5:8.0.2-3+deb13u3 Debian:13.8/stable [amd64])\n"
        "Inst libc6 [2.41-11] (2.41-12 Debian:13.8/stable [amd64])\n"
        "Conf adduser (3.152 Debian:13.8/stable [all])\n"
    )
    assert simulated_installs(out) == [
        Deb("adduser", "3.152", "all"),
        Deb("libc6", "2.41-12", "amd64"),
        Deb("redis-tools", "5:8.0.2-3+deb13u3", "amd64"),
    ]


def test_dpkg_status_lists_only_installed_packages() -> None:
    status = (
        "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n"
        "Package: b\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 2\n"
    )
    assert dpkg_installed(status) == [Deb("a", "1", "amd64")]


def test_an_image_holding_other_versions_than_locked_is_refused_naming_them() -> None:
    locked = [Deb("a", "1", "amd64", HASH), Deb("b", "2", "amd64", HASH)]
    installed = [Deb("a", "1", "amd64"), Deb("b", "3", "amd64"), Deb("c", "1", "all")]
    with pytest.raises(LockfileError) as err:
        check_installed(locked, installed, Path("packages.lock"), exact=True)
    assert "missing b 2 (amd64)" in str(err.value)
    assert "unlocked b 3 (amd64)" in str(err.value)
    assert "unlocked c 1 (all)" in str(err.value)
    check_installed(locked[:1], installed, Path("packages.lock"), exact=False)  # extras allowed
