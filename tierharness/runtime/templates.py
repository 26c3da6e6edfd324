"""Environment templates: `{postgres.host}`, `{redis.password}`, ... filled with what the
harness started. The same placeholders serve the e2e stack (`[tool.harness.stack.env]`,
names on the private network) and the test environment (`[tool.harness.test-env]` and
`harness_env`, addresses the host reaches), so the harness never needs to know what a
project's variables mean."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tierharness.errors import HarnessError

__all__ = ["PLACEHOLDERS", "render"]

PLACEHOLDERS = (
    "{postgres.host}, {postgres.port}, {postgres.user}, {postgres.password}, {postgres.dbname}, "
    "{postgres.url}, {redis.host}, {redis.port}, {redis.password}, {redis.url}"
)


def render(templates: Mapping[str, str], values: Mapping[str, Any], *, where: str) -> dict[str, str]:
    """Each template filled from `values`; an unknown placeholder is an error naming it."""
    rendered = {}
    for key, template in templates.items():
        try:
            rendered[key] = str(template).format(**values)
        except (KeyError, AttributeError, IndexError) as exc:
            missing = "redis is switched off (harness_services)" if "redis" in str(exc) else ""
            raise HarnessError(
                f"{where}.{key} uses an unknown placeholder: {exc}" + (f"; {missing}" if missing else ""),
                checked=f"template {template!r}",
                fix=f"use {PLACEHOLDERS}" + (", {api_keys}" if "stack" in where else ""),
            ) from exc
    return rendered
