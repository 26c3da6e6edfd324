"""MkDocs hook: the reference tables and the benchmark figures, rendered from their sources.

Nothing here is typed twice. A page asks for a table with a marker on a line of its own:

    <!-- reference: plugin-options -->   the plugin's options (--harness-NAME / ini harness_NAME)
    <!-- reference: environment -->      every environment variable the harness reads
    <!-- reference: sections -->         every [tool.harness.*] table, key by key, with its default
    <!-- reference: perf-options -->     the perf tier's options and thresholds
    <!-- reference: images -->           the harness's own logical images
    <!-- figures: NAME | COMMAND -->     docs/figures/NAME.json, which COMMAND writes

The declarations are imported in one place, `declarations()`: when the modules that hold them
move, that function is the only line to change. The build also checks that every relative link
of README.md resolves (a file, and a heading for an anchor), as `validation` does for the pages.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
import textwrap
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from markdown.extensions.toc import slugify
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

from tierharness import config
from tierharness.plugin.options import OPTIONS

_ROOT = Path(__file__).resolve().parents[2]  # the repository: docs/hooks/reference.py

_MARKER = re.compile(r"^<!-- (reference|figures): (.+?) -->$", re.MULTILINE)
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*[A-Z0-9]$")


def declarations() -> SimpleNamespace:
    """Where the declarations live: the one place to repoint when modules move."""
    return SimpleNamespace(
        plugin_options=OPTIONS,
        environment=config.Environment,
        sections=(
            config.BuildConfig,
            config.StackConfig,
            config.PerfConfig,
            config.SecurityConfig,
            config.LicencePolicy,
            config.SupplyConfig,
            config.DeployConfig,
        ),
        perf_options=config.PERF_OPTIONS,
        images=config.DEFAULT_IMAGES,
    )


# --------------------------------------------------------------------------- helpers


def _cell(value: Any) -> str:
    if value is None or value in ("", (), {}):
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | tuple):
        return ", ".join(f"`{v}`" for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"`{k}`: `{v}`" for k, v in value.items())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def _text(value: str) -> str:
    return " ".join(value.split()).replace("|", "\\|")


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _field_comments(cls: type) -> dict[str, str]:
    """Each field's comments in the class's source: the block above it and the one after it."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in textwrap.dedent(inspect.getsource(cls)).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# "))
            continue
        field = re.match(r"^\s{4}(\w+): [^=#]+(?:=[^#]*)?(?:#\s*(.*))?$", line)
        if field and not stripped.startswith(("def ", "@")):
            comments[field[1]] = " ".join([*pending, field[2] or ""]).strip()
        pending = []
    return comments


def _constants(node: ast.AST, names: Mapping[str, Any]) -> list[str]:
    """Environment variable names in an expression: string literals, or module constants."""
    found: list[str] = []
    for sub in ast.walk(node):
        value = sub.value if isinstance(sub, ast.Constant) else None
        if isinstance(sub, ast.Name) and isinstance(names.get(sub.id), str):
            value = names[sub.id]
        if isinstance(value, str) and _ENV_NAME.match(value) and value not in found:
            found.append(value)
    return found


def _keys_read(cls: type) -> dict[str, str]:
    """field -> TOML key, where `parse` reads a field under another key than its own name."""
    parse = getattr(cls, "parse", None)
    if parse is None:
        return {}
    keys: dict[str, str] = {}
    for call in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(parse)))):
        if not isinstance(call, ast.Call) or len(call.args) < 4:
            continue
        key, default = call.args[1], call.args[-2] if len(call.args) > 4 else call.args[2]
        if isinstance(key, ast.Constant) and isinstance(default, ast.Attribute):
            keys[default.attr] = str(key.value)
    return keys


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


# --------------------------------------------------------------------------- tables


def plugin_options(d: SimpleNamespace) -> str:
    rows = []
    for o in d.plugin_options:
        option = f"`{o.flag}`" + (" (a flag)" if o.switch else "")
        ini = f"`{o.ini}`" + (" (lines or a TOML list)" if o.type == "lines" else "")
        rows.append((option, ini, _cell(o.default), _text(o.help)))
    return _table(("option", "ini key", "default", "meaning"), rows)


def environment(d: SimpleNamespace) -> str:
    cls = d.environment
    module = inspect.getmodule(cls)
    names = vars(module) if module else {}
    read = ast.parse(textwrap.dedent(inspect.getsource(cls.read.__func__)))
    call = next(n for n in ast.walk(read) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "cls")
    variables = {kw.arg: _constants(kw.value, names) for kw in call.keywords if kw.arg}
    defaults = cls.read({"HOME": "~"})
    comments = _field_comments(cls)
    rows = []
    for field in dataclasses.fields(cls):
        shown = ", ".join(f"`{v}`" for v in variables.get(field.name, ())) or "see meaning"
        default = _cell(getattr(defaults, field.name)) if field.repr else "unset (never shown)"
        rows.append((shown, f"`{field.name}`", default, _text(comments.get(field.name, ""))))
    return _table(("variable", "field", "default (HOME=~)", "meaning"), rows)


