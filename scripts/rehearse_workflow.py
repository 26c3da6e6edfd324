"""Rehearse .github/workflows/ci.yml's jobs here, as a hosted runner would run them.

Nothing on this machine reaches GitHub, so this is the evidence that the workflow can pass:
each job (and each matrix entry) gets a fresh clone owned by a non-root user in the `docker`
group with passwordless sudo (a hosted runner's user), and its `run:` lines run in order,
with the workflow's, job's and step's `env:`, as that user, in a login environment of its
own. The `uses:` steps are stood in for by what they leave behind: checkout by the clone,
setup-python by the system's python3, cache by nothing (a cold cache), upload- and
download-artifact by a folder shared between the jobs of one rehearsal.

    sudo python3 scripts/rehearse_workflow.py [--jobs lint,tests,...] [--user runner]

Writes build/rehearsal/report.json and report.md, and the record the docs render
(docs/figures/workflow_rehearsal.json: each job's result, seconds and commit); exits 1 when any
job failed.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))  # the benchmarks' record: one format for every figure
from record import figure, write_record  # noqa: E402

WORKFLOW = ROOT / ".github/workflows/ci.yml"
SUDOERS = Path("/etc/sudoers.d/harness-rehearsal")
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _say(message: str) -> None:
    print(f"rehearse: {message}", file=sys.stderr, flush=True)


def _runner_user(name: str) -> pwd.struct_passwd:
    """The runner's user: not root, in the docker group, passwordless sudo (as on GitHub)."""
    if shutil.which("sudo") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "sudo"], check=True, env={**os.environ,
                       "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--groups", "docker", "--shell", "/bin/bash", name],
                       check=True)  # fmt: skip
        user = pwd.getpwnam(name)
    SUDOERS.write_text(f"{name} ALL=(ALL) NOPASSWD:ALL\n")
    SUDOERS.chmod(0o440)
    return user


def _evaluate(expression: str, matrix: dict[str, Any]) -> Any:
    """The few expressions the workflow uses: matrix values, repository variables, always(),
    ==, !=, &&, ||."""
    text = expression.replace("&&", " and ").replace("||", " or ").replace("always()", "True")
    text = text.replace("success()", "True").replace("failure()", "False")
    text = re.sub(r"\bmatrix\.(\w+)", lambda m: repr(matrix[m.group(1)]), text)
    # Repository variables: the rehearsal's own environment stands in for them.
    text = re.sub(r"\bvars\.(\w+)", lambda m: repr(os.environ.get(m.group(1), "")), text)
    if re.search(r"[A-Za-z_]\w*\.", text):
        raise ValueError(f"cannot evaluate ${{{{ {expression} }}}} here")
    return eval(text, {"__builtins__": {}}, {"True": True, "False": False})  # noqa: S307  # nosec B307


def _substitute(value: str, matrix: dict[str, Any]) -> str:
    return EXPRESSION.sub(lambda m: str(_evaluate(m.group(1), matrix)), value)


def _matrix_entries(job: dict[str, Any]) -> list[dict[str, Any]]:
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    keys = [k for k in matrix if k not in ("include", "exclude")]
    return [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*(matrix[k] for k in keys))
    ] or [{}]


def _order(jobs: dict[str, Any]) -> list[str]:
    done: list[str] = []
    while len(done) < len(jobs):
        for name, job in jobs.items():
            needs = job.get("needs") or []
            needs = [needs] if isinstance(needs, str) else needs
            if name not in done and all(n in done for n in needs):
                done.append(name)
    return done


