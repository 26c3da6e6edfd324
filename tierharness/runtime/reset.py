"""Per-worker state: reset the database (and Redis) before each test that asks for it.

A reset touches every table the migrations created except the ones that record migration
state (`alembic_version`, `django_migrations`, `schema_migrations` by default), over
connections kept open for the worker's lifetime. Three strategies:

- "deletion" (default): back to "clean and migrated". One transaction of DELETEs with
  foreign-key triggers off, plus setval() on each owned sequence: for the few rows a test
  writes this is under a millisecond.
- "truncation": the same end state by TRUNCATE ... RESTART IDENTITY CASCADE. It creates
  new files for every table and index, so it costs ~10 ms even when empty, but it does not
  depend on table size: better for tests that write thousands of rows.
- "snapshot": back to the state *after migrations and the seed* (a committed superuser, say),
  for projects whose fixtures commit data. The snapshot holds every table's rows (binary
  COPY) and every sequence's position; a restore is one transaction of DELETEs, COPY FROM
  for the tables that had rows, and setval(). Unlike `CREATE DATABASE ... TEMPLATE`, it
  needs no other connection closed, so an application's pooled connections (opened at
  import time, say) stay valid across resets.

Redis, when there is one, is emptied by every strategy.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import psycopg
import redis
from psycopg import sql
from redis.connection import Connection

from tierharness.errors import HarnessError
from tierharness.runtime.containers import PostgresInfo, RedisInfo

__all__ = ["MIGRATION_TABLES", "STRATEGIES", "StateReset"]

STRATEGIES = ("deletion", "truncation", "snapshot")
# Tables in which migration tools record what they applied: a reset must never empty them.
MIGRATION_TABLES = ("alembic_version", "django_migrations", "schema_migrations")


@dataclass(frozen=True)
class _Snapshot:
    rows: list[tuple[sql.Identifier, bytes]]  # binary COPY of each table that had rows
    sequences: list[tuple[sql.Composable, int, bool]]  # (regclass, last_value, is_called)


class StateReset:
    """Resets a worker's database and Redis, timed. Its connections live as long as the
    worker: use it as a context manager (`with StateReset(...) as reset:`)."""

    def __init__(
        self,
        postgres: PostgresInfo,
        redis_info: RedisInfo | None,
        keep_tables: Sequence[str],
        strategy: str = "deletion",
    ) -> None:
        if strategy not in STRATEGIES:
            raise HarnessError(
                f"unknown reset strategy {strategy!r}",
                checked="harness_reset setting",
                fix='use "deletion", "truncation" or "snapshot"',
            )
        self.strategy = strategy
        self.keep = list(keep_tables)
        self.conn = psycopg.connect(postgres.url, autocommit=True)
        self.redis = (
            redis.Redis(host=redis_info.host, port=redis_info.port, password=redis_info.password)
            if redis_info is not None
            else None
        )
        self.tables = self._discover()
        self.names = [sql.Identifier(s, t) for s, t in self.tables]
        # (schema, name) kept apart end to end: names are mixed-case ("User_id_seq") or hold dots.
        self.sequences = [sql.Identifier(schema, name) for schema, name in self._sequences()]
        self.deletion = self._deletion()
        self.snapshot: _Snapshot | None = None
        self.samples: list[float] = []

    def _discover(self) -> list[tuple[str, str]]:
        rows = self.conn.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND NOT (tablename = ANY(%s)) "
            "ORDER BY 1, 2",
            (self.keep,),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def _sequences(self) -> list[tuple[str, str]]:
        """The sequences owned by the reset tables (serial and identity columns): (schema, name)."""
        if not self.tables:
            return []
        rows = self.conn.execute(
            "SELECT sn.nspname, s.relname FROM pg_class s "
            "JOIN pg_namespace sn ON sn.oid = s.relnamespace "
            "JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i') "
            "JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace "
            "WHERE s.relkind = 'S' "
            "AND (tn.nspname, t.relname) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([s for s, _ in self.tables], [t for _, t in self.tables]),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def _regclass(self, sequence: sql.Identifier) -> sql.Composable:
        """`sequence` as setval() takes it: its quoted, qualified name as a regclass literal."""
        return sql.SQL("{}::regclass").format(sql.Literal(sequence.as_string(self.conn)))

    def _deletion(self) -> sql.Composed | None:
        """One round trip back to empty: FK triggers off for this transaction only (needs
        superuser, which the harness's own database user is), so the DELETE order is free."""
        if not self.tables:
            return None
        parts: list[sql.Composable] = [sql.SQL("BEGIN; SET LOCAL session_replication_role = replica")]
        parts += [sql.SQL("DELETE FROM {}").format(name) for name in self.names]
        parts += [sql.SQL("SELECT setval({}, 1, false)").format(self._regclass(s)) for s in self.sequences]
        parts.append(sql.SQL("COMMIT"))
        return sql.SQL("; ").join(parts)

    def take_snapshot(self) -> None:
        """Record the current rows and sequence positions: what "snapshot" resets restore."""
        rows: list[tuple[sql.Identifier, bytes]] = []
        with self.conn.cursor() as cur:
            for name in self.names:
                data = bytearray()
                with cur.copy(sql.SQL("COPY {} TO STDOUT (FORMAT binary)").format(name)) as copy:
                    for chunk in copy:
                        data += chunk
                has_rows = cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(name)).fetchone()
                if has_rows and has_rows[0]:
                    rows.append((name, bytes(data)))  # an empty table needs no COPY on restore
            sequences = []
            for seq in self.sequences:
                found = cur.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(seq)).fetchone()
                if found:
                    sequences.append((self._regclass(seq), int(found[0]), bool(found[1])))
        self.snapshot = _Snapshot(rows, sequences)

    def _restore(self) -> None:
        if self.snapshot is None:
            self.take_snapshot()
            return  # the state just recorded is the state to start from
        snap = self.snapshot
        with self.conn.transaction(), self.conn.cursor() as cur:
            parts: list[sql.Composable] = [sql.SQL("SET LOCAL session_replication_role = replica")]
            parts += [sql.SQL("DELETE FROM {}").format(name) for name in self.names]
            parts += [
                sql.SQL("SELECT setval({}, {}, {})").format(s, sql.Literal(v), sql.Literal(c))
                for s, v, c in snap.sequences
            ]
            cur.execute(sql.SQL("; ").join(parts))
            for name, data in snap.rows:
                with cur.copy(sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(name)) as copy:
                    copy.write(data)

    def empty(self) -> None:
        """Back to "clean and migrated" whatever the strategy (before a seed, say)."""
        flushing = self._send_flush()
        try:
            if self.deletion is not None:
                self.conn.execute(self.deletion)
        finally:
            self._end_flush(flushing)

    def reset(self) -> float:
        started = time.perf_counter()
        flushing = self._send_flush()
        try:
            if self.strategy == "snapshot":
                self._restore()
            elif self.strategy == "truncation" and self.names:
                self.conn.execute(
                    sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(sql.SQL(", ").join(self.names))
                )
            elif self.deletion is not None:
                self.conn.execute(self.deletion)
        finally:
            self._end_flush(flushing)
        elapsed = time.perf_counter() - started
        self.samples.append(elapsed)
        return elapsed

    def _send_flush(self) -> Connection | None:
        """Send Redis its FLUSHDB without waiting for the reply, which `_end_flush` reads after
        the Postgres reset: both servers work at once, and a reset waits for one round trip
        instead of two. None: no Redis, or the send failed (`_end_flush` flushes the usual way)."""
        if self.redis is None:
            return None
        pool = self.redis.connection_pool
        try:
            conn = pool.get_connection()
        except (redis.ConnectionError, redis.TimeoutError):
            return None
        try:
            conn.send_command("FLUSHDB")  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        except (redis.ConnectionError, redis.TimeoutError):
            self._drop(conn)
            return None
        return conn

    def _end_flush(self, conn: Connection | None) -> None:
        """Read FLUSHDB's reply; if the connection broke, flush through the client, whose
        retries reconnect (as a plain `flushdb()` would have)."""
        if self.redis is None:
            return
        if conn is None:
            self.redis.flushdb()
            return
        try:
            conn.read_response()
        except (redis.ConnectionError, redis.TimeoutError):
            self._drop(conn)
            self.redis.flushdb()
        except BaseException:
            self._drop(conn)
            raise
        else:
            self.redis.connection_pool.release(conn)

    def _drop(self, conn: Connection) -> None:
        """Give back a connection that broke, or whose reply may still be on its way: closed
        first, so the next use opens a fresh socket."""
        conn.disconnect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        if self.redis is not None:
            self.redis.connection_pool.release(conn)

    def close(self) -> None:
        self.conn.close()
        if self.redis is not None:
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
            "strategy": self.strategy,
            "median_ms": round(ordered[len(ordered) // 2] * 1000, 3),
            "max_ms": round(ordered[-1] * 1000, 3),
            "tables": [f"{s}.{t}" for s, t in self.tables],
        }
