"""What the harness leaves in the engine between runs, kept in bounds.

Every container the engine starts or removes costs containerd work that grows with what its
metadata holds, and BuildKit's cache and the references pulled from runs' registries hold most
of it; the engine's own GC frees space, not records. What a record costs a container is
measured by benchmarks/record_cost.py (docs/image-build.md, "What a record costs"). So:

- after each build, the project image's per-commit tags beyond the newest `keep-images` are
  removed (never the one just built, never one a container still runs: the engine refuses,
  and it is skipped);
- `python -m tierharness clean --prune` prunes the build cache that no build used for
  `HARNESS_BUILD_CACHE_IDLE` seconds, that of clean (`--no-cache`) builds whatever its idle
  time (both once together past `HARNESS_BUILD_CACHE_KEEP` MiB, see `prune_build_cache`), and
  the references pulled by digest from runs' own loopback registries. Only there,
  and only while no build or stack runs: the pulls may be a running stack's image (run beside
  the e2e tier, it took the stack's image away), and a build cache prune beside a build made
  that build fail ("failed to solve: not found", BuildKit 0.13).

All three touch only what the invoking user's harness runs wrote into their ledger
(tierharness.engine.ledger): the engine is shared, and a `localhost:5000/...` reference, an
`app:<12 hex>` tag or an idle build cache record may be another project's or another user's.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tierharness.config import Settings
from tierharness.engine.client import build_cache_records, engine_client
from tierharness.engine.image_list import image_summaries, listed_images
from tierharness.engine.ledger import Ledger

__all__ = [
    "CachePruned",
    "prune_build_cache",
    "prune_loopback_pulls",
    "prune_old_builds",
    "record_build",
    "record_pull",
    "recording_build_cache",
    "retain",
    "unused_for",
]

_REVISION_TAG = re.compile(r"^[0-9a-f]{12}$")  # what `harness build` tags: the commit, abbreviated
_LOOPBACK = re.compile(r"^(127\.0\.0\.1|localhost):\d+/")  # a run's own registry
# Build cache ids in one prune's filter. BuildKit (0.13) removes at most 10 childless records a
# pass, and on every pass compiles the filter's expression anew for each record it weighs, the
# whole engine's: with 200 ids a prune, compiling and its garbage were most of dockerd's CPU.
# Twenty, `_batches` apart, take two passes; fewer make a prune's own fixed work the larger
# share of its time (benchmarks/prune_cost.py).
_IDS_PER_PRUNE = 20
_LEDGER_COMPACT_AT = 128 * 1024  # bytes of build cache ids (26 each) before gone ones are dropped
_BUILDS, _CLEAN_BUILDS = "build-cache", "clean-build-cache"  # the ledgers of the two kinds of build


@dataclass(frozen=True)
class CachePruned:
    """What a build cache prune removed, and what was due but left within its budget."""

    records: int
    size: int  # bytes
    held: int = 0  # records due for pruning, left: together they stayed within the budget
    held_size: int = 0  # their bytes


@contextlib.contextmanager
def recording_build_cache(client: Any = None, *, clean: bool = False) -> Iterator[None]:
    """Around one build on the engine's own builder (`client`'s engine; by default the
    harness's): the build cache records that appear while it runs go into the invoking user's
    ledger, for `prune_build_cache`; a `clean` build's (`--no-cache`) into a ledger of their
    own. A courtesy: failing to write it never fails the build.

    Only records younger than every record listed before: on Docker 26.1, a listing taken
    while other builds ran left out records made half an hour earlier, which the listing after
    showed again, and a clean build's ledger took them for its own (cached builds' records
    among them, for the next clean to prune)."""
    before: set[str] | None = None
    newest: datetime | None = None
    with contextlib.suppress(Exception):
        client = client or engine_client()
        listed = build_cache_records(client)
        before = {str(r["ID"]) for r in listed}
        newest = max(filter(None, (record_time(r, "CreatedAt") for r in listed)), default=None)
    try:
        yield
    finally:
        if before is not None:
            with contextlib.suppress(Exception):
                records = build_cache_records(client)
                after = {str(r["ID"]) for r in records}
                made = [
                    str(r["ID"]) for r in records
                    if str(r["ID"]) not in before and _younger(record_time(r, "CreatedAt"), newest)
                ]  # fmt: skip
                ledger = Ledger.of(client, _CLEAN_BUILDS if clean else _BUILDS)
                ledger.add(sorted(made))
                # Where `clean --prune` never runs, the engine's own GC removes records: their
                # ids go from a ledger grown past a few thousand of them.
                if ledger.path.stat().st_size > _LEDGER_COMPACT_AT:
                    ledger.forget(set(ledger.entries()) - after)


def record_time(record: Mapping[str, Any], *fields: str) -> datetime | None:
    """The first of `fields` a build cache record gives, as an aware time (the API's RFC 3339,
    nanoseconds cut to microseconds; a time without an offset is the engine's UTC); None when
    it gives none of them."""
    value = next((str(record[f]) for f in fields if record.get(f)), "")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def unused_for(record: Mapping[str, Any], now: datetime) -> float | None:
    """Seconds from when a build last used a build cache record (or made it) to `now`; None
    when the record gives neither time."""
    used = record_time(record, "LastUsedAt", "CreatedAt")
    return None if used is None else (now - used).total_seconds()


def _younger(made: datetime | None, newest: datetime | None) -> bool:
    """Whether a record made at `made` is younger than `newest`; a record or listing that gives
    no time counts as younger, as every new record did before times were compared."""
    return made is None or newest is None or made > newest


def prune_build_cache(idle_seconds: float, *, keep_bytes: int = 0, client: Any = None) -> CachePruned:
    """The build cache records of the invoking user's harness builds (its ledgers) that no
    build used for `idle_seconds`, and those of its clean builds whatever their idle time;
    records in use are never pruned. Nothing is pruned while the records due together take at
    most `keep_bytes`; past them, all of them go at once.

    Why a budget: on Docker 26.1 (BuildKit 0.13, the containerd image store), a prune that
    removes any record, even another project's, makes BuildKit forget the cache of every step
    built on an image, though its records stay listed: the next build runs them all again
    (benchmarks/prune_forgets_chains.py). The project image's stages import a cache of their
    own since (tierharness.imaging.stage_cache), but other builds on images do not, and a
    prune costs the `clean` that makes it: pruned at every `.ci/run`, its clean took several
    times as long as one that prunes nothing; batched, one run in several pays that.

    Why clean builds' whatever their idle time: a `--no-cache` build (repro-check's two, and
    every canary of it) writes a fresh record for each of its steps beside the cached one, and
    nothing looks them up again but by chance. Kept for the idle time, they were most of what
    each warm `.ci/run` added to the engine, and containerd's per-container work grows with the
    records (docs/image-build.md, "What stays in the engine").

    Why by id: BuildKit's cache records carry no owner, project or label. The engine's prune
    filters are `until`, `id` (a regular expression), `parent`, `type`, `description`,
    `inuse`, `shared` and `private`; `label` is accepted and ignored (checked on Docker 26.1:
    a prune "by label" prunes whatever its other filters match, the whole engine's cache).
    A builder of the harness's own (`docker buildx create --driver docker-container`) would
    bound the cache exactly, but it runs a BuildKit image that no registry here serves and no
    Debian package ships (HARNESS_BUILDER can name one where there is; its cache is then not
    recorded here, and is its owner's to prune). So the most exact scope available is the ids
    of the records that appeared during the harness's builds (`recording_build_cache`), in
    one regular expression per batch, with `until` on top. Its one blur: a record that another
    build on the same engine made while a harness build ran is counted as the harness's, and
    pruned once nobody used it for `idle_seconds`, or at the next prune if that harness build
    was a clean one, and no cached harness build ran meanwhile: a record that appeared while
    both kinds ran is pruned once idle, as a cached build's. It may be the next build's chain
    (`.ci/run` builds the image while the tests tier's canaries build): pruned, that costs a
    rebuild; kept, a clean build's record costs only its idle time.
    """
    client = client or engine_client()
    builds, clean = Ledger.of(client, _BUILDS), Ledger.of(client, _CLEAN_BUILDS)
    clean.forget(builds.entries())
    ledgers = [(builds, idle_seconds), (clean, 0.0)]
    recorded = [(ledger, ledger.entries(), idle) for ledger, idle in ledgers]
    if not any(entries for _, entries, _ in recorded):
        return CachePruned(0, 0)
    listed = {str(r["ID"]): r for r in build_cache_records(client)}
    if keep_bytes > 0:
        due = [i for _, entries, idle in recorded for i in _due(listed, entries, idle)]
        due_size = sum(int(listed[i].get("Size") or 0) for i in due)
        if due_size <= keep_bytes:
            return CachePruned(0, 0, len(due), due_size)
    pruned = [_prune_recorded(client, ledger, entries, listed, idle) for ledger, entries, idle in recorded]
    return CachePruned(sum(p.records for p in pruned), sum(p.size for p in pruned))


def _due(listed: Mapping[str, Mapping[str, Any]], recorded: list[str], idle_seconds: float) -> list[str]:
    """Of `recorded`, the listed records not in use that no build used for `idle_seconds`, by
    the listing's times and this machine's clock (the prune's `until` has the last word)."""
    now = datetime.now(UTC)
    due = []
    for i in recorded:
        record = listed.get(i)
        if record is None or record.get("InUse"):
            continue
        unused = unused_for(record, now)
        if unused is None or unused >= idle_seconds:
            due.append(i)
    return due


def _prune_recorded(
    client: Any, ledger: Ledger, recorded: list[str], listed: Mapping[str, Mapping[str, Any]], idle: float
) -> CachePruned:
    """The records in `ledger` (its entries: `recorded`) that no build used for `idle` seconds
    (at least one), of those `listed` (by id)."""
    ledger.forget(i for i in recorded if i not in listed)
    remaining = sorted((i for i in recorded if i in listed), key=lambda i: _made(listed[i]), reverse=True)
    whole_ids = len({len(i) for i in listed}) == 1
    deleted: list[str] = []
    size = 0
    # all: with the docker driver most records are "shared" (with the image store), and a
    # prune without it leaves those; images keep their own layers whatever is pruned here.
    # A record whose child is in a later batch is freed by a later round.
    while remaining:
        freed: set[str] = set()
        for batch in _batches(remaining):
            filters = {"until": f"{max(int(idle), 1)}s", "id": _id_pattern(batch, whole_ids=whole_ids)}
            answer = client.api.prune_builds(filters=filters, all=True) or {}
            freed.update(answer.get("CachesDeleted") or [])
            size += int(answer.get("SpaceReclaimed") or 0)
        if not freed:
            break
        deleted += [i for i in remaining if i in freed]
        remaining = [i for i in remaining if i not in freed]
    ledger.forget(deleted)
    return CachePruned(len(deleted), size)


def _batches(newest_first: list[str]) -> list[list[str]]:
    """`newest_first` in batches of `_IDS_PER_PRUNE`, each taking every n-th id: a parent is
    made just before its child, so the first batch holds the newest record of many builds'
    chains, and each later batch mostly parents whose children the batch before it freed.
    A batch of one chain would take a pass of the engine's for each of its ids, as a pass
    removes only childless records, and every pass weighs every record the engine holds."""
    count = -(-len(newest_first) // _IDS_PER_PRUNE)
    return [newest_first[start::count] for start in range(count)]


def _made(record: Mapping[str, Any]) -> datetime:
    """When a build cache record was made; the earliest time there is where the listing
    does not say."""
    return record_time(record, "CreatedAt") or datetime.min.replace(tzinfo=UTC)


def _id_pattern(ids: list[str], *, whole_ids: bool) -> str:
    """The prune filter's expression for exactly `ids`. The engine matches it anywhere in a
    record's id. When every listed id has one length (BuildKit's are 25 characters), an id
    that ends with one of `ids` is that id, and the expression needs no `^`: Go compiles a
    start-anchored expression a second time, in its one-pass form, and the engine compiles
    the filter once for each record it weighs."""
    alternatives = "|".join(re.escape(i) for i in ids)
    return f"({alternatives})$" if whole_ids else f"^({alternatives})$"


def _remove(client: Any, reference: str) -> bool:
    """Remove one reference; a reference a container still uses (or already gone) stays put."""
    from docker.errors import APIError, ImageNotFound  # noqa: PLC0415  lazy: the docker SDK loads when an engine is used

    try:
        client.images.remove(reference)
    except (APIError, ImageNotFound):
        return False
    return True


def record_build(tag: str, *, client: Any = None) -> None:
    """After a build tagged `tag`: that tag, on the image it names now, is the harness's."""
    client = client or engine_client()
    Ledger.of(client, "builds").add([f"{tag}\t{client.images.get(tag).id}"])


def prune_old_builds(repository: str, keep: int, *, protect: str = "", client: Any = None) -> tuple[str, ...]:
    """The per-commit tags (`REPOSITORY:<12 hex>`) of `repository` that the invoking user's
    builds made (`record_build`; still on the image they were given) beyond the newest `keep`
    (by the image's creation time, which is its commit's: SOURCE_DATE_EPOCH), never `protect`.
    Returns the tags removed."""
    client = client or engine_client()
    ledger = Ledger.of(client, "builds")
    recorded = set(ledger.entries())
    if not recorded:
        return ()
    tagged: list[tuple[str, str, str]] = []  # (created, tag, its ledger entry)
    for image in listed_images(client, name=repository):
        created = str(image.attrs.get("Created", ""))
        for tag in image.tags:
            name, _, version = tag.rpartition(":")
            entry = f"{tag}\t{image.id}"
            if name == repository and _REVISION_TAG.match(version) and entry in recorded:
                tagged.append((created, tag, entry))
    tagged.sort(reverse=True)
    stale = [tag for _, tag, _ in tagged[keep:] if tag != protect]
    removed = tuple(tag for tag in stale if _remove(client, tag))
    # Forgotten: this repository's entries but those still in the engine as recorded.
    still = {entry for _, tag, entry in tagged if tag not in removed}
    ledger.forget(e for e in recorded if _repository(e) == repository and e not in still)
    return removed


def _repository(entry: str) -> str:
    return entry.partition("\t")[0].rpartition(":")[0]


def record_pull(reference: str, *, client: Any = None) -> None:
    """After a run pulled `reference` from its own loopback registry."""
    if _LOOPBACK.match(reference):
        client = client or engine_client()
        Ledger.of(client, "pulls").add([reference])


def prune_loopback_pulls(*, client: Any = None) -> tuple[str, ...]:
    """The references the invoking user's runs pulled from their own loopback registries
    (`record_pull`): each run's registry is its own and gone with it. Only while no run goes
    on. Returns the references removed."""
    client = client or engine_client()
    ledger = Ledger.of(client, "pulls")
    recorded = ledger.entries()
    if not recorded:
        return ()
    # The list's own references, with no inspection of each image (which another run's removal
    # can fail).
    present = {ref for image in image_summaries(client) for ref in _references(image)}
    removed = tuple(ref for ref in recorded if ref in present and _remove(client, ref))
    ledger.forget(ref for ref in recorded if ref not in present or ref in removed)
    return removed


def _references(summary: dict[str, Any]) -> list[str]:
    return [*(summary.get("RepoTags") or []), *(summary.get("RepoDigests") or [])]


def retain(settings: Settings, *, protect: str = "", log: Callable[[str], None] = print) -> None:
    """After a build: old per-commit tags go (see the module's doc)."""
    removed = prune_old_builds(settings.build.image, settings.build.keep_images, protect=protect)
    if removed:
        log(f"removed {len(removed)} old build(s): {', '.join(removed)} (keep-images)")
