"""A realistic mix against the knowledge-hub API: cached and uncached reads, searches,
tag listings and writes; each simulated user has its own API key.

Run through `nox -s perf` (tierharness/perf/locust_run.py), which starts the stack, passes one key
per user in HARNESS_PERF_API_KEYS and the thresholds as options; the gate itself is
`tierharness.perf.gate`, installed below.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import urllib.request
import uuid
from typing import Any

from locust import FastHttpUser, between, events, task

from tierharness.perf.gate import install

install(events)

KEYS = [k for k in os.environ.get("HARNESS_PERF_API_KEYS", "").split(",") if k]
# A rotation rehearsal (`harness rotate-secrets`) moves clients to new keys by rewriting this file.
KEYS_FILE = os.environ.get("HARNESS_PERF_API_KEYS_FILE", "")
_keys: dict[str, Any] = {"checked": 0.0, "stamp": None, "keys": KEYS}
WORDS = ["reproducible", "container", "postgres", "cache", "latency", "pipeline", "rollout", "metrics"]
TAGS = ["ops", "dev", "data", "security"]
SEED_ARTICLES = int(os.environ.get("HARNESS_PERF_SEED", "200"))
HOT = 10  # a few popular articles: read often, so served from the cache
_user_numbers = itertools.count()
_seeded: list[int] = []


def current_keys() -> list[str]:
    """The clients' keys: from HARNESS_PERF_API_KEYS, or re-read from its file when it changes."""
    if not KEYS_FILE:
        return KEYS
    now = time.monotonic()
    if now - _keys["checked"] >= 0.2:
        _keys["checked"] = now
        try:
            st = os.stat(KEYS_FILE)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            if stamp != _keys["stamp"]:
                with open(KEYS_FILE, encoding="utf-8") as fh:
                    keys = [k.strip() for k in fh.read().replace(",", "\n").splitlines() if k.strip()]
                if keys:
                    _keys["stamp"], _keys["keys"] = stamp, keys
        except OSError:
            pass  # mid-rename: keep the keys we have
    keys: list[str] = _keys["keys"]
    return keys


def _post(host: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - the host is the harness's own loopback stack
        f"{host}/v1/articles",
        data=json.dumps(body).encode(),
        headers={"X-API-Key": key, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        result: dict[str, Any] = json.loads(response.read())
        return result


@events.test_start.add_listener
def seed(environment: Any, **_kwargs: Any) -> None:
    """Articles to read and search, written through the API before the load starts."""
    if not current_keys():
        raise RuntimeError("HARNESS_PERF_API_KEYS is empty: run this through `nox -s perf`")
    rng = random.Random(42)
    for n in range(SEED_ARTICLES):
        words = " ".join(rng.choice(WORDS) for _ in range(12))
        article = _post(
            environment.host,
            current_keys()[0],
            {"title": f"{rng.choice(WORDS).title()} notes {n}", "body": words, "tags": [rng.choice(TAGS)],
             "slug": f"seed-{uuid.uuid4().hex[:12]}"},
        )  # fmt: skip
        _seeded.append(int(article["id"]))


class KnowledgeHubUser(FastHttpUser):
    wait_time = between(0.05, 0.15)

    def on_start(self) -> None:
        self.number = next(_user_numbers)

    @property
    def headers(self) -> dict[str, str]:
        keys = current_keys()
        return {"X-API-Key": keys[self.number % len(keys)]}

    def _get(self, path: str, name: str) -> None:
        with self.client.get(path, headers=self.headers, name=name, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {(response.text or '')[:120]}")

    @task(6)
    def read_popular(self) -> None:
        self._get(f"/v1/articles/{random.choice(_seeded[:HOT])}", "/v1/articles/{id} popular")

    @task(3)
    def read_any(self) -> None:
        self._get(f"/v1/articles/{random.choice(_seeded)}", "/v1/articles/{id} any")

    @task(2)
    def search(self) -> None:
        self._get(f"/v1/articles?q={random.choice(WORDS)}&limit=10", "/v1/articles?q=")

    @task(1)
    def by_tag(self) -> None:
        self._get(f"/v1/articles?tag={random.choice(TAGS)}&limit=10", "/v1/articles?tag=")

    @task(1)
    def write(self) -> None:
        body = {"title": "Load test note", "body": " ".join(random.sample(WORDS, 5)), "tags": ["perf"],
                "slug": f"perf-{uuid.uuid4().hex}"}  # fmt: skip
        with self.client.post(
            "/v1/articles", json=body, headers=self.headers, name="/v1/articles POST", catch_response=True
        ) as response:
            if response.status_code != 201:
                response.failure(f"{response.status_code}: {(response.text or '')[:120]}")
