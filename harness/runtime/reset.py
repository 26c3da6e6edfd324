"""Per-worker state: migrate once, then reset to "clean and migrated" before each test.

A reset empties every table the migrations created (except the ones that record
migration state), restarts their sequences, and empties Redis, over connections
kept open for the worker's lifetime. Two strategies:

- "deletion" (default): one transaction of DELETEs with foreign-key triggers
  off, plus setval() on each owned sequence. For the few rows a test writes this
  is a few milliseconds.
- "truncation": TRUNCATE ... RESTART IDENTITY CASCADE. Creates new files for
  every table and index, so it costs ~10 ms even when empty, but it does not
  depend on table size: better for tests that write thousands of rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import psycopg
import redis
from psycopg import sql

from harness.errors import HarnessError
from harness.runtime.containers import PostgresInfo, RedisInfo

__all__ = ["StateReset"]


class StateReset:
    """Clean database and empty Redis before each test, timed. Its connections live as long
    as the worker: use it as a context manager (`with StateReset(...) as reset:`)."""

    def __init__(
        self,
        postgres: PostgresInfo,
        redis_info: RedisInfo,
        keep_tables: Sequence[str],
        strategy: str = "deletion",
    ) -> None:
        if strategy not in ("deletion", "truncation"):
            raise HarnessError(
                f"unknown reset strategy {strategy!r}",
                checked="harness_reset setting",
                fix='use "deletion" or "truncation"',
            )
        self.strategy = strategy
        self.keep = list(keep_tables)
        self.conn = psycopg.connect(postgres.url, autocommit=True)
        self.redis = redis.Redis(host=redis_info.host, port=redis_info.port, password=redis_info.password)
        self.tables = self._discover()
        self.statement = self._compile()
        self.samples: list[float] = []

    def _discover(self) -> list[tuple[str, str]]:
        rows = self.conn.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND NOT (tablename = ANY(%s)) "
            "ORDER BY 1, 2",
            (self.keep,),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def _compile(self) -> sql.Composed | None:
        if not self.tables:
            return None
        names = [sql.Identifier(s, t) for s, t in self.tables]
        if self.strategy == "truncation":
            return sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(sql.SQL(", ").join(names))
        sequences = self.conn.execute(
            "SELECT format('%%I.%%I', sn.nspname, s.relname) FROM pg_class s "
            "JOIN pg_namespace sn ON sn.oid = s.relnamespace "
            "JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i') "
            "JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace "
            "WHERE s.relkind = 'S' "
            "AND (tn.nspname, t.relname) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([s for s, _ in self.tables], [t for _, t in self.tables]),
        ).fetchall()
        # One round trip: FK triggers off for this transaction only (needs superuser,
        # which the harness's own database user is), so the order of DELETEs is free.
        parts: list[sql.Composable] = [sql.SQL("BEGIN; SET LOCAL session_replication_role = replica")]
        parts += [sql.SQL("DELETE FROM {}").format(name) for name in names]
        parts += [sql.SQL("SELECT setval({}, 1, false)").format(sql.Literal(seq)) for (seq,) in sequences]
        parts.append(sql.SQL("COMMIT"))
        return sql.SQL("; ").join(parts)

    def reset(self) -> float:
        started = time.perf_counter()
        if self.statement is not None:
            self.conn.execute(self.statement)
        self.redis.flushdb()
        elapsed = time.perf_counter() - started
        self.samples.append(elapsed)
        return elapsed

    def close(self) -> None:
        self.conn.close()
        self.redis.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        ordered = sorted(self.samples)
        if not ordered:
            return {"resets": 0}
        return {
            "resets": len(ordered),
            "median_ms": round(ordered[len(ordered) // 2] * 1000, 3),
            "max_ms": round(ordered[-1] * 1000, 3),
            "tables": [f"{s}.{t}" for s, t in self.tables],
        }
