"""The layers of harness/ point one way, and methods/ and suites/ see only the contract.

Read from the source (ast), so an import hidden inside a function counts like any other:
the import graph of harness/ must have no cycle, every import must point to a lower layer
(or sideways inside one), and an import inside a function is allowed only for the optional
dependencies named in LAZY (to keep an extra's import cost off the commands that do not
use it), never to dodge a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Top to bottom; a module may import only from its own layer or the layers below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("harness.cli", "harness.lm_eval_cli"),
    ("harness.cli_claims",),
    ("harness.cli_common",),
    ("harness.launch", "harness.claims", "harness.claims_plan", "harness.claim_files", "harness.tuning", "harness.calibrate", "harness.sweep",
     "harness.report", "harness.export", "harness.api", "harness.perf", "harness.block_parallel",
     "harness.memory_sweep"),
    ("harness.local_pool",),
    ("harness.execute",),
    ("harness.quantities", "harness.stats"),
    ("harness.runner",),
    ("harness.loops",),
    ("harness.lm_eval_bridge",),
    ("harness.plan", "harness.config", "harness.run_config"),
    ("harness.meter", "harness.ledger", "harness.energy", "harness.budget", "harness.continual_metrics"),
    ("harness.store",),
    ("harness.index_table", "harness.jsonable", "harness.locks", "harness.environment", "harness.atomic_io",
     "harness.perf_eta"),
    ("harness.record", "harness.typed_json", "harness.typed_config"),
    ("harness.registry",),
    ("harness.interface",),
)
# (importer, imported) pairs allowed inside a function, each for an optional extra's import cost.
LAZY = {
    ("harness.loops.supervised", "harness.lm_eval_bridge"),  # lm-eval: the [lm] extra, LM cells only
    ("harness.cli_claims", "harness.claims"),  # scipy, only for `bench claims`
    ("harness.cli_claims", "harness.claims_plan"),  # the same (it plans through harness.claims)
    ("harness.cli_claims", "harness.calibrate"),  # scipy, only for `bench claims calibrate`
    ("harness.lm_eval_cli", "harness.lm_eval_bridge"),  # registers the model with lm-eval when run
    ("harness.report.summary", "harness.stats"),  # scipy, only when a continual table is printed
    ("harness.report.build", "harness.report.figures"),  # matplotlib, only when figures are drawn
}
# Files that lm-eval loads by path as plug-ins: adapters into the harness, not tasks.
PLUGINS = {"suites.lm.tasks.bench_pack"}  # registers the `bench` model with lm-eval
CONTRACT = ("harness.interface", "harness.registry")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, inside a function?) for every import of a first-party module."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                # `from a.b import c`: the module a.b.c when c is one, else a.b (resolved below)
                found.extend((f"{child.module}.{alias.name}", in_function) for alias in child.names)
            visit(child, nested)

    visit(tree, False)
    return [(name, lazy) for name, lazy in found if name.split(".")[0] in ("harness", "methods", "suites")]


def layer_of(module: str) -> int | None:
    for index, layer in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in layer):
            return index
    return None


def harness_graph() -> dict[str, set[tuple[str, bool]]]:
    modules = {module_name(p): p for p in (ROOT / "harness").rglob("*.py")}
    graph: dict[str, set[tuple[str, bool]]] = {}
    for name, path in modules.items():
        edges = set()
        for target, lazy in imports(path):
            while target not in modules and "." in target:  # `from harness import budget` names a module
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name and target != "harness":
                edges.add((target, lazy))
        graph[name] = edges
    return graph


def test_every_harness_module_has_a_layer() -> None:
    unplaced = sorted(m for m in harness_graph() if m != "harness" and layer_of(m) is None)
    assert not unplaced, f"place these modules in a layer of LAYERS: {unplaced}"


def test_imports_point_down_and_none_hides_in_a_function() -> None:
    upward, hidden = [], []
    for module, edges in harness_graph().items():
        for target, lazy in edges:
            here, there = layer_of(module), layer_of(target)
            if here is not None and there is not None and there < here:
                upward.append(f"{module} -> {target}")
            owner = next((p for p in (target, *[target.rsplit(".", k)[0] for k in range(1, target.count(".") + 1)])
                          if any((module, p) == pair or (module.rsplit(".", 1)[0], p) == pair for pair in LAZY)), None)
            if lazy and owner is None:
                hidden.append(f"{module} -> {target}")
    assert not upward, f"imports that run back up a layer: {sorted(upward)}"
    assert not hidden, f"imports inside a function (a cycle dodged?): {sorted(hidden)}"


def test_no_import_cycle() -> None:
    graph = {m: {t for t, _ in edges} for m, edges in harness_graph().items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


@pytest.mark.parametrize("package", ["methods", "suites"])
def test_methods_and_suites_import_only_the_contract(package: str) -> None:
    wrong = []
    for path in (ROOT / package).rglob("*.py"):
        if module_name(path) in PLUGINS:
            continue
        for target, _ in imports(path):
            if target.startswith("harness") and not any(target == c or target.startswith(c + ".") for c in CONTRACT):
                wrong.append(f"{module_name(path)} -> {target}")
    assert not wrong, f"methods/ and suites/ may import only {CONTRACT}: {sorted(wrong)}"


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The checks above can fail: an upward import is placed above its target's layer."""
    assert layer_of("harness.store") > layer_of("harness.runner")  # store is below the runner
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from harness.runner import run_cell\n")
    assert imports(source) == [("harness.runner.run_cell", True)]
