"""What a worker's provisioning costs in imports, before it starts a container: the CPU time of
a fresh interpreter importing the harness's provisioning path (`tierharness.runtime.worker`),
beside that of importing testcontainers' own Postgres and Redis modules, which the path
imported until it configured plain containers instead (the Postgres one imports all of
SQLAlchemy wherever it is installed, for one exception class), and of the bare interpreter.
Run in an environment with SQLAlchemy installed (the tests session's has it): most projects
on Postgres do.

    python benchmarks/provisioning_imports.py [--runs 30] [--name provisioning_imports]

`--name` names the record (docs/figures/NAME.json): `provisioning_imports-before` is the same
script run at the commit before the path stopped importing testcontainers' modules.
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import statistics
import subprocess
import sys

from record import figure, write_record

IMPORTS = {
    "the provisioning path (tierharness.runtime.worker)": "import tierharness.runtime.worker",
    "testcontainers' Postgres and Redis modules": (
        "import testcontainers.community.postgres, testcontainers.community.redis"
    ),
    "the bare interpreter": "pass",
}


def cpu_of(statement: str) -> float:
    """CPU seconds (user + system) of one fresh interpreter running `statement`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", statement], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--name", default="provisioning_imports", help="the record's name")
    args = parser.parse_args()
    if importlib.util.find_spec("sqlalchemy") is None:
        sys.exit("SQLAlchemy is not installed here: run it with the tests session's interpreter")
    probe = "import sys, tierharness.runtime.worker; print('sqlalchemy' in sys.modules)"
    pulled = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    for statement in IMPORTS.values():
        cpu_of(statement)  # bytecode compiled and files cached before any timed run
    samples: dict[str, list[float]] = {what: [] for what in IMPORTS}
    for _ in range(args.runs):  # interleaved: a slow moment of the machine touches every arm
        for what, statement in IMPORTS.items():
            samples[what].append(cpu_of(statement))
    figures = [figure("runs of each", args.runs)]
    for what, values in samples.items():
        median_ms = statistics.median(values) * 1000
        print(f"{what}: {median_ms:.0f} ms of CPU, median of {args.runs}")
        figures.append(figure(f"{what}, CPU, median", median_ms, "ms"))
    said = "yes" if pulled.stdout.strip() == "True" else "no"
    print(f"SQLAlchemy imported by the provisioning path: {said}")
    figures.append(figure("SQLAlchemy imported by the provisioning path", said))
    write_record(args.name, figures)


if __name__ == "__main__":
    main()
