"""`build/report/index.html`: one self-contained page. The gates are the gates page's own
(`collect_gates`), so the two never disagree; every other section says "not run" when its
input is missing. No script, and a policy that forbids loading anything: the page needs
nothing but its own file, so it cannot fail to load something or log a console error."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from tierharness.config import Settings
from tierharness.gates import FAIL, Gate
from tierharness.report import inputs, plots

__all__ = ["render_report", "write_report"]

# Inline styles and the plots' inline SVG only; scripts, fonts, frames and fetches are refused.
_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.PASS { background: #dff5df; } .FAIL { background: #f9d6d6; }
.UNCHECKED { background: #fff1c7; } .NOT-RUN { background: #e8e8e8; }
.not-run { color: #666; font-style: italic; }
figure.plot { margin: 0.5em 0 1.5em; }
figure.plot svg { width: 100%; height: auto; max-width: 60em; }
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], table_id: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' id="{table_id}"' if table_id else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _not_run(what: str) -> str:
    return f'<p class="not-run">not run: {escape(what)}</p>'


def _plot(svg: str, title: str) -> str:
    caption = f"<figcaption>{escape(title)}</figcaption>"
    return f'<figure class="plot" aria-label="{escape(title)}">{svg}{caption}</figure>'


def _gates(gates: Sequence[Gate]) -> str:
    rows = "".join(
        f'<tr class="{g.status.replace(" ", "-")}"><td>{escape(g.name)}</td><td>{escape(g.value)}</td>'
        f"<td>{escape(g.threshold)}</td><td><strong>{escape(g.status)}</strong></td><td>{escape(g.source)}</td></tr>"
        for g in gates
    )
    verdict = "FAIL" if any(g.status == FAIL for g in gates) else "no gate failed"
    return (
        '<h2 id="gates-heading">Quality gates</h2>'
        '<table id="gates"><thead><tr><th>gate</th><th>value</th><th>threshold</th><th>status</th>'
        f"<th>from</th></tr></thead><tbody>{rows}</tbody></table><p>Verdict: <strong>{verdict}</strong></p>"
    )


def _perf(settings: Settings, can_plot: bool) -> str:
    runs = inputs.perf_history(settings)
    out = ["<h2>Performance trend</h2>"]
    if not runs:
        return out[0] + _not_run("no recorded perf run (build/perf/history.jsonl); nox -s perf records one")
    if can_plot:
        svg = plots.perf_trend_svg(runs, settings.perf.p95_ms, settings.perf.min_rps)
        out.append(_plot(svg, f"p95 and RPS over the last {len(runs)} recorded run(s); shaded: failed"))
    else:
        out.append(_not_run(plots.PLOTTING_MISSING))
    if not any(r.knee for r in runs):
        out.append('<p class="not-run">no run recorded a capacity knee</p>')
    rows = [
        [
            r.label, f"{r.p95_ms:g}", f"{r.rps:g}", "passed" if r.passed else "failed",
            f"{r.knee.users:g} users, {r.knee.rps:g} RPS, p95 {r.knee.p95_ms:g} ms" if r.knee else "-",
        ]
        for r in reversed(runs[-10:])
    ]  # fmt: skip
    out.append(_table(["run", "p95 (ms)", "RPS", "gate", "knee"], rows))
    return "".join(out)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _provisioning(settings: Settings, can_plot: bool) -> str:
    out = ["<h2>Provisioning</h2>"]
    runs = inputs.provisioning_runs(settings)
    if not runs:
        out.append(
            _not_run(f"no run manifest in {settings.state_dir}; a test run with the plugin writes one")
        )
    elif can_plot:
        out.append(_plot(plots.provisioning_svg(runs), "median worker ready time per recorded test run"))
    else:
        out.append(_not_run(plots.PLOTTING_MISSING))
    last = inputs.last_run_workers(settings)
    if last is not None:
        run_id, workers = last
        out.append(f"<h3>Last run, {escape(run_id)}</h3>")
        rows = [
            [w.worker, w.how, _seconds(w.provision_seconds), _seconds(w.postgres_ready_seconds),
             _seconds(w.redis_ready_seconds)]
            for w in workers
        ]  # fmt: skip
        out.append(
            _table(["worker", "how", "ready + migrated (s)", "Postgres ready (s)", "Redis ready (s)"], rows)
        )
    out.append("<h3>Benchmarks</h3>")
    found = inputs.benchmarks(settings)
    if not found:
        return "".join(out) + _not_run(f"no benchmark record in {inputs.FIGURES_DIR}")
    for bench in found:
        out.append(
            f"<details><summary>{escape(bench.name)} ({escape(bench.date)}, "
            f"commit {escape(bench.commit)})</summary>"
            + _table(["what", "value", "goal"], bench.figures)
            + "</details>"
        )
    return "".join(out)


def _repro(settings: Settings) -> str:
    found = inputs.repro(settings)
    if found is None:
        return "<h2>Reproducibility</h2>" + _not_run("no repro-check report (build/repro/report.json)")
    verdict = "reproducible: identical digests" if found.reproducible else "NOT reproducible: digests differ"
    rows = [["first build", found.a_digest], ["second build", found.b_digest],
            ["differences found", str(found.differences)]]  # fmt: skip
    return f'<h2>Reproducibility</h2><p id="repro-verdict"><strong>{escape(verdict)}</strong></p>' + _table(
        ["what", "value"], rows
    )


def _links(settings: Settings) -> str:
    found = inputs.links(settings)
    if not found:
        return "<h2>Reports</h2>" + _not_run("no other report under build/")
    items = "".join(f'<li><a href="../{escape(rel)}">{escape(label)}</a></li>' for label, rel in found)
    return f"<h2>Reports</h2><ul>{items}</ul>"


def render_report(settings: Settings, gates: Sequence[Gate]) -> str:
    can_plot = plots.plotting_available()
    when = datetime.now(UTC).isoformat(timespec="seconds")
    sections = [
        _gates(gates), _perf(settings, can_plot), _provisioning(settings, can_plot),
        _repro(settings), _links(settings),
    ]  # fmt: skip
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">'
        f"<title>Quality report</title><style>{_STYLE}</style></head><body>"
        f"<h1>Quality report</h1><p>Written {escape(when)} by <code>nox -s gates</code>, "
        "from the reports the sessions left under build/.</p>" + "".join(sections) + "</body></html>\n"
    )


def write_report(settings: Settings, gates: Sequence[Gate]) -> Path:
    out = settings.build_dir / "report" / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(settings, gates), encoding="utf-8")
    return out
