"""The report's plots: matplotlib figures written as SVG, inlined into the page. No script,
no font or file to fetch: the text is drawn as paths, so the page renders the same offline."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tierharness.report.inputs import PerfRun, ProvisioningRun

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PLOTTING_MISSING", "perf_trend_svg", "plotting_available", "provisioning_svg"]

PLOTTING_MISSING = (
    "plots need matplotlib, which is not installed in this environment; "
    "fix: nox -s gates installs it (requirements/report.txt)"
)


def plotting_available() -> bool:
    try:
        import matplotlib  # noqa: F401, PLC0415  lazy: only the report draws, and only when installed
    except ImportError:
        return False
    return True


def _figure(rows: int) -> Figure:
    from matplotlib.figure import Figure  # noqa: PLC0415  lazy: gates.md needs no plotting library

    # A Figure without pyplot: no global state, no GUI backend chosen.
    return Figure(figsize=(8, 2.6 * rows), layout="constrained")


def _svg(figure: Figure) -> str:
    import matplotlib  # noqa: PLC0415  lazy: gates.md needs no plotting library

    buffer = io.StringIO()
    # A fixed salt and no date: the same inputs give the same page.
    with matplotlib.rc_context({"svg.hashsalt": "tierharness-report", "svg.fonttype": "path"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inlined: no XML declaration or DOCTYPE


def _positions(labels: Sequence[str]) -> list[int]:
    return list(range(len(labels)))


def perf_trend_svg(runs: Sequence[PerfRun], p95_limit: float, rps_floor: float) -> str:
    """p95 and RPS per recorded run, with the thresholds; the capacity knee where runs carry one."""
    labels = [r.label for r in runs]
    x = _positions(labels)
    knees = [(i, r.knee) for i, r in zip(x, runs, strict=True) if r.knee is not None]
    figure = _figure(3 if knees else 2)
    axes = figure.subplots(3 if knees else 2, 1, sharex=True)
    p95, rps = axes[0], axes[1]
    p95.plot(x, [r.p95_ms for r in runs], marker="o", label="p95")
    p95.axhline(p95_limit, color="tab:red", linestyle="--", label=f"limit {p95_limit:g} ms")
    p95.set_ylabel("p95 (ms)")
    rps.plot(x, [r.rps for r in runs], marker="o", color="tab:green", label="RPS")
    rps.axhline(rps_floor, color="tab:red", linestyle="--", label=f"floor {rps_floor:g} RPS")
    rps.set_ylabel("requests/s")
    for failed in (i for i, r in zip(x, runs, strict=True) if not r.passed):
        p95.axvspan(failed - 0.4, failed + 0.4, color="tab:red", alpha=0.12)
    if knees:
        knee = axes[2]
        knee.plot([i for i, _ in knees], [k.users for _, k in knees], marker="s", label="users at the knee")
        knee.set_ylabel("users")
        at = knee.twinx()
        at.plot([i for i, _ in knees], [k.rps for _, k in knees], marker="^", color="tab:purple", label="RPS")
        at.set_ylabel("RPS at the knee")
        at.legend(loc="lower right", fontsize="small")
    for ax in axes:
        ax.legend(loc="upper left", fontsize="small")
        ax.grid(alpha=0.3)
    axes[-1].set_xticks(x, labels, rotation=30, ha="right", fontsize="small")
    return _svg(figure)


def provisioning_svg(runs: Sequence[ProvisioningRun]) -> str:
    """Median time for a worker to be ready (containers and migrations), per recorded test run."""
    figure = _figure(1)
    ax = figure.subplots()
    x = _positions([r.run_id for r in runs])
    ax.plot(x, [r.median_seconds for r in runs], marker="o")
    ax.set_ylabel("median worker ready (s)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_xticks(
        x, [f"{r.run_id}\n({r.workers} w)" for r in runs], rotation=30, ha="right", fontsize="small"
    )
    return _svg(figure)
