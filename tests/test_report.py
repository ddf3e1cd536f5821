"""Reports: built from the results table alone, self-contained, every seed and every failure shown.

The records come from a tiny real suite (two tasks, two methods, two seeds, trained for a
few dozen steps through `run_cell`), plus hand-written records for the cases training does
not produce on demand: a failed cell, an unsupported cell, a suite of one seed and a suite
where nothing completed. Claim verdicts are fixtures in the schema harness/claims.py writes.
"""

from __future__ import annotations

import argparse
import base64
import copy
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness import registry
from harness.config import resolve
from harness.plan import plan
from harness.report.build import build_report, cmd_report, suite_figures
from harness.report.suite_data import read_suite_data
from harness.runner import new_record, run_cell
from harness.store import Store
from methods.backprop import Backprop

pytest.importorskip("matplotlib")
from harness.report.figures import pareto_front  # noqa: E402  (needs matplotlib)

SUITE = "report-tiny"
SUITE_YAML = """
description: two tasks and two methods, a few dozen steps, for the report tests
tasks:
  mlp: {task: digits, model: mlp, mlp: {hidden: [32]}}
  vit: {task: digits, model: vit, vit: {patch_size: 4, dim: 16, depth: 1, heads: 2, mlp_ratio: 2.0}}
method: [backprop, backprop_replay]
method_options:
  backprop: {lr: 0.01}
  backprop_replay: {optimizer: sgd, lr: 0.1}
seeds: 3
budget: {steps: 40}
batch_size: 64
eval_every: 20
device: cpu
threads: 1
shift: {enabled: true, noise: [0.3], rotation: [], translation: [1]}
"""
FAILED_ERROR = "RuntimeError: out of memory while allocating the replay buffer (test fixture)"
UNSUPPORTED_ERROR = "method backprop_replay supports ['lm'], not 'classify' tasks like digits (test fixture)"

# In the schema harness/claims.py writes (the fields the report reads, and some it does not).
VERDICTS = [
    {"claim": "local-learning-vit-speed", "statement": "Local learning trains a ViT 4x faster than backprop.",
     "source": "arXiv:2401.00001, table 2", "verdict": "refuted", "quantity": "speedup", "relation": ">= 4",
     "estimate": 1.3, "interval": [1.1, 1.5], "interval_method": "log-t", "confidence": 0.95,
     "method": {"name": "local_learning", "config": {"lr": 0.001}}, "suite": SUITE, "task": "vit",
     "baseline_used": {"name": "backprop", "config": {"lr": 0.003}, "variants_tried": [{"lr": 0.003}]},
     "reason": "the 95% interval lies below 4", "verified_at": "2026-11-23T05:00:00+00:00", "seeds_to_decide": None,
     "per_seed": [{"seed": 0, "method": 0.9, "baseline": 0.91, "value": -0.01},
                  {"seed": 1, "method": 0.8765, "baseline": 0.9012, "value": -0.0247}]},
    {"claim": "ff-memory", "statement": "Forward-forward needs half the memory of backprop.",
     "source": "Hinton 2022", "verdict": "inconclusive", "quantity": "memory ratio", "relation": "<= 0.5",
     "estimate": None, "interval": None, "confidence": 0.95, "seeds_to_decide": 7,
     "reason": "needs 3 seeds of forward_forward on vision-vit; 0 recorded", "per_seed": [],
     "verified_at": "2026-11-23T05:00:00+00:00"},
    {"claim": "lm-epochs", "statement": "An LM claim on another suite.", "verdict": "not comparable",
     "suite": "lm-tiny", "reason": "no LM task registered", "per_seed": []},
]


class BackpropReplay(Backprop):
    """Backprop with SGD plus a declared buffer: a second method with its own ledger category."""

    name = "backprop_replay"

    def setup(self, ctx) -> None:
        super().setup(ctx)
        self.replay = torch.zeros(64 * 1024)  # 256 KiB

    def memory_buffers(self) -> dict[str, list[torch.Tensor]]:
        return {**super().memory_buffers(), "replay_buffer": [self.replay]}


