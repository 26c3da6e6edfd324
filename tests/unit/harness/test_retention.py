"""What the harness made, recorded and pruned by that record (tierharness.engine.ledger and
tierharness.engine.retention), without an engine: a stand-in answers as the engine does."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tierharness.engine import retention
from tierharness.engine.ledger import Ledger
from tierharness.engine.retention import prune_build_cache, recording_build_cache


@pytest.fixture(autouse=True)
def machine_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "machine"))


def test_a_ledger_keeps_each_entry_once_and_forgets_only_what_it_is_told(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "engine", "pulls")
    assert ledger.entries() == []
    ledger.add(["a", "b", "", "a"])
    ledger.add(["c"])
    ledger.forget(["b", "never-there"])
    assert ledger.entries() == ["a", "c"]
    assert not [p.name for p in ledger.folder.iterdir() if p.name.startswith(".pulls-")]


class _Engine:
    """The engine's build cache as the API shows it: `prune_builds` honours `until` (a record
    not in `unused` is older than any) and the `id` regular expression, and a record with a
    child left, or in use, stays."""

    def __init__(self, records: dict[str, str | None], unused: dict[str, int] | None = None) -> None:
        self.records = dict(records)  # id -> parent
        self.unused = dict(unused or {})  # id -> seconds since a build last used it
        self.created: dict[str, str] = {}  # id -> CreatedAt, as the API writes it
        self.hidden: set[str] = set()  # left out of the listing (BuildKit's twins of a record in use)
        self.sizes: dict[str, int] = {}  # id -> Size, in bytes (10 if not set)
        self.in_use: set[str] = set()  # listed with InUse (a running build or container holds it)
        self.filters: list[dict[str, str]] = []
        self.api = self

    def info(self) -> dict[str, str]:
        return {"ID": "engine-1"}

    def _get(self, *_: Any, **__: Any) -> None:
        return None

    def _url(self, *_: Any) -> str:
        return ""

    def _result(self, *_: Any, **__: Any) -> dict[str, Any]:
        now = datetime.now(UTC)
        listed = [
            {
                "ID": i,
                "Size": self.sizes.get(i, 10),
                "InUse": i in self.in_use,
                "LastUsedAt": (now - timedelta(seconds=self.unused.get(i, 10**9))).isoformat(),
            }
            for i in self.records
            if i not in self.hidden
        ]
        for record in listed:
            if record["ID"] in self.created:
                record["CreatedAt"] = self.created[record["ID"]]
        return {"BuildCache": listed}

    def prune_builds(self, *, filters: dict[str, str], all: bool) -> dict[str, Any]:
        self.filters.append(filters)
        pattern, until = re.compile(filters["id"]), int(filters["until"].removesuffix("s"))
        parents = {p for p in self.records.values() if p}
        gone = [
            i for i in self.records
            if pattern.search(i) and i not in parents | self.in_use and self.unused.get(i, 10**9) >= until
        ]  # fmt: skip
        for i in gone:
            del self.records[i]
        return {"CachesDeleted": gone or None, "SpaceReclaimed": 10 * len(gone)}


def test_the_build_cache_prune_takes_only_recorded_records_across_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = _Engine({"foreign1": None})
    with recording_build_cache(engine):
        engine.records.update({"a-parent": None, "b-child": "a-parent", "c-mine": None, "d-shared": None})
    engine.records["foreign2"] = "d-shared"  # another build's, on top of one of the harness's
    # One id a batch: the parent's batch comes before its child's, so a second round frees it.
    monkeypatch.setattr(retention, "_IDS_PER_PRUNE", 1)

    pruned = prune_build_cache(3600, client=engine)

    assert sorted(engine.records) == ["d-shared", "foreign1", "foreign2"]  # d-shared: foreign2's parent
    assert pruned.records == 3
    assert all(f["until"] == "3600s" and f["id"].startswith("^(") for f in engine.filters)
    assert Ledger.of(engine, "build-cache").entries() == ["d-shared"]

    del engine.records["foreign2"]
    assert prune_build_cache(3600, client=engine).records == 1
    assert sorted(engine.records) == ["foreign1"]
    assert Ledger.of(engine, "build-cache").entries() == []


def test_a_prune_names_its_ids_newest_first_and_anchors_them_where_an_id_could_end_with_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine matches the filter anywhere in an id. Where every listed id has BuildKit's one
    length, `(ids)$` is exact, and cheaper for the engine to compile than `^(ids)$`; where a
    longer one could end with one of the harness's, only the anchored form is."""
    parent, child, foreign = "p" * 25, "c" * 25, "f" * 25
    engine = _Engine({foreign: None})
    with recording_build_cache(engine, clean=True):
        engine.records.update({parent: None, child: parent})
    engine.created.update({parent: "2026-12-05T15:00:00Z", child: "2026-12-05T15:00:01Z"})
    monkeypatch.setattr(retention, "_IDS_PER_PRUNE", 1)

    assert prune_build_cache(3600, client=engine).records == 2

    # The child first, so its parent goes in the same round: two calls, not three.
    assert [f["id"] for f in engine.filters] == [f"({child})$", f"({parent})$"]
    assert list(engine.records) == [foreign]

    longer = "x" + child
    engine = _Engine({longer: None})
    with recording_build_cache(engine, clean=True):
        engine.records[child] = None

    assert prune_build_cache(3600, client=engine).records == 1
    assert [f["id"] for f in engine.filters] == [f"^({child})$"]
    assert list(engine.records) == [longer]


