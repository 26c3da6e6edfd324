"""Prometheus for the rehearsal: promtool rule tests, the server's configuration, and a
small client for the questions a deploy asks (is an alert firing? is there any data?).

promtool and Prometheus come from the `prometheus` logical image, so the rule tests need
no host install and test exactly the binary the rehearsal runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierharness.engine.labels import RunIdentity
from tierharness.engine.oneshot import run_to_exit
from tierharness.errors import HarnessError

__all__ = [
    "Prometheus",
    "PrometheusUnavailableError",
    "prometheus_config",
    "promtool",
    "rehearsal_rules",
    "run_rule_tests",
]


class PrometheusUnavailableError(HarnessError):
    """Prometheus did not answer, or holds no data to judge by."""


def promtool(
    image: str, identity: RunIdentity, folder: Path, args: Sequence[str], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`promtool ARGS` in the prometheus image, `folder` mounted read-only at /rules, no network;
    its output (both streams) in stdout."""
    return run_to_exit(
        image, args, identity=identity, role="promtool", mounts={folder: "/rules"},
        what=f"promtool {' '.join(args)}", fix="read promtool's output above: a rule or a rule test is wrong",
        check=check, entrypoint="promtool", user=str(os.getuid()),
    )  # fmt: skip


def run_rule_tests(
    image: str, identity: RunIdentity, alerts: Path, tests: Path, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` on `alerts`, then `promtool test rules` on `tests` (whose
    rule_files name `alerts` relative to it); both files must share a folder tree."""
    folder = Path(os.path.commonpath([alerts.resolve(), tests.resolve()]))
    inside = f"/rules/{alerts.resolve().relative_to(folder)}"
    checked = promtool(image, identity, folder, ["check", "rules", inside], check=check)
    if checked.returncode != 0:
        return checked
    return promtool(
        image,
        identity,
        folder,
        ["test", "rules", f"/rules/{tests.resolve().relative_to(folder)}"],
        check=check,
    )


_FOR = re.compile(r"^([ \t]*)for:[ \t]*\S+[ \t]*$", re.MULTILINE)


def rehearsal_rules(alerts: str, hold: str) -> str:
    """The paging rules with each `for:` set to `hold`: same expressions and thresholds, but a
    rehearsal cannot wait minutes before it believes an alert."""
    return _FOR.sub(lambda m: f"{m.group(1)}for: {hold}", alerts)


def prometheus_config(targets: Mapping[str, str], *, interval: str, job: str = "app") -> str:
    """A configuration scraping `targets` (instance name -> host:port) every `interval`,
    with the rules at /etc/prometheus/rules.yml evaluated as often. JSON is valid YAML."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "rule_files": ["/etc/prometheus/rules.yml"],
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [
                    {"targets": [address], "labels": {"instance": name}} for name, address in targets.items()
                ],
            }
        ],
    }
    return json.dumps(config, indent=2)


@dataclass(frozen=True)
class Prometheus:
    """A Prometheus server's HTTP API at `url` (loopback)."""

    url: str
    timeout: float = 2.0

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        # The harness's own loopback server: never through a proxy from the environment.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{self.url}{path}{query}", timeout=self.timeout) as response:
                body = json.loads(response.read())
        except (OSError, ValueError) as exc:
            raise PrometheusUnavailableError(
                f"Prometheus did not answer: {exc}",
                checked=f"GET {self.url}{path}",
                fix="the rehearsal cannot judge the candidate without it: read Prometheus's log",
            ) from exc
        if body.get("status") != "success":
            raise PrometheusUnavailableError(
                f"Prometheus refused the request: {body.get('error', body)}",
                checked=f"GET {self.url}{path}",
                fix="check the query",
            )
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("/api/v1/query", {"query": expr})["result"]
        return result

    def alerts(self, state: str = "firing") -> list[dict[str, Any]]:
        """Alerts in `state` ("firing" or "pending")."""
        return [a for a in self._get("/api/v1/alerts")["alerts"] if a.get("state") == state]

    def firing(self, instance: str) -> list[str]:
        """Names of the alerts firing for `instance`."""
        return sorted(
            {a["labels"]["alertname"] for a in self.alerts() if a["labels"].get("instance") == instance}
        )

    def samples(self, instance: str, window: str) -> int:
        """How many scrapes of `instance` succeeded over the last `window`: no data, no verdict."""
        result = self.query(f'sum_over_time(up{{instance="{instance}"}}[{window}])')
        return int(float(result[0]["value"][1])) if result else 0

    def rules_loaded(self) -> list[str]:
        return [r["name"] for g in self._get("/api/v1/rules")["groups"] for r in g["rules"]]
