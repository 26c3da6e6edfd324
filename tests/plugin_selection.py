"""The installed pytest plugins that the unit and integration tiers do without.

Every pytest process loads every installed plugin, and the e2e tier's fuzzing (schemathesis,
hypothesis) and Locust are heavy imports. The unit and integration tiers, their xdist workers and
the projects they run pytest on use none of them. pytest-django (examples/django_app's) is loaded
for that example only. `nox -s tests`, the unit tier in the image's `test` stage
(Dockerfile.enterprise, through `python -m tests.plugin_selection`) and the benchmark of the suite's
speed-up (benchmarks/suite_speedup.py) run the same selection, so that the benchmark measures the
suite that the session runs.
"""

from __future__ import annotations

UNUSED_PLUGINS = ("schemathesis", "hypothesispytest", "locust", "anyio", "django")


def lean_addopts(own: str = "") -> str:
    """PYTEST_ADDOPTS that leave the unused plugins out; a developer's own `own` is kept, after them."""
    return " ".join([*(f"-p no:{name}" for name in UNUSED_PLUGINS), own]).strip()


if __name__ == "__main__":
    print(lean_addopts())