def _hand_written(cell, status: str, error: str) -> dict[str, Any]:
    """A record as the runner writes it for a cell that never trained."""
    return {**new_record(cell), "status": status, "error": error, "finished_at": "2026-11-23T05:00:00+00:00"}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A results directory: seeds 0-1 of every cell trained; seed 2 hand-written for two cells."""
    root = tmp_path_factory.mktemp("report")
    suite_file = root / f"{SUITE}.yaml"
    suite_file.write_text(SUITE_YAML)
    store = Store(root / "results")
    registry.discover()
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry._METHODS, "backprop_replay", BackpropReplay)
        for cell in plan(resolve([f"suite={suite_file}"])):
            if cell.seed < 2:
                record = run_cell(cell)
                assert record["status"] == "completed", record.get("error")
            elif (cell.task.label, cell.method.name) == ("mlp", "backprop"):
                record = _hand_written(cell, "failed", FAILED_ERROR)
            elif (cell.task.label, cell.method.name) == ("vit", "backprop_replay"):
                record = _hand_written(cell, "unsupported", UNSUPPORTED_ERROR)
            else:
                continue
            store.write(cell.suite, cell.run_id, record)
    _add_small_suites(store)
    claims = store.root / "claims"
    claims.mkdir()
    for verdict in VERDICTS:
        (claims / f"{verdict['claim']}.json").write_text(json.dumps(verdict))
    (claims / "half-written.json").write_text('{"claim": "half-wri')
    return store.root


def _add_small_suites(store: Store) -> None:
    """`one-seed`: a single completed record; `all-failed`: one failed record, no metrics at all;
    `two-configs`: backprop on mlp under two learning rates (as a claim's baseline sweep leaves it)."""
    records = [r.to_dict() for r in store.records(SUITE)]
    done = next(r for r in records if r["status"] == "completed")
    failed = next(r for r in records if r["status"] == "failed")
    backprop = [r for r in records
                if r["status"] == "completed" and (r["task_label"], r["method"]) == ("mlp", "backprop")]
    other_lr = copy.deepcopy(backprop[1])
    other_lr["config"]["method_config"]["lr"] = 0.5
    other_lr["run_id"] = "f" * 16
    for suite, record in (("one-seed", done), ("all-failed", failed), ("two-configs", backprop[0]),
                          ("two-configs", other_lr)):
        record = copy.deepcopy(record)
        record["suite"] = suite
        store.write(suite, record["run_id"], record)


@pytest.fixture(scope="module")
def report(results: Path, tmp_path_factory) -> Path:
    return build_report(results, SUITE, tmp_path_factory.mktemp("reports"))


def _completed(results: Path, suite: str = SUITE) -> list[dict[str, Any]]:
    return [r.to_dict() for r in Store(results).records(suite) if r.completed]


# --------------------------------------------------------------------------- content


def test_report_is_self_contained_and_inlines_every_figure(report: Path) -> None:
    page = report.read_text()
    pngs = sorted(report.parent.glob("fig-*.png"))
    assert (report.parent / "report.md").exists()
    assert len(pngs) == 5  # curves and cost for each of two tasks, one ledger figure
    external = re.findall(r"""(?:src|href)\s*=\s*["']?(?!data:|#)([^"'\s>]+)""", page, flags=re.I)
    assert external == [], f"the page refers to files or sites outside itself: {external}"
    assert "http://" not in page and "https://" not in page
    for png in pngs:
        assert base64.b64encode(png.read_bytes()).decode() in page, f"{png.name} is not inlined"
        assert f"]({png.name})" in (report.parent / "report.md").read_text()


def test_every_seed_value_and_every_failure_is_shown(report: Path, results: Path) -> None:
    page, markdown = report.read_text(), (report.parent / "report.md").read_text()
    done = _completed(results)
    assert len(done) == 8
    for text in (page, markdown):
        for record in done:
            value = record["final"]["test"][record["final"]["metric"]]
            assert f"s{record['seed']}: {value:.4f}" in text
        assert FAILED_ERROR in text and "s2: failed" in text
        assert UNSUPPORTED_ERROR.replace("'", "&#x27;") in text or UNSUPPORTED_ERROR in text
        assert "replay_buffer" in text  # the method-declared ledger category
        assert "process peak RSS" in text and "null: " in text  # measured kind and energy reason
        for label in ("completed", "diverged", "failed", "unsupported"):
            assert label in text


def test_further_final_metrics_get_a_table_each(report: Path, results: Path) -> None:
    """`final.shift.*` (and any other final.* group a task records) is reported, mean ± std (n)."""
    page = report.read_text()
    assert "Further results: shift" in page and "shifted.noise@0.3" in page
    done = [r for r in _completed(results) if r["task_label"] == "mlp" and r["method"] == "backprop"]
    values = [r["final"]["shift"]["gap"] for r in done]
    mean = sum(values) / len(values)
    assert f"{mean:.4g} ± " in page and f"({len(values)})" in page


def test_claims_are_listed_with_verdict_interval_and_every_seed(report: Path) -> None:
    page = report.read_text()
    assert 'class="verdict verdict-refuted">refuted' in page
    assert 'class="verdict verdict-inconclusive">inconclusive' in page
    assert "[1.1, 1.5] (95%, log-t)" in page and "0.8765" in page and "needs 3 seeds of forward_forward" in page
    assert "local_learning (lr=0.001) vs backprop (lr=0.003)" in page and "about 7 seeds would decide it" in page
    assert "half-written" in page and "unreadable" in page  # a broken verdict file is shown, not dropped
    assert "lm-epochs" not in page and "1 more on other suites" in page  # another suite's claim: pointed to


# --------------------------------------------------------------------------- figures


def test_every_figure_axis_is_labelled_and_every_seed_drawn(results: Path) -> None:
    figures = suite_figures(read_suite_data(results, SUITE))
    assert set(figures.curves) == set(figures.cost) == {"mlp", "vit"}
    for figure in figures.all():
        for ax in figure.axes:
            assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), f"unlabelled axis in {figure}"
    for ax in figures.curves["mlp"].axes:  # 2 methods x 2 seeds thin lines + 2 means
        assert len(ax.lines) == 6
    for ax in figures.cost["mlp"].axes:
        assert sum(len(c.get_offsets()) for c in ax.collections) == 4  # one point per completed seed
    (legend,) = figures.cost["mlp"].legends  # one legend, beside the panels
    assert any("Pareto" in t.get_text() for t in legend.get_texts())


