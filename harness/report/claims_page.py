"""The claims section of a report: every verdict file, coloured, with its interval and seeds.

Verdicts are read from results/claims/*.json (written by `bench claims verify`); an
unreadable file becomes a row that says so instead of disappearing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from harness.report.document import CellValue, Section, Styled, Table, Text
from harness.report.format import MISSING, count, missing, short
from harness.store import Store

CLAIMS_TARGET = "claims"



def load_verdicts(results_dir: Path) -> list[dict[str, Any]]:
    """Every verdict file of the store, by claim id; an unreadable file becomes a row that says
    so (verdict "unreadable") rather than disappearing from the report."""
    verdicts = []
    for claim_id, verdict in Store(results_dir).read_verdicts().items():
        if not isinstance(verdict, dict):
            verdict = {"verdict": "unreadable", "reason": verdict}
        verdict.setdefault("claim", claim_id)
        verdicts.append(verdict)
    return sorted(verdicts, key=lambda v: str(v["claim"]))


def _estimate(v: Mapping[str, Any]) -> str:
    """`speedup = 1.3; expected >= 4`, or "—" when the file states neither quantity nor relation."""
    if not v.get("quantity") and not v.get("relation") and missing(v.get("estimate")):
        return MISSING
    expected = f"; expected {v['relation']}" if v.get("relation") else ""
    return f"{v.get('quantity') or 'estimate'} = {short(v.get('estimate'))}{expected}"


def _interval(v: Mapping[str, Any]) -> str:
    interval = v.get("interval")
    if not isinstance(interval, (list, tuple)) or len(interval) != 2:
        return MISSING
    how = [f"{v['confidence']:.0%}"] if isinstance(v.get("confidence"), (int, float)) else []
    how += [str(v["interval_method"])] if v.get("interval_method") else []
    return f"[{short(interval[0])}, {short(interval[1])}]" + (f" ({', '.join(how)})" if how else "")


def _per_seed(v: Mapping[str, Any]) -> str:
    """Every seed's numbers as the verdict file gives them, whatever keys it uses."""
    entries = v.get("per_seed") or []
    return "\n".join(
        f"seed {short(e.get('seed'))}: " + ", ".join(f"{k} {short(x)}" for k, x in e.items() if k != "seed")
        if isinstance(e, Mapping) else str(e) for e in entries) or MISSING


CLAIM_COLUMNS = ("claim", "statement", "verdict", "estimate", "interval", "reason / what it needs", "per seed",
                 "verified")


def _side(side: Any) -> str:
    """A compared method as the verdict names it: `backprop (lr=0.003, optimizer=adamw)`."""
    if not isinstance(side, Mapping):
        return str(side)
    config = side.get("config") or {}
    settings = ", ".join(f"{k}={short(v)}" for k, v in sorted(config.items()))
    return f"{side.get('name', '?')}" + (f" ({settings})" if settings else "")


def _statement(v: Mapping[str, Any]) -> str:
    """The claim in words, where it comes from, and what was compared with what, where."""
    parts = [str(v.get("statement") or MISSING)]
    if v.get("source"):
        parts.append(f"source: {v['source']}")
    if v.get("method"):
        baseline = v.get("baseline_used")
        versus = f" vs {_side(baseline)}" if baseline else ""
        where = "/".join(str(v[k]) for k in ("suite", "task") if v.get(k))
        parts.append(f"compared: {_side(v['method'])}{versus}" + (f" on {where}" if where else ""))
    return "\n".join(parts)


def _reason(v: Mapping[str, Any]) -> str:
    reason = str(v.get("reason") or MISSING)
    needed = v.get("seeds_to_decide")
    return reason + (f"\nabout {needed} seeds would decide it" if needed else "")


def _robustness(v: Mapping[str, Any]) -> str:
    """The robustness label beside the verdict: robust, or fragile with the budget that flips it."""
    robust = v.get("robustness")
    if not isinstance(robust, Mapping):
        return "robustness not checked"
    label = str(robust.get("label"))
    return label if label != "fragile" else f"fragile: {robust.get('reason')}"


def _claim_row(v: Mapping[str, Any]) -> tuple[CellValue, ...]:
    verdict = str(v.get("verdict"))
    return (str(v["claim"]), _statement(v), Styled(f"{verdict}\n{_robustness(v)}", verdict), _estimate(v),
            _interval(v), _reason(v),
            _per_seed(v), str(v.get("verified_at") or MISSING))


def claims_section(results_dir: Path, suite: str | None = None) -> Section:
    """Every verdict on file (or, in a suite's report, those on that suite), coloured, with
    the interval and every seed behind it."""
    verdicts = load_verdicts(results_dir)
    if not verdicts:
        return Section("Claims", (Text("No claim verified yet: run `bench claims verify all`."),))
    shown = [v for v in verdicts if suite is None or v.get("suite") in (None, suite)]
    others = len(verdicts) - len(shown)
    elsewhere = f" {others} more on other suites: `bench report {CLAIMS_TARGET}`." if others else ""
    if not shown:
        return Section("Claims", (Text(f"No claim verdict on suite `{suite}`.{elsewhere}"),))
    counts = pd.Series([str(v.get("verdict")) for v in shown]).value_counts()
    summary = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    return Section("Claims", (
        Text(f"{count(len(shown), 'claim verdict')} from `{results_dir / 'claims'}`: {summary}.{elsewhere}"),
        Table(CLAIM_COLUMNS, tuple(_claim_row(v) for v in shown))))
