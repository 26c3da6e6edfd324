"""The plugin's options: declared once, read the same by the plugin and by `harness doctor`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierharness.doctor import read_ini_options
from tierharness.plugin.options import OPTIONS, HarnessOptions, Option, option
from tierharness.plugin.plans import state_dir
from tierharness.runtime.envguard import IGNORE_OPTION


def _read(ini: dict[str, object], command_line: dict[str, str] | None = None) -> HarnessOptions:
    given = command_line or {}
    return HarnessOptions.read(lambda o: given.get(o.name), lambda o: ini.get(o.ini, o.default))


def test_every_option_is_a_flag_an_ini_key_and_a_field() -> None:
    fields = set(HarnessOptions.__dataclass_fields__)
    for o in OPTIONS:
        assert o.flag == f"--harness-{o.name}"
        assert o.ini == "harness_" + o.name.replace("-", "_")
        assert o.attr in fields
    assert option("env-ignore").ini == IGNORE_OPTION  # what the guard and the doctor read


def test_the_declared_defaults_apply_when_nothing_is_set() -> None:
    options = _read({})
    assert (options.provision, options.reset, options.reset_scope, options.network) == (
        "lazy",
        "deletion",
        "function",
        "auto",
    )
    assert options.service_names == {"postgres", "redis"}
    assert options.keep_tables == ("alembic_version", "django_migrations", "schema_migrations")
    assert (options.reaper, options.reuse, options.autoclean) == (True, False, False)
    assert options.migrate is None


def test_an_empty_ini_value_reads_as_unset_not_as_the_default() -> None:
    options = _read({"harness_keep_tables": "", "harness_reaper": "", "harness_services": ""})
    assert options.keep_tables == ()
    assert options.reaper is False
    assert options.service_names == set()


def test_the_command_line_beats_the_ini_and_the_environment_for_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_STATE_DIR", "from-env")
    assert state_dir(_read({"harness_state_dir": "from-ini"}), tmp_path) == tmp_path / "from-env"
    given = _read({"harness_state_dir": "from-ini"}, {"state-dir": "from-flag"})
    assert state_dir(given, tmp_path) == tmp_path / "from-flag"
    monkeypatch.delenv("HARNESS_STATE_DIR")
    assert state_dir(_read({"harness_state_dir": "from-ini"}), tmp_path) == tmp_path / "from-ini"


def test_the_doctor_reads_the_ini_through_the_same_declarations(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nharness_migrate = alembic upgrade head\nharness_network = bridge\n"
        "harness_env_ignore =\n    DB_POOL_SIZE\n",
        encoding="utf-8",
    )
    options = read_ini_options(tmp_path).options
    assert options.migrate == "alembic upgrade head"
    assert options.network == "bridge"
    assert options.provision == "lazy"  # not set: the declared default, as the plugin's getini
    assert "DB_POOL_SIZE" in str(options.env_ignore)


def test_a_switch_takes_no_value_on_the_command_line() -> None:
    switches = [o.name for o in OPTIONS if o.switch]
    assert switches == ["reuse", "keep-failed"]
    assert all(isinstance(o, Option) and o.type == "bool" for o in OPTIONS if o.switch)
