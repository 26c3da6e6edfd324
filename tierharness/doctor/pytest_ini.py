"""The project's pytest configuration as pytest would find it (pytest.ini, pyproject.toml,
tox.ini, setup.cfg), read without starting pytest, and the plugin's options it sets, read
through the plugin's own declarations (`tierharness.plugin.options`)."""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tierharness.config import find_project_root, read_toml
from tierharness.errors import HarnessError
from tierharness.plugin.options import HarnessOptions, Option

__all__ = ["IniOptions", "project_root", "read_ini_options"]


@dataclass(frozen=True)
class IniOptions:
    """The pytest ini options of the project, and the file they came from (None: none found)."""

    source: Path | None
    values: Mapping[str, str | list[str]]

    def get(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is None:
            return None
        return " ".join(value) if isinstance(value, list) else str(value)

    def lines(self, key: str) -> list[str]:
        """A multi-line option (an ini continuation, or a TOML list) as its non-blank lines."""
        value = self.values.get(key)
        if value is None:
            return []
        raw = value if isinstance(value, list) else str(value).splitlines()
        return [line.strip() for line in raw if line.strip() and not line.strip().startswith("#")]

    @property
    def where(self) -> str:
        return str(self.source) if self.source else "the pytest configuration"

    @property
    def provision_early(self) -> bool:
        return self.options.provision.strip().lower() == "early"

    @property
    def options(self) -> HarnessOptions:
        """The plugin's options as these keys set them (a doctor has no command line), read
        through the plugin's own declarations."""
        return HarnessOptions.read(lambda _option: None, self._value)

    def _value(self, option: Option) -> object:
        """What the plugin's `getini` would give: the declared default for a key not set."""
        if option.ini not in self.values:
            return option.default
        return self.values[option.ini] if option.type == "lines" else self.get(option.ini)


def _ini_section(path: Path, section: str) -> dict[str, str | list[str]] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise HarnessError(f"cannot read {path}: {exc}", checked=str(path), fix="fix the ini syntax") from exc
    if not parser.has_section(section):
        return None
    return dict(parser.items(section))


def read_ini_options(root: Path) -> IniOptions:
    """The options pytest would read in `root`, from the first file it would pick: pytest.ini,
    .pytest.ini, pyproject.toml ([tool.pytest.ini_options] or [tool.pytest]), tox.ini
    ([pytest]), setup.cfg ([tool:pytest])."""
    for name in ("pytest.ini", ".pytest.ini"):
        if (root / name).is_file():  # pytest takes these even without a [pytest] section
            return IniOptions(root / name, _ini_section(root / name, "pytest") or {})
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        table = read_toml(pyproject).get("tool", {}).get("pytest", {})
        ini = table.get("ini_options")
        native = {k: v for k, v in table.items() if k != "ini_options"}
        chosen = ini if isinstance(ini, dict) else native
        if chosen:
            values = {k: v if isinstance(v, list) else str(v) for k, v in chosen.items()}
            return IniOptions(pyproject, values)
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        if (root / name).is_file():
            found = _ini_section(root / name, section)
            if found is not None:
                return IniOptions(root / name, found)
    return IniOptions(None, {})


def project_root(start: Path | None = None) -> Path:
    """The project doctor checks: HARNESS_PROJECT_ROOT, else the nearest folder, from `start`
    (the cwd) upwards, whose pyproject.toml has [tool.harness] or that holds the pytest
    configuration pytest would pick. The plugin needs no [tool.harness] (its defaults do), so
    a project configured in [tool.pytest.ini_options] alone is a project here too."""
    return find_project_root(
        start,
        or_else=lambda folder: read_ini_options(folder).source is not None,
        looked_for="{here} and its parents for a pyproject.toml with [tool.harness] or a pytest "
        "configuration (pytest.ini, .pytest.ini, [tool.pytest.ini_options] in pyproject.toml, "
        "[pytest] in tox.ini, [tool:pytest] in setup.cfg)",
    )