class Rehearsal:
    def __init__(self, user: pwd.struct_passwd, out: Path, *, fresh: bool) -> None:
        self.user = user
        self.out = out
        self.home = Path(user.pw_dir)
        self.artifacts = self.home / "rehearsal-artifacts"
        if fresh:  # a rehearsal of some jobs uses what the earlier jobs uploaded
            shutil.rmtree(self.artifacts, ignore_errors=True)
        self.artifacts.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.artifacts, user.pw_name, user.pw_name)

    def clone(self, label: str) -> Path:
        # One path for every job, as on GitHub (the workspace is the repository's name twice):
        # the shards' coverage data name their files by absolute path, and merge only if equal.
        work = self.home / "work" / "repo" / "repo"
        shutil.rmtree(work, ignore_errors=True)
        work.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(work)], check=True)
        subprocess.run(["chown", "-R", f"{self.user.pw_name}:", str(self.home / "work")], check=True)
        return work

    def shell(self, work: Path, script: str, env: dict[str, str], log: Path) -> tuple[int, float]:
        base = {
            "HOME": str(self.home), "USER": self.user.pw_name, "LOGNAME": self.user.pw_name,
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
            "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(work),
            "GITHUB_STEP_SUMMARY": str(work.parent / f"{work.name}.summary.md"),
        }  # fmt: skip
        argv = ["runuser", "-u", self.user.pw_name, "--", "env", "-i",
                *(f"{k}={v}" for k, v in {**base, **env}.items()),
                "bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script]  # fmt: skip
        started = time.monotonic()
        with log.open("a") as sink:
            sink.write(f"\n$ {script}\n")
            sink.flush()
            code = subprocess.run(
                argv, cwd=work, stdout=sink, stderr=subprocess.STDOUT, check=False
            ).returncode
        return code, time.monotonic() - started

    def upload(self, work: Path, step: dict[str, Any]) -> None:
        """As upload-artifact stores them: relative to the least common ancestor of the paths'
        search roots (each pattern up to its first wildcard), so `build/junit/` and
        `build/perf/` keep `junit/` and `perf/`, and a download into `path: build` puts the
        files back where they were."""
        into = self.artifacts / step["with"]["name"]
        shutil.rmtree(into, ignore_errors=True)
        patterns = [p for p in str(step["with"]["path"]).split() if not p.startswith("!")]
        searches = [work / Path(*itertools.takewhile(lambda part: not set(part) & set("*?[{"), Path(p).parts))
                    for p in patterns]  # fmt: skip
        root = Path(os.path.commonpath(searches))
        if len(searches) == 1 and not root.is_dir():
            root = root.parent
        for pattern in patterns:
            for found in glob.glob(pattern, root_dir=work, recursive=True, include_hidden=True):
                source = work / found
                for file in [p for p in source.rglob("*") if p.is_file()] if source.is_dir() else [source]:
                    target = into / file.relative_to(root)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, target)

    def download(self, work: Path, step: dict[str, Any]) -> None:
        spec = step["with"]
        target = work / spec.get("path", ".")
        if "name" in spec:
            names = [spec["name"]]
        else:  # a pattern such as "{shard,reports}-*": brace alternatives, then a glob
            pattern = spec["pattern"]
            alternatives = re.match(r"\{(.*)\}(.*)", pattern)
            patterns = (
                [f"{a}{alternatives.group(2)}" for a in alternatives.group(1).split(",")]
                if alternatives
                else [pattern]
            )
            names = sorted({p.name for pat in patterns for p in self.artifacts.glob(pat)})
        for name in names:
            if (self.artifacts / name).is_dir():
                shutil.copytree(self.artifacts / name, target, dirs_exist_ok=True)
        subprocess.run(["chown", "-R", f"{self.user.pw_name}:", str(work)], check=True)

    def job(self, workflow: dict[str, Any], name: str, matrix: dict[str, Any]) -> dict[str, Any]:
        job = workflow["jobs"][name]
        label = "-".join([name, *(str(v) for v in matrix.values())])
        log = self.out / f"{label}.log"
        log.write_text("")
        work = self.clone(label)
        env = {**(workflow.get("env") or {}), **(job.get("env") or {})}
        steps: list[dict[str, Any]] = []
        failed = False
        for number, step in enumerate(job["steps"], 1):
            condition = str(step.get("if", "success()"))
            if not _evaluate(condition.removeprefix("${{").removesuffix("}}"), matrix) or (
                failed and "always()" not in condition
            ):
                continue
            title = (
                step.get("name") or step.get("uses", "").split("@")[0] or step.get("run", "").splitlines()[0]
            )
            uses = step.get("uses", "").split("@")[0]
            started, code = time.monotonic(), 0
            # The artifact steps' inputs only: the cache steps' keys use what a runner alone knows.
            given = {}
            if uses.endswith("-artifact"):
                given = {k: _substitute(str(v), matrix) for k, v in (step.get("with") or {}).items()}
            if uses.endswith("upload-artifact"):
                self.upload(work, {**step, "with": given})
            elif uses.endswith("download-artifact"):
                self.download(work, {**step, "with": given})
            elif "run" in step:
                step_env = {
                    k: _substitute(str(v), matrix) for k, v in {**env, **(step.get("env") or {})}.items()
                }
                code, _ = self.shell(work, _substitute(step["run"], matrix), step_env, log)
            steps.append({"step": number, "name": title, "exit": code,
                          "seconds": round(time.monotonic() - started, 1)})  # fmt: skip
            _say(f"{label} step {number} {title[:60]!r}: exit {code} ({steps[-1]['seconds']} s)")
            failed = failed or code != 0
        return {"job": label, "passed": not failed, "steps": steps, "log": str(log)}


