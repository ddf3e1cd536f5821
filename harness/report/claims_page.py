"""The claims part of a report: the verdicts table, and one page per claim.

Verdicts are read from results/claims/*.json (written by `bench claims verify`); an
unreadable file becomes a row that says so instead of disappearing.

A claim's own page (`claim_sections`, written as claims/claim-<id>.html by `bench report
claims`) shows, in order: the statement and what was compared; how the claim file turns the
words into a measurement and why (its `notes`, read from the claim file the verdict names);
the verdict with its interval and every seed; the robustness label with the verdicts at x0.5,
x1 and x2 the budget; the caveats (tuning, divergence, targets not reached, seeds that would
decide it); the curves behind it, drawn from exactly the records the verdict file lists (per
side, per seed, against the claim's budget axis, with the target line where the claim has
one); and the other methods recorded on the same suite, task and budget, for reference only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from harness.report.document import Block, CellValue, Section, Styled, Table, Text, slug
from harness.report.format import MISSING, count, missing, plain, short
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


# ------------------------------------------------------------------------- one page per claim

CLAIM_PAGE_PREFIX = "claim-"
SIDES = ("method", "baseline")  # the roles of the verdict's records that the page draws (not tuning trials)
_AXIS_NAMES = {"steps": "training steps (updates)", "examples": "training examples seen",
               "forward_equivalents": "forward-equivalents (full-model forward passes)",
               "seconds": "wall seconds in training steps", "env_steps": "environment steps", "flops": "FLOPs",
               "joules": "joules in training steps"}


def claim_page_name(claim_id: str) -> str:
    """The file stem of a claim's page: `claim-active-inference-forgetting`."""
    return CLAIM_PAGE_PREFIX + slug(str(claim_id))


def _provenance(v: Mapping[str, Any]) -> Mapping[str, Any]:
    provenance = v.get("provenance")
    return provenance if isinstance(provenance, Mapping) else {}


def claim_notes(v: Mapping[str, Any], claims_dir: Path | None = None) -> str | None:
    """The claim file's `notes` (how the words became a measurement, and why), or None when the
    file the verdict names (or claims_dir/<id>.yaml) cannot be read."""
    candidates = [Path(str(_provenance(v)["claim_file"]))] if _provenance(v).get("claim_file") else []
    candidates += [claims_dir / f"{v.get('claim')}.yaml"] if claims_dir is not None else []
    for path in candidates:
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(raw, Mapping):
            return str(raw.get("notes") or "") or None
    return None


def _budget(v: Mapping[str, Any]) -> dict[str, float]:
    """The claim's budget at x1: {kind: value} from the verdict's resolved method side."""
    for source in (_provenance(v).get("method"), v.get("robustness")):
        if isinstance(source, Mapping) and isinstance(source.get("budget"), Mapping) and source["budget"]:
            return dict(source["budget"])
    return {}


def _budget_text(budget: Mapping[str, Any]) -> str:
    """`examples 22000` (budgets are counts: written in full, not as 2.2e+04)."""
    return ", ".join(f"{k} {x:.12g}" if isinstance(x, (int, float)) else f"{k} {x}" for k, x in budget.items())


@dataclass(frozen=True)
class ClaimEvidence:
    """What a claim's curves figure draws: the verdict's own records, per side and seed."""

    points: pd.DataFrame  # curve rows with `side` ("method: NAME" / "baseline: NAME") and `run_id`
    x: str
    xlabel: str
    panels: dict[str, str]  # curve column -> axis label
    target: float | None
    title: str


def _side_cells(v: Mapping[str, Any]) -> dict[str, str]:
    """run_id -> `role: method name` for the records the verdict used for its two sides."""
    cells = _provenance(v).get("cells") or []
    return {str(c["run_id"]): f"{c.get('role')}: {c.get('method')}" for c in cells
            if isinstance(c, Mapping) and c.get("role") in SIDES and c.get("run_id") and c.get("suite") == v.get("suite")}


def _rows_of(table: pd.DataFrame, v: Mapping[str, Any], run_ids: list[str]) -> pd.DataFrame:
    """The rows of the claim's suite with these run ids (a run id is unique within a suite only)."""
    if "run_id" not in table or "suite" not in table:
        return table.iloc[0:0]
    return table[(table["suite"] == v.get("suite")) & table["run_id"].isin(run_ids)]