def test_pareto_front_keeps_exactly_the_non_dominated_points() -> None:
    costs = [1.0, 2.0, 2.0, 3.0, 0.5]
    values = [0.80, 0.90, 0.85, 0.90, 0.70]
    assert pareto_front(costs, values) == [4, 0, 1]  # 2 is beaten by 1, 3 costs more for the same value
    assert pareto_front(costs, values, higher_is_better=False) == [4]  # cheapest and lowest: beats all


# --------------------------------------------------------------------------- edge cases and the command


def test_single_seed_and_nothing_completed_suites_still_report(results: Path, tmp_path: Path) -> None:
    one = build_report(results, "one-seed", tmp_path).read_text()
    (record,) = _completed(results, "one-seed")
    value = f"{record['final']['test']['accuracy']:.4f}"
    assert f"<td>{value}</td>" in one and f"<td>s{record['seed']}: {value}</td>" in one  # a mean with no ± std
    failed = build_report(results, "all-failed", tmp_path).read_text()
    assert FAILED_ERROR in failed and "no completed cell" in failed.lower()


def test_one_method_under_two_configs_gets_a_row_each(results: Path) -> None:
    data = read_suite_data(results, "two-configs")
    assert [(r.method, r.completed) for r in data.rows] == [("backprop (lr=0.01)", 1), ("backprop (lr=0.5)", 1)]
    assert set(data.curves["method"]) == {"backprop (lr=0.01)", "backprop (lr=0.5)"}  # curves coloured alike