def _summary(r: dict[str, Any]) -> tuple[str, str, float, str]:
    """A job's commit, result, seconds and failed step, as the report and the record show them."""
    bad = next((s["name"] for s in r["steps"] if s["exit"]), "")
    total = round(sum(s["seconds"] for s in r["steps"]), 1)
    return r.get("revision", "")[:10], "PASS" if r["passed"] else "FAIL", total, bad


def _markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| job | commit | result | seconds | failed step |", "|---|---|---|---|---|"]
    for r in results:
        commit, result, total, bad = _summary(r)
        lines.append(f"| {r['job']} | {commit} | {result} | {total} | {bad} |")
    return "\n".join(lines) + "\n"


def _figures(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row a job: its result (and the step that failed), its seconds, and the commit it ran."""
    rows = []
    for r in results:
        commit, result, total, bad = _summary(r)
        verdict = f"FAIL at {bad!r}" if bad else result
        rows.append(figure(f"{r['job']} ({verdict}, at {commit})", total, "s"))
    return rows


def _posargs() -> str:
    return f" -- {' '.join(sys.argv[1:])}" if sys.argv[1:] else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", default="", help="comma-separated job names (default: all, in order)")
    parser.add_argument("--user", default="runner", help="the runner's user (made if missing)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        _say("ERROR: needs root (it makes the runner's user and its sudoers entry)")
        _say("  fix: sudo python3 scripts/rehearse_workflow.py")
        return 2
    workflow = yaml.safe_load(WORKFLOW.read_text())
    wanted = [j for j in args.jobs.split(",") if j] or _order(workflow["jobs"])
    unknown = sorted(set(wanted) - set(workflow["jobs"]))
    if unknown:
        _say(f"ERROR: no such job(s) in {WORKFLOW.name}: {', '.join(unknown)}")
        return 2
    out = ROOT / "build" / "rehearsal"
    out.mkdir(parents=True, exist_ok=True)
    rehearsal = Rehearsal(_runner_user(args.user), out, fresh=not args.jobs)
    git = ["git", "rev-parse", "HEAD"]
    revision = subprocess.run(git, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    jobs = out / "jobs"
    jobs.mkdir(exist_ok=True)
    ran = []
    for name in wanted:
        for matrix in _matrix_entries(workflow["jobs"][name]):
            result = {**rehearsal.job(workflow, name, matrix), "revision": revision.strip()}
            (jobs / f"{result['job']}.json").write_text(json.dumps(result, indent=2) + "\n")
            ran.append(result)
    # Every job's last rehearsal, this run's and earlier ones' (`--jobs` reruns a few).
    results = [json.loads(p.read_text()) for p in sorted(jobs.glob("*.json"))]
    (out / "report.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "report.md").write_text(_markdown(results))
    print(_markdown(results))
    write_record(
        "workflow_rehearsal",
        _figures(results),
        command=f"sudo .venv/bin/nox -s rehearse-workflow{_posargs()}",
    )
    return 0 if all(r["passed"] for r in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