def claim_evidence(v: Mapping[str, Any], curves: pd.DataFrame) -> ClaimEvidence | str:
    """The curves behind the verdict, or why there are none (a sentence for the page)."""
    sides = _side_cells(v)
    if not sides:
        return "The verdict file lists no records (verified before verdicts held their provenance, or nothing ran)."
    points = _rows_of(curves, v, list(sides)).copy()
    if points.empty or "val_metric" not in points or points["val_metric"].isna().all():
        return f"None of the {count(len(sides), 'record')} the verdict lists has a validation curve in the results table."
    points["side"] = points["run_id"].map(sides)
    kind = next(iter(_budget(v)), "steps")
    x = kind if kind in points and points[kind].notna().any() else "steps"
    metric = "validation metric"
    panels = {"val_metric": metric}
    experiences = sorted((c for c in points.columns if c.startswith("val_accuracy_") and c[13:].isdigit()
                          and points[c].notna().any()), key=lambda c: int(c[13:]))
    if experiences:  # a continual record: the mean over experiences, then each experience's own accuracy
        panels = {"val_metric": "validation accuracy, mean over experiences",
                  **{c: f"validation accuracy on experience {c[13:]}" for c in experiences}}
    target = _provenance(v).get("design", {}).get("target") if isinstance(_provenance(v).get("design"), Mapping) \
        else None
    title = f"{v.get('claim')}: the {count(len(sides), 'record')} behind the verdict"
    return ClaimEvidence(points, x, _AXIS_NAMES.get(x, x), panels, target, title)


def _values(index: pd.DataFrame, rows: pd.DataFrame, column: str) -> str:
    if column not in index:
        return MISSING
    values = pd.to_numeric(rows[column], errors="coerce")
    known = values.dropna()
    if known.empty:
        return MISSING
    seeds = ", ".join(f"s{plain(s)}: {short(x)}" for s, x in sorted(zip(rows["seed"], values), key=lambda t: t[0]))
    spread = f" ± {known.std():.4g}" if len(known) > 1 else ""
    return f"{known.mean():.4g}{spread} ({seeds})"


_SIDE_COLUMNS = (("final.test.accuracy", "test metric of the selected state"),
                 ("continual.average_accuracy", "average accuracy after the last experience"),
                 ("continual.forgetting", "forgetting"))


def sides_table(v: Mapping[str, Any], index: pd.DataFrame) -> Block:
    """Both sides' records and every other method on the same suite, task, budget and seeds (references)."""
    sides = _side_cells(v)
    used = _rows_of(index, v, list(sides))
    if used.empty:
        return Text("No records to compare: the verdict file lists none, or the results table lacks them.")
    budget = _budget(v)
    same = index[(index["suite"] == v.get("suite")) & (index["task_label"] == v.get("task"))
                 & (index["status"] == "completed") & ~index["method"].isin(list(used["method"]))]
    if budget and "budget.kind" in index:
        (kind, value), = list(budget.items())[:1]
        same = same[(same["budget.kind"] == kind) & (pd.to_numeric(same["budget.value"]) == float(value))]
    if "config.batch_size" in index and not used.empty:
        same = same[same["config.batch_size"].isin(list(used["config.batch_size"]))]
    seeds = set(used["seed"])
    same = same[same["seed"].isin(seeds)]
    columns = [(c, name) for c, name in _SIDE_COLUMNS if c in index and pd.to_numeric(
        pd.concat([used[c], same[c]]), errors="coerce").notna().any()]
    rows = []
    for role, frame in (("side of the verdict", used), ("reference (not in the verdict)", same)):
        for method, group in frame.groupby("method", sort=True):
            label = next((s for s in sides.values() if s.endswith(f": {method}")), str(method))
            rows.append((label if role.startswith("side") else str(method), role, str(group["seed"].nunique()),
                         *(_values(index, group, c) for c, _ in columns)))
    return Table(("method", "role", "seeds", *(name for _, name in columns)), tuple(rows))


def _robustness_table(v: Mapping[str, Any]) -> list[Block]:
    robust = v.get("robustness")
    if not isinstance(robust, Mapping):
        return [Text("Robustness was not checked (verified before the check existed): verify again.")]
    verdicts = robust.get("verdicts") or {}
    blocks: list[Block] = [Table(("label", "why"), ((Styled(str(robust.get("label")), str(robust.get("label"))),
                                                     str(robust.get("reason") or MISSING)),))]
    if verdicts:
        budget = robust.get("budget") or {}
        where = _budget_text(budget)
        estimates = robust.get("estimates") or {}
        rows = [tuple(Styled(str(x), str(x)) for x in verdicts.values())]
        if estimates:  # verdicts written before the estimates were kept have none
            rows.append(tuple(f"{short((estimates.get(name) or {}).get('estimate'))} "
                              f"{_interval(estimates.get(name) or {})}" for name in verdicts))
        blocks.append(Table(tuple(f"{name} budget" if name.startswith("x") else name for name in verdicts),
                            tuple(rows)))
        elsewhere = [name for name in verdicts if not name.startswith("x")]
        blocks.append(Text(f"The claim decided again at x0.5 and x2 its budget ({where or 'the suite budget'} at x1)"
                           + (f" and {', '.join(elsewhere)} (the claim is worded generally)" if elsewhere else "")
                           + ", with every cell those need trained; a fragile `supported` is never the headline."))
    return blocks