def test_a_prunes_batch_takes_every_nth_id_so_it_frees_many_chains_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pass of the engine's removes only childless records: a batch of one chain's ids would
    free one of them a pass. Two builds' chains, two ids a prune: both children, then both
    parents, in one round."""
    p1, c1, p2, c2 = (name * 10 for name in ("p1", "c1", "p2", "c2"))
    engine = _Engine({})
    with recording_build_cache(engine, clean=True):
        engine.records.update({p1: None, c1: p1, p2: None, c2: p2})
    engine.created.update({i: f"2026-12-05T15:00:0{n}Z" for n, i in enumerate([p1, c1, p2, c2])})
    monkeypatch.setattr(retention, "_IDS_PER_PRUNE", 2)

    assert prune_build_cache(3600, client=engine).records == 4

    assert [f["id"] for f in engine.filters] == [f"({c2}|{c1})$", f"({p2}|{p1})$"]
    assert engine.records == {}


def test_a_grown_build_cache_ledger_drops_what_the_engine_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _Engine({})
    monkeypatch.setattr(retention, "_LEDGER_COMPACT_AT", 10)
    with recording_build_cache(engine):
        engine.records.update({"gone-by-gc": None})
    del engine.records["gone-by-gc"]
    with recording_build_cache(engine):
        engine.records.update({"new": None})
    assert Ledger.of(engine, "build-cache").entries() == ["new"]


def test_a_clean_builds_records_go_at_the_next_prune_and_a_cached_builds_once_idle() -> None:
    engine = _Engine({}, unused={"cached": 60, "clean": 60, "clean-in-use": 0})
    with recording_build_cache(engine):
        engine.records["cached"] = None
    with recording_build_cache(engine, clean=True):  # as buildx_build records a --no-cache build
        engine.records.update({"clean": None, "clean-in-use": None})

    pruned = prune_build_cache(3600, client=engine)

    assert pruned.records == 1
    assert sorted(engine.records) == ["cached", "clean-in-use"]
    assert sorted(f["until"] for f in engine.filters) == ["1s", "1s", "3600s"]  # two rounds for clean
    assert Ledger.of(engine, "build-cache").entries() == ["cached"]
    assert Ledger.of(engine, "clean-build-cache").entries() == ["clean-in-use"]


def test_a_record_made_before_the_build_is_never_its_own_though_the_listing_left_it_out() -> None:
    """BuildKit leaves a record out of its listing while a build holds its twin: taken then,
    the listing before a build missed a cached chain that the listing after showed again."""
    engine = _Engine({"chain": None, "seen": None})
    engine.created.update({"chain": "2026-12-05T15:23:27.8556Z", "seen": "2026-12-05T15:51:04Z"})
    engine.hidden.add("chain")
    with recording_build_cache(engine, clean=True):
        engine.hidden.clear()
        engine.records.update({"mine": None, "mine-offset": None, "undated": None})
        # Later than "seen" by a fraction the API writes with its trailing zeros dropped, and
        # in another offset: only the times, not their text, say which came first.
        engine.created.update({"mine": "2026-12-05T15:51:04.5Z", "mine-offset": "2026-12-05T16:51:05+01:00"})

    assert sorted(Ledger.of(engine, "clean-build-cache").entries()) == ["mine", "mine-offset", "undated"]


def test_a_record_that_appeared_while_a_cached_build_ran_too_goes_only_once_idle() -> None:
    """A cached build beside a clean one: what appeared meanwhile may be the cached build's
    chain, which the next build needs."""
    engine = _Engine({}, unused={"chain": 60, "clean": 60, "alone": 60})
    with recording_build_cache(engine), recording_build_cache(engine, clean=True):
        engine.records.update({"chain": None, "clean": None})
    with recording_build_cache(engine, clean=True):  # a clean build with no cached one beside it
        engine.records["alone"] = None

    assert prune_build_cache(3600, client=engine).records == 1
    assert sorted(engine.records) == ["chain", "clean"]
    assert Ledger.of(engine, "clean-build-cache").entries() == []
    assert prune_build_cache(30, client=engine).records == 2
    assert engine.records == {}


def test_nothing_is_pruned_until_what_is_due_passes_the_budget_and_then_all_of_it_goes() -> None:
    """Any prune makes BuildKit 0.13 forget every image-based chain's cache, so prunes are
    batched: none while what is due (clean builds' records, and cached builds' idle ones, not
    in use) fits in `keep_bytes`, and not a call to the engine's prune meanwhile."""
    engine = _Engine({}, unused={"cached-idle": 7200, "cached-fresh": 60, "clean": 60, "clean-in-use": 60})
    with recording_build_cache(engine):
        engine.records.update({"cached-idle": None, "cached-fresh": None})
    with recording_build_cache(engine, clean=True):
        engine.records.update({"clean": None, "clean-in-use": None})
    engine.sizes.update({"cached-idle": 300, "cached-fresh": 5000, "clean": 400, "clean-in-use": 5000})
    engine.in_use.add("clean-in-use")

    held = prune_build_cache(3600, keep_bytes=1000, client=engine)

    assert (held.records, held.held, held.held_size) == (0, 2, 700)
    assert engine.filters == []
    assert len(engine.records) == 4

    engine.sizes["clean"] = 800  # past the budget: every record due goes, not just the excess
    pruned = prune_build_cache(3600, keep_bytes=1000, client=engine)

    assert (pruned.records, pruned.held) == (2, 0)
    assert sorted(engine.records) == ["cached-fresh", "clean-in-use"]