def test_claims_target_and_no_verdicts(results: Path, tmp_path: Path) -> None:
    page = build_report(results, "claims", tmp_path).read_text()
    assert "local-learning-vit-speed" in page and "lm-epochs" in page and "Results" not in page
    empty = tmp_path / "empty-results"
    empty.mkdir()
    assert "bench claims verify all" in build_report(empty, "claims", tmp_path).read_text()


def _cmd(target: str, results: Path, reports: Path) -> int:
    return cmd_report(argparse.Namespace(target=target, results_dir=results, reports_dir=reports))


def test_command_prints_the_path_or_says_what_to_do(results: Path, tmp_path: Path, capsys) -> None:
    assert _cmd("claims", results, tmp_path) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "claims" / "index.html")
    assert _cmd("report-tiyn", results, tmp_path) == 2
    assert f'Did you mean "{SUITE}"?' in capsys.readouterr().err
    assert _cmd(SUITE, tmp_path / "nothing-here", tmp_path) == 2
    assert "bench run suite=" in capsys.readouterr().err
    assert not (tmp_path / "nothing-here").exists()  # a typo'd results_dir is not created


# --------------------------------------------------------------------------- the page as a browser draws it


def test_headless_chromium_draws_the_tables_and_figures(report: Path, tmp_path: Path) -> None:
    """Screenshot the page and check it is not blank and the figures' method colours are on screen.

    Text and tables are grey on white; only the figures use the method colours (tab10 blue and
    orange), so enough pixels of those colours mean the inlined PNGs were decoded and drawn.
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium binary on PATH (apt-get install -y chromium)")
    shot = tmp_path / "page.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400",
                    f"--screenshot={shot}", report.as_uri()],
                   check=True, capture_output=True, timeout=60)
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2400)
    assert len(image.getcolors(maxcolors=1 << 24)) > 200, "too few colours for tables, text and figures"
    pixels = np.asarray(image).astype(np.int16)
    not_white = (pixels < 245).any(axis=2).mean()
    assert not_white > 0.05, f"only {not_white:.1%} of the page is drawn"
    for name, rgb in (("blue", (31, 119, 180)), ("orange", (255, 127, 14))):
        near = (np.abs(pixels - np.array(rgb)).sum(axis=2) < 40).sum()
        assert near > 300, f"the figures' {name} method colour covers only {near} pixels: figures not drawn"


# --------------------------------------------------------------------------- many variants


def _eight_variants(results: Path, root: Path) -> Path:
    """A results dir where backprop ran on mlp in two settings (as two profiles leave it): 8 configs
    (4 learning rates x 2 weight decays) x 2 seeds in one, 2 configs x 2 seeds in the other."""
    store = Store(root)
    done = [r for r in _completed(results) if (r["task_label"], r["method"]) == ("mlp", "backprop")]
    n = 0
    for setting, lrs, decays in (("quick", (1e-3, 3e-3, 1e-2, 3e-2), (0.0, 0.01)), ("full", (1e-3, 3e-3), (0.01,))):
        for lr in lrs:
            for decay in decays:
                for template in done:
                    record = copy.deepcopy(template)
                    record["suite"], record["run_id"] = "eight", f"{n:016x}"
                    record["config"]["method_config"].update(lr=lr, weight_decay=decay)
                    if setting == "full":  # another model, budget and evaluation interval
                        record["config"].update(budget={"steps": 80}, eval_every=40)
                        record["config"]["task_config"]["mlp"]["hidden"] = [256, 256]
                    store.write("eight", record["run_id"], record)
                    n += 1
    return root


def test_eight_variants_keep_legible_figures(results: Path, tmp_path: Path) -> None:
    import warnings

    root = _eight_variants(results, tmp_path / "results")
    data = read_suite_data(root, "eight")
    quick, full = sorted(data.tasks, key=lambda t: "256" in t)
    assert quick.startswith("mlp (") and full.startswith("mlp (") and quick != full  # one figure set per setting
    methods = set(data.index.loc[data.index["task_label"] == quick, "method"])
    assert len(methods) == 8
    for label in methods:  # what differs inside the setting, under short names; never the setting itself
        assert label.startswith("backprop (lr=") and "weight_decay=" in label and "hidden" not in label, label
    assert len(set(data.index.loc[data.index["task_label"] == full, "method"])) == 2

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figures = suite_figures(data)
        report = build_report(root, "eight", tmp_path / "reports").read_text()
    assert not [w for w in caught if "constrained_layout" in str(w.message) or "collapsed" in str(w.message)]
    assert "Variants" in report and "weight_decay=0.01" in report

    for figure in figures.all():
        figure.canvas.draw()
        dpi = figure.dpi
        panels = [ax for ax in figure.axes if ax.get_visible()]
        for ax in panels:
            box = ax.get_window_extent()
            assert box.width / dpi >= 2.5 and box.height / dpi >= 1.5, (
                f"{figure.get_suptitle()!r}: a panel shrank to {box.width / dpi:.2f} x {box.height / dpi:.2f} in")
        legends = [*figure.legends, *(ax.get_legend() for ax in panels if ax.get_legend() is not None)]
        assert legends, f"{figure.get_suptitle()!r} has no legend"
        for legend in legends:
            for ax in panels:
                assert not legend.get_window_extent().overlaps(ax.get_window_extent()), (
                    f"{figure.get_suptitle()!r}: the legend covers a panel")


# --------------------------------------------------------------------------- one page per claim

CLAIM_NOTES = "Faster means fewer steps to 0.5 validation accuracy; the tiny suite stands in for the real one."
REFERENCE = "reference_method"


@pytest.fixture(scope="module")
def claim_results(results: Path, tmp_path_factory) -> Path:
    """The report's results plus a verdict in claims.py's schema whose provenance lists real records
    (backprop_replay vs backprop on mlp, seeds 0-1), its claim file, and a third method's records on
    the same task and budget (a reference)."""
    root = tmp_path_factory.mktemp("claim-results") / "results"
    shutil.copytree(results, root)
    store = Store(root)
    records = [r.to_dict() for r in store.records(SUITE) if r.completed and r.task_label == "mlp"]
    claim_file = root.parent / "tiny-claim.yaml"
    claim_file.write_text(f"id: tiny-claim\nnotes: {json.dumps(CLAIM_NOTES)}\n")
    cells = [{"role": "method" if r["method"] == "backprop_replay" else "baseline", "seed": r["seed"], "suite": SUITE,
              "run_id": r["run_id"], "method": r["method"], "status": "completed"} for r in records]
    for r in records:
        if r["method"] == "backprop":  # the same cells under another method name: a reference
            ref = copy.deepcopy(r)
            ref["method"], ref["run_id"] = REFERENCE, "e" + r["run_id"][1:]
            store.write(SUITE, ref["run_id"], ref)
    verdict = {
        "claim": "tiny-claim", "statement": "Replay-style backprop reaches 0.5 accuracy in fewer steps.",
        "source": "a test fixture", "verdict": "inconclusive", "quantity": "steps_to_target_ratio",
        "quantity_description": "baseline steps / method steps to the target", "relation": ">= 1",
        "estimate": 1.2, "interval": [0.7, 2.1], "confidence": 0.95, "interval_method": "log-t",
        "method": {"name": "backprop_replay", "config": {}}, "suite": SUITE, "task": "mlp",
        "baseline_used": {"name": "backprop", "config": {}}, "seeds_to_decide": 9,
        "reason": "the interval straddles 1; the baseline never reached the target in seeds [1]",
        "per_seed": [{"seed": 0, "method": 20, "baseline": 24, "value": 1.2, "low": 1.0, "high": 1.4}],
        "tuning": {"trials_per_side": 0, "seed": 10000, "reason": None},
        "robustness": {"label": "fragile", "reason": "refuted at x0.5 budget",
                       "verdicts": {"x1": "inconclusive", "x0.5": "refuted", "x2": "inconclusive",
                                    "on vit": "inconclusive"},
                       "estimates": {"x1": {"estimate": 1.2, "interval": [0.7, 2.1]},
                                     "x0.5": {"estimate": 0.41, "interval": [0.2, 0.8]},
                                     "x2": {"estimate": 1.5, "interval": [0.9, 2.6]},
                                     "on vit": {"estimate": None, "interval": None}},
                       "budget": {"steps": 40}},
        "verified_at": "2026-11-30T05:00:00+00:00",
        "provenance": {"claim_file": str(claim_file), "cells": cells, "seeds": [0, 1], "harness_commit": "abc123",
                       "design": {"target": 0.5, "profile": None}, "method": {"budget": {"steps": 40.0}}},
    }
    (root / "claims" / "tiny-claim.json").write_text(json.dumps(verdict))
    return root


@pytest.fixture(scope="module")
def claims_report(claim_results: Path, tmp_path_factory) -> Path:
    return build_report(claim_results, "claims", tmp_path_factory.mktemp("claims-report"))


def test_each_claim_gets_a_page_linked_from_the_index(claims_report: Path) -> None:
    index = claims_report.read_text()
    pages = sorted(p.name for p in claims_report.parent.glob("claim-*.html"))
    assert pages == ["claim-ff-memory.html", "claim-lm-epochs.html", "claim-local-learning-vit-speed.html",
                     "claim-tiny-claim.html"]  # the unreadable verdict gets a row, not a page
    for page in pages:
        assert f'href="{page}"' in index
        assert f"({page.removesuffix('.html')}.md)" in (claims_report.parent / "report.md").read_text()


def _data_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_a_claim_page_shows_operationalisation_verdict_robustness_caveats_curves_and_references(
        claims_report: Path, claim_results: Path) -> None:
    from PIL import Image

    page = (claims_report.parent / "claim-tiny-claim.html").read_text()
    for text in ("Replay-style backprop reaches 0.5 accuracy", CLAIM_NOTES, "steps_to_target_ratio",
                 'class="verdict verdict-inconclusive">inconclusive', "[0.7, 2.1] (95%, log-t)",
                 'class="verdict verdict-fragile">fragile', "x0.5 budget", 'verdict-refuted">refuted',
                 "0.41 [0.2, 0.8]", "on vit", "the claim is worded generally",
                 "Neither side was tuned", "never reached the target in seeds [1]", "About 9 seeds would decide it",
                 "method: backprop_replay", "baseline: backprop", REFERENCE, "reference (not in the verdict)"):
        assert text in page, text
    (png,) = _data_pngs(page)  # the curves figure, and it decodes
    assert Image.open(io.BytesIO(png)).size[0] > 300
    external = re.findall(r"""(?:src|href)\s*=\s*["']?(?!data:|#)([^"'\s>]+)""", page, flags=re.I)
    assert external == []
    # the figure draws exactly the verdict's records: 2 sides x 2 seeds, 2 means, the target line
    from harness.report.claims_page import claim_evidence
    from harness.report.figures import claim_curves, method_colours

    verdict = json.loads((claim_results / "claims" / "tiny-claim.json").read_text())
    evidence = claim_evidence(verdict, Store(claim_results, read_only=True).read_curves())
    assert set(evidence.points["run_id"]) == {c["run_id"] for c in verdict["provenance"]["cells"]}
    assert evidence.x == "steps" and evidence.target == 0.5
    figure = claim_curves(evidence.points, evidence.x, evidence.xlabel, evidence.panels,
                          method_colours(list(evidence.points["side"])), evidence.title, evidence.target)
    (ax,) = figure.axes
    assert len(ax.lines) == 7 and ax.get_xlabel() == "training steps (updates)"
    # a verdict without provenance still gets a page, saying why it has no curves
    old = (claims_report.parent / "claim-ff-memory.html").read_text()
    assert "lists no records" in old and "Robustness was not checked" in old


def test_headless_chromium_draws_every_claim_page(claims_report: Path, tmp_path: Path) -> None:
    """Each claim page as a browser draws it: the verdict text is in the rendered DOM, every inlined
    image decodes, and the page with curves shows the figure's side colours on screen."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium binary on PATH (apt-get install -y chromium)")
    from PIL import Image

    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    for page in sorted(claims_report.parent.glob("claim-*.html")):
        html = page.read_text()
        verdict = re.search(r'class="verdict verdict-[a-z-]+">([a-z ]+)<', html).group(1)
        dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], check=True, capture_output=True, text=True,
                             timeout=60).stdout
        assert f">{verdict}<" in dom and "Caveats" in dom, page.name
        for png in _data_pngs(html):
            Image.open(io.BytesIO(png)).verify()  # a broken image raises here
        if not _data_pngs(html):
            continue
        shot = tmp_path / f"{page.stem}.png"
        subprocess.run([*flags, "--window-size=1280,3000", f"--screenshot={shot}", page.as_uri()],
                       check=True, capture_output=True, timeout=60)
        pixels = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
        for name, rgb in (("blue", (31, 119, 180)), ("orange", (255, 127, 14))):
            near = (np.abs(pixels - np.array(rgb)).sum(axis=2) < 40).sum()
            assert near > 200, f"{page.name}: the figure's {name} side colour covers only {near} pixels"


def test_a_continual_claim_gets_a_panel_per_experience_on_its_budget_axis() -> None:
    """Forgetting is seen per experience: the mean panel, then one per experience, against the claim's budget
    kind (examples here), and only the verdict's own records (another suite's run with the same id is left out)."""
    import pandas as pd

    from harness.report.claims_page import claim_evidence

    rows = [{"suite": suite, "run_id": run, "method": method, "seed": 0, "steps": step, "examples": 64.0 * step,
             "val_metric": 0.5, "val_accuracy_0": 1.0 - step / 100, "val_accuracy_1": step / 100}
            for suite, run, method in (("continual", "a" * 16, "active_inference"), ("continual", "b" * 16, "backprop"),
                                       ("other", "a" * 16, "backprop"))
            for step in (10, 20)]
    verdict = {"claim": "c", "suite": "continual",
               "provenance": {"cells": [{"role": "method", "run_id": "a" * 16, "suite": "continual",
                                         "method": "active_inference"},
                                        {"role": "baseline", "run_id": "b" * 16, "suite": "continual",
                                         "method": "backprop"},
                                        {"role": "tuning", "run_id": "c" * 16, "suite": "continual",
                                         "method": "backprop"}],
                              "method": {"budget": {"examples": 1280.0}}, "design": {"target": None}}}
    evidence = claim_evidence(verdict, pd.DataFrame(rows))
    assert evidence.x == "examples" and evidence.target is None
    assert list(evidence.panels) == ["val_metric", "val_accuracy_0", "val_accuracy_1"]
    assert len(evidence.points) == 4 and set(evidence.points["side"]) == {"method: active_inference",
                                                                        "baseline: backprop"}


def test_every_verdict_and_robustness_label_has_its_colour() -> None:
    """A verdict shown without its class's colour reads as plain text: every label the engine
    can write (harness/stats.py VERDICTS, the robustness labels) has a rule in the page's CSS."""
    from harness.report.document import _CSS, slug
    from harness.stats import VERDICTS

    for label in (*VERDICTS, "robust", "fragile", "unchecked"):
        assert f".verdict-{slug(label)} {{" in _CSS, label