def _cost(v: Mapping[str, Any]) -> str:
    """What the verdict's cells took (tuning and every budget), as the verdict file counts it."""
    cost = v.get("cost")
    if not isinstance(cost, Mapping) or not isinstance(cost.get("cell_seconds"), (int, float)):
        return ""
    return (f" It read {cost.get('cells')} cells (tuning trials and every budget), whose recorded wall times sum "
            f"to {cost['cell_seconds'] / 3600:.2f} h.")


def caveats(v: Mapping[str, Any]) -> list[str]:
    """What a reader must know before quoting the verdict, each in one sentence."""
    out = []
    robust = v.get("robustness")
    if isinstance(robust, Mapping) and robust.get("label") == "fragile":
        out.append(f"Fragile: {robust.get('reason')}.")
    tuning = v.get("tuning")
    if isinstance(tuning, Mapping):
        trials = tuning.get("trials_per_side") or 0
        keys = tuning.get("keys") if isinstance(tuning.get("keys"), Mapping) else {}
        over = " and ".join(f"the {side}'s {key}" for side, key in keys.items()) or "the learning rate"
        out.append(tuning.get("reason") or (f"Both sides tuned with {trials} trials each ({over}) on seed "
                                            f"{tuning.get('seed')} (chosen by {tuning.get('chosen_by')})."
                                            if trials else "Neither side was tuned: both ran at their configured "
                                                           "settings (the claim names no search space)."))
    diverged = v.get("diverged")
    if isinstance(diverged, Mapping) and diverged.get("seeds"):
        out.append(f"The method diverged in seeds {diverged['seeds']} of {diverged.get('of')}.")
    if v.get("seeds_to_decide"):
        out.append(f"About {v['seeds_to_decide']} seeds would decide it.")
    reason = str(v.get("reason") or "")
    out += [f"From the verdict: {part.strip()}." for part in reason.split("; ")[1:] if part.strip()]
    return out or ["None recorded in the verdict file."]


def claim_sections(v: Mapping[str, Any], notes: str | None, curves_block: Block, sides: Block) -> list[Section]:
    """A claim's page: statement, operationalisation, verdict, robustness, caveats, curves, references."""
    verdict = str(v.get("verdict"))
    design = _provenance(v).get("design") if isinstance(_provenance(v).get("design"), Mapping) else {}
    measured = (f"Quantity `{v.get('quantity')}` ({v.get('quantity_description') or 'no description'}), expected "
                f"{v.get('relation') or MISSING}; {short(len(_provenance(v).get('seeds') or []))} seeds; budget "
                + (_budget_text(_budget(v)) or MISSING)
                + (f"; profile {design.get('profile')}" if design.get("profile") else "") + ".")
    seeds = tuple((short(e.get("seed")), *(short(e.get(k)) for k in ("method", "baseline", "value", "low", "high")))
                  for e in v.get("per_seed") or [] if isinstance(e, Mapping))
    return [
        Section("Claim", (Text(_statement(v)),)),
        Section("How it is operationalised, and why", (
            Text(measured), Text(notes or "The claim file's notes could not be read (the file the verdict names is "
                                 "gone or unreadable)."))),
        Section("Verdict", (
            Table(("verdict", "estimate", "interval", "reason / what it needs"),
                  ((Styled(verdict, verdict), _estimate(v), _interval(v), _reason(v)),)),
            Table(("seed", "method", "baseline", "value", "low", "high"), seeds) if seeds
            else Text("No per-seed values (the verdict was not comparable)."),
            Text(f"Verified {v.get('verified_at') or MISSING}; harness commit "
                 f"{_provenance(v).get('harness_commit') or MISSING}." + _cost(v)))),
        Section("Robustness", tuple(_robustness_table(v))),
        Section("Caveats", tuple(Text(f"- {c}") for c in caveats(v))),
        Section("Curves behind the verdict", (curves_block,)),
        Section("Both sides and the references", (
            sides, Text("Mean ± sample std over seeds, then every seed. References are other methods recorded on the "
                        "same suite, task, budget, batch size and seeds; they are shown for scale and are no part of "
                        "the verdict."))),
    ]