def sections(d: SimpleNamespace) -> str:
    parts = []
    for cls in d.sections:
        doc = inspect.getdoc(cls) or ""
        table = re.search(r"`(\[tool\.harness[^\]]*\])`", doc)
        title = table[1] if table else cls.__name__
        keys, comments = _keys_read(cls), _field_comments(cls)
        rows = []
        for field in dataclasses.fields(cls):
            if dataclasses.is_dataclass(field.type) or field.name == "licences":
                continue  # a table of its own, listed on its own
            key = keys.get(field.name, field.name.replace("_", "-"))
            rows.append((f"`{key}`", _cell(_default(field)), _text(comments.get(field.name, ""))))
        summary = _text(doc.split(":", 1)[-1].split("\n\n")[0])
        parts.append(f"### `{title}`\n\n{summary}\n\n" + _table(("key", "default", "meaning"), rows))
    return "\n\n".join(parts)


def perf_options(d: SimpleNamespace) -> str:
    rows = [
        (f"`{o.name}`", f"`--{o.name}`", _cell(o.default), _to_locust(o), _text(o.help))
        for o in d.perf_options
    ]
    return _table(("key", "flag", "default", "passed to Locust", "meaning"), rows)


def _to_locust(option: Any) -> str:
    return "every run" if option.gate else "capacity runs" if option.shape else ""


def images(d: SimpleNamespace) -> str:
    rows = [
        (f"`{name}`", _cell(spec.get("ref")), _cell(spec.get("local")), _cell(spec.get("kind")),
         _cell(spec.get("depends-on")), _cell(spec.get("packages")))
        for name, spec in d.images.items()
    ]  # fmt: skip
    return _table(("image", "ref", "local", "kind", "depends-on", "packages"), rows)


def layers(_d: SimpleNamespace) -> str:
    """The import-linter contract's layers, highest first, as `pyproject.toml` declares them."""
    project = tomllib.loads((_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = project["tool"]["importlinter"]["contracts"][0]
    rows = [
        (str(n), " · ".join(f"`{member.strip()}`" for member in layer.split("|")))
        for n, layer in enumerate(contract["layers"], 1)
    ]
    return _table(("layer (1 = highest)", "packages and modules"), rows)


def modules(_d: SimpleNamespace) -> str:
    """Every module of the package with the first line of its docstring."""
    package = _ROOT / "tierharness"
    rows = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == package:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        first = " ".join(doc.split("\n\n")[0].split())
        rows.append((f"`{path.relative_to(_ROOT).as_posix()}`", _text(first)))
    return _table(("module", "what it holds"), rows)


_TABLES = {
    "layers": layers,
    "modules": modules,
    "plugin-options": plugin_options,
    "environment": environment,
    "sections": sections,
    "perf-options": perf_options,
    "images": images,
}


# --------------------------------------------------------------------------- figures


def figures(figures_dir: Path, spec: str) -> str:
    name, _, command = (part.strip() for part in spec.partition("|"))
    path = figures_dir / f"{name}.json"
    if not path.is_file():
        return (
            f"*No record yet.* `{command}` measures these figures on the machine it runs on and "
            f"writes `docs/figures/{name}.json`; commit it, and this page shows it."
        )
    record = json.loads(path.read_text(encoding="utf-8"))
    machine = record.get("machine", {})
    rows = [
        (_text(f["what"]), _text(f"{f['value']} {f.get('unit', '')}".strip()), _text(f.get("goal", "")))
        for f in record.get("figures", [])
    ]
    commit = f"`{str(record.get('commit', '?'))[:12]}`"
    if record.get("uncommitted_changes"):
        commit += " with uncommitted changes"
    return (
        f"Recorded {record.get('date', '?')} at commit {commit} on "
        f"{machine.get('cores', '?')} cores{_speed(machine)}, kernel {machine.get('kernel', '?')}, engine "
        f"{machine.get('engine', '?')}, by `{record.get('command', command)}`:\n\n"
        + _table(("what", "figure", "goal"), rows)
    )


def _speed(machine: dict[str, Any]) -> str:
    """The cores' model and the record's fixed loop (benchmarks/record.py), where it has them."""
    if "loop_s" not in machine:
        return ""
    python = f" on Python {machine['python']}" if "python" in machine else ""
    loop = f"a fixed loop in {machine['loop_s']} s{python}"
    return f" ({_text(str(machine.get('cpu', '?')))}, {loop})"


# --------------------------------------------------------------------------- README links


def readme_problems(root: Path) -> list[str]:
    """README.md's relative links that lead nowhere: a missing file, or an anchor no heading makes."""
    text = (root / "README.md").read_text(encoding="utf-8")
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue  # an address, not a file of this repository
        path, _, anchor = target.partition("#")
        file = root / path if path else root / "README.md"
        if not file.exists():
            problems.append(f"README.md links to {target}: no {path}")
        elif anchor and file.suffix == ".md":
            headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", file.read_text(encoding="utf-8"), re.MULTILINE)
            if anchor not in {slugify(h, "-") for h in headings}:
                problems.append(f"README.md links to {target}: no heading makes #{anchor}")
    return problems


# --------------------------------------------------------------------------- MkDocs events


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    problems = readme_problems(Path(config.config_file_path).parent)
    if problems:
        raise PluginError("broken links in README.md:\n  " + "\n  ".join(problems))
    return config


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    figures_dir = Path(config.docs_dir) / "figures"
    found: dict[str, SimpleNamespace] = {}

    def render(match: re.Match[str]) -> str:
        kind, spec = match[1], match[2].strip()
        if kind == "figures":
            return figures(figures_dir, spec)
        if spec not in _TABLES:
            raise PluginError(f"{page.file.src_path}: no reference table named {spec!r}")
        if "d" not in found:
            found["d"] = declarations()
        return _TABLES[spec](found["d"])

    return _MARKER.sub(render, markdown)
