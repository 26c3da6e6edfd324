"""What a worker starts (`WorkerPlan`) and the environment mapping it exports, apart from the
machinery that starts it (runtime.worker): the xdist controller's guard reads a plan's mapping
before any worker starts, and must not pay for importing the docker SDK and testcontainers to
do so (a controller never starts a container)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEFAULT_ENV", "LIBPQ_REDIRECTS", "REDIS_ENV", "WorkerPlan"]

# Always exported, so a command or library that relies on libpq's defaults (psql, a bare
# psycopg.connect(""), alembic with an empty URL) reaches the worker's database, never
# whatever listens on the default host and port.
DEFAULT_ENV: Mapping[str, str] = {
    "PGHOST": "{postgres.host}",
    "PGPORT": "{postgres.port}",
    "PGUSER": "{postgres.user}",
    "PGPASSWORD": "{postgres.password}",
    "PGDATABASE": "{postgres.dbname}",
    "DATABASE_URL": "{postgres.url}",
}
REDIS_ENV: Mapping[str, str] = {"REDIS_URL": "{redis.url}"}
# libpq variables that would send a connection elsewhere despite PGHOST/PGPORT.
LIBPQ_REDIRECTS = ("PGHOSTADDR", "PGSERVICE", "PGSERVICEFILE")


@dataclass(frozen=True)
class WorkerPlan:
    """What a worker needs: images, the project's commands, the env mapping, the reset."""

    rootdir: Path
    state_dir: Path
    postgres_image: str
    redis_image: str | None  # None: no Redis
    migrate: str | None = None
    seed: str | None = None
    env_templates: Mapping[str, str] = field(default_factory=dict)
    keep_tables: tuple[str, ...] = ()
    reset: str = "deletion"
    reuse: bool = False
    migrate_once: bool = False  # start from, or else commit, the migrated image (runtime.migrated)
    network: str = "auto"  # auto, host or bridge: see tierharness.runtime.networking

    def templates(self) -> dict[str, str]:
        """The whole mapping: the defaults, then the project's own (which may override). A plan
        made before images are resolved (the guard, the xdist controller's placeholders) has an empty
        image name but Redis all the same: only None means no Redis."""
        return {**DEFAULT_ENV, **(REDIS_ENV if self.redis_image is not None else {}), **self.env_templates}
