"""Service logic that needs neither Postgres nor Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.api_gateway.app import ArticlePatch, slugify
from services.api_gateway.auth import identify
from services.api_gateway.migrations import available
from services.api_gateway.ratelimit import window
from services.api_gateway.settings import ConfigError, Settings, parse_api_keys

KEY_A = "a" * 16
KEY_B = "b" * 20
ENV = {
    "DATABASE_URL": "postgresql://u:secret@db/x",  # pragma: allowlist secret
    "REDIS_URL": "redis://r:6379/0",
    "API_KEYS": f"alice:{KEY_A}",
}


def test_api_keys_parse_named_and_bare_entries() -> None:
    assert parse_api_keys(f"alice:{KEY_A}, {KEY_B}\n# comment") == {KEY_A: "alice", KEY_B: "client-2"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [("alice:short", "shorter than 16"), (f"a:{KEY_A},b:{KEY_A}", "duplicates the key of 'a'")],
)
def test_weak_or_duplicate_api_keys_are_refused(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_api_keys(raw)


def test_identify_returns_the_owner_or_none() -> None:
    keys = {KEY_A: "alice", KEY_B: "bob"}
    assert identify(KEY_B, keys) == "bob"
    assert identify(KEY_A[:-1] + "x", keys) is None
    assert identify("", keys) is None


def test_settings_from_env_and_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "keys"
    secret.write_text(f"svc:{KEY_B}\n")
    env = {**ENV, "API_KEYS": "", "API_KEYS_FILE": str(secret), "RATE_LIMIT_PER_MINUTE": "7"}
    settings = Settings.from_env(env)
    assert settings.api_keys == {KEY_B: "svc"}
    assert settings.rate_limit_per_minute == 7
    assert "secret" not in repr(settings)
    assert KEY_B not in repr(settings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"API_KEYS_FILE": "/nonexistent/keys"}, "cannot be read"),
        ({"RATE_LIMIT_PER_MINUTE": "many"}, "not an integer"),
        ({"RATE_LIMIT_PER_MINUTE": "0"}, "below the minimum"),
        ({"API_KEYS": " , "}, "holds no key"),
    ],
)
def test_bad_configuration_is_a_clear_error(change: dict[str, str], message: str) -> None:
    env = {**ENV, **change}
    if "API_KEYS_FILE" in change:
        env.pop("API_KEYS")
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_both_value_and_file_is_ambiguous(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set only one"):
        Settings.from_env({**ENV, "API_KEYS_FILE": str(tmp_path)})


@pytest.mark.parametrize(
    ("title", "slug"),
    [("Hello, World!", "hello-world"), ("  ", "article"), ("Ünïcode & more", "n-code-more")],
)
def test_slugify(title: str, slug: str) -> None:
    assert slugify(title) == slug


def test_rate_window_reports_seconds_left_in_the_window() -> None:
    assert window(120.0) == (2, 60)
    assert window(179.2) == (2, 1)
    assert window(150.5) == (2, 30)


def test_empty_patch_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ArticlePatch()


def test_migrations_are_ordered_and_named() -> None:
    versions = [v for v, _ in available()]
    assert versions == sorted(versions)
    assert versions[0] == "0001_articles"
