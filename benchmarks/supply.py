"""Supply-chain timings: publish + sign + attest + verify (cold registry storage, then warm),
and an independent rebuild on a second engine.

Runs the real commands (`python -m tierharness publish`, `python -m tierharness repro-check
--independent`) and prints what each reports. Needs a key pair: `python -m tierharness keys`
(HARNESS_KEY_PASSWORD or HARNESS_KEY_PASSWORD_FILE set).

    python benchmarks/supply.py            # publish twice
    python benchmarks/supply.py --rebuild  # and the independent rebuild (several minutes)
"""

from __future__ import annotations

import subprocess
import sys
import time

from record import figure, write_record


def _run(*args: str, verdict: bool = False) -> tuple[float, str, int]:
    """Seconds, output and exit code of one command; it must succeed, but for a `verdict`
    command (exit 1: the check said no)."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "tierharness", *args], capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - started
    if proc.returncode not in ((0, 1) if verdict else (0,)):
        sys.exit(
            f"python -m tierharness {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return seconds, proc.stdout, proc.returncode


def main() -> None:
    figures = []
    for label in ("first publish", "warm publish "):
        seconds, out, _ = _run("publish")
        steps = next((line for line in out.splitlines() if line.startswith("seconds:")), "")
        print(f"{label}: {seconds:5.1f}s wall (build reuse included); {steps}")
        figures.append(figure(f"{label.strip()}, build reuse included ({steps})", seconds, "s"))
    if "--rebuild" in sys.argv:
        seconds, out, code = _run("repro-check", "--independent", verdict=True)
        for line in out.splitlines():
            if line.startswith(("engine", "recorded")):
                print(f"  {line}")
        # The exit code, not the output: the two engines may agree on a digest that is not
        # the recorded build's, which the output says on a line of its own.
        verdict = "reproducible" if code == 0 else "NOT reproducible"
        print(f"independent rebuild: {seconds:5.1f}s wall, {verdict}")
        figures.append(figure(f"independent rebuild ({verdict})", seconds, "s"))
    write_record("supply", figures)


if __name__ == "__main__":
    main()
