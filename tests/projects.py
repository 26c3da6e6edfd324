"""A pytest run on a project of its own (a written project, an adoption example): its
environment, this process's without what this worker's own run set; and the examples' own
arguments, for the tests and for `nox -s example` alike."""

from __future__ import annotations

import os

# What this worker's own run set, which would point the project's run at this worker's
# services or make it think it is one of this run's workers.
OUTER_RUN = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "HARNESS_CONTROLLER", "COV_CORE_SOURCE",
             "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "DATABASE_URL",
             "REDIS_URL")  # fmt: skip


def project_env(run_id: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without OUTER_RUN, for a run of id `run_id`, `extra` set."""
    env = {k: v for k, v in os.environ.items() if k not in OUTER_RUN}
    return {**env, "HARNESS_RUN_ID": run_id, **(extra or {})}


# The adoption examples, and the pytest plugins each loads beyond the lean set.
EXAMPLES = {"examples/inventory": (), "examples/django_app": ("-p", "django")}


def example_args(example: str, workers: str, *extra: str) -> list[str]:
    """pytest's arguments for EXAMPLE as its own project (its own rootdir and ini) at -n WORKERS."""
    return ["-n", workers, "-p", "no:cacheprovider", *EXAMPLES[example], "--rootdir", example,
            "-c", f"{example}/pyproject.toml", *extra, f"{example}/tests"]  # fmt: skip
