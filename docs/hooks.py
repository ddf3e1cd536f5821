"""mkdocs hook: the pages that are generated from the code, so they cannot drift from it.

- methods/<name>.md for every registered method: its module docstring (the paper, the algorithm,
  every deviation, the cost per step), what it supports and its config with the defaults;
- suites/<name>.md for every suite file: its description, the notes in docs/_suites/<name>.md
  when there are some, and the YAML itself;
- the shipped claims (on claims.md, at `<!-- generated: claims -->`) and the measurement rules
  (on measurement.md, at `<!-- generated: measurement -->`: the docstrings of budget.py, meter.py,
  ledger.py and energy.py).

The nav entries of the generated pages are added here too (mkdocs.yml lists the written pages).
Run from the repository root (`mkdocs build`), which puts the harness on the import path.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's harness, not another installed copy

from harness import registry  # noqa: E402
from harness.claims import CLAIMS_DIR, claim_paths, load_claim  # noqa: E402
from harness.config import SUITES_DIR, available_suites, load_suite  # noqa: E402
from mkdocs.structure.files import File  # noqa: E402

SUITE_NOTES = Path(__file__).resolve().parent / "_suites"
MEASUREMENT_MODULES = ("harness.budget", "harness.meter", "harness.ledger", "harness.energy")


def docstring_markdown(text: str) -> str:
    """A plain-text docstring as Markdown: lists get the blank line Markdown needs before them, and
    angle brackets (`<suite>/<run_id>`) and asterisks (`theta*w`) stay text."""
    out: list[str] = []
    for line in text.strip().splitlines():
        bullet = re.match(r"^\s*(-|\d+\.) ", line)
        if bullet and out and out[-1].strip() and not re.match(r"^\s*(-|\d+\.) |^\s{2,}\S", out[-1]):
            out.append("")
        if not line.startswith("    "):  # prose; an indented line is a code block, shown as is
            parts = line.split("`")  # odd parts are code spans: left as they are
            line = "`".join(part if k % 2 else part.replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")
                            for k, part in enumerate(parts))  # theta*w is no emphasis
        out.append(line)
    return "\n".join(out)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else "required"


def method_page(name: str) -> str:
    cls = registry.get_method(name)
    module = sys.modules[cls.__module__]
    path = Path(module.__file__).relative_to(ROOT)
    rows = "\n".join(f"| `{f.name}` | `{_default(f)!r}` |" for f in dataclasses.fields(cls.Config))
    return (f"# {name}\n\n*Generated from `{path}`* · supports: {', '.join(sorted(cls.supports))}\n\n"
            f"{docstring_markdown(module.__doc__ or 'No module docstring yet.')}\n\n"
            f"## Config\n\nSet with `method.{name}.KEY=VALUE` on the command line.\n\n"
            f"| key | default |\n|---|---|\n{rows}\n")


def suite_page(name: str) -> str:
    raw = load_suite(name)
    source = (SUITES_DIR / f"{name}.yaml").read_text()
    notes = SUITE_NOTES / f"{name}.md"
    profiles = ", ".join(f"`{p}`" for p in (raw.get("profiles") or {})) or "none"
    body = notes.read_text().strip() + "\n\n" if notes.is_file() else ""
    return (f"# {name}\n\n{docstring_markdown(raw.get('description', ''))}\n\n"
            f"Run it: `bench run suite={name}`; profiles: {profiles}.\n\n{body}"
            f"## The suite file\n\n`suites/{name}.yaml`:\n\n```yaml\n{source}```\n")


def claims_table() -> str:
    rows = []
    for path in claim_paths(CLAIMS_DIR):
        claim = load_claim(path)
        versus = claim.method.name + (f" vs {claim.baseline.name}" if claim.baseline else "")
        statement = claim.statement.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{claim.id}` | {statement} | {versus} | `{claim.quantity} {claim.relation}` | "
                    f"{claim.suite}/{claim.task} |")
    return "| id | statement | method | test | suite/task |\n|---|---|---|---|---|\n" + "\n".join(rows)


def measurement_rules() -> str:
    parts = []
    for name in MEASUREMENT_MODULES:
        module = importlib.import_module(name)
        parts.append(f"## `{name.replace('.', '/')}.py`\n\n{docstring_markdown(module.__doc__ or '')}")
    return "\n\n".join(parts)


def on_config(config: Any) -> Any:
    """Add the generated pages to the nav, in the place their section holds."""
    generated = {"Methods": [{name: f"methods/{name}.md"} for name in registry.method_names()],
                 "Suites": [{name: f"suites/{name}.md"} for name in available_suites()]}
    for entry in config.nav or []:
        for section, pages in generated.items():
            if isinstance(entry, dict) and section in entry:
                entry[section] = [*entry[section], *pages]
    return config


def on_files(files: Any, config: Any) -> Any:
    for name in registry.method_names():
        files.append(File.generated(config, f"methods/{name}.md", content=method_page(name)))
    for name in available_suites():
        files.append(File.generated(config, f"suites/{name}.md", content=suite_page(name)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return (markdown.replace("<!-- generated: claims -->", claims_table())
            .replace("<!-- generated: measurement -->", measurement_rules()))
