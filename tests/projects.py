"""The environment of a pytest run that a test starts on a project of its own (a written
project, an example): this process's, without what this worker's own run set."""

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
