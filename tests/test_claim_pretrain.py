"""A fine-tuning claim's robustness check scales the fine-tuning budget, never the checkpoint
it starts from: every budget's cells start from the pretraining cell of the claim's own budget."""

from __future__ import annotations

from pathlib import Path

from harness import claims as claims_mod
from harness.claims import CLAIMS_DIR, ClaimCells, load_claim
from harness.store import Store


def test_scaled_budgets_fine_tune_from_the_same_checkpoint(tmp_path: Path, monkeypatch) -> None:
    launched = []

    def plan_only(cells, *args, **kwargs):  # nothing trains: the planned cells are what is checked
        launched.extend(cells)
        return {"ran": 0}

    monkeypatch.setattr(claims_mod, "launch", plan_only)
    path = CLAIMS_DIR / "active-inference-lm-epochs.yaml"
    claim = load_claim(path)
    base = claims_mod.claim_budget(claim)
    claims_mod.prepare([(claim, path)], ClaimCells(Store(tmp_path / "results"), [("threads", 1)]))
    fine_tuning = [cell for cell in launched if cell.pretrain is not None]
    budgets = {cell.budget.value for cell in fine_tuning}
    (kind, value), = base.items()
    assert budgets == {value * 0.5, value, value * 2.0}, "the tuning trials of x0.5, x1 and x2 are planned"
    assert {(c.pretrain.budget.kind, c.pretrain.budget.value) for c in fine_tuning} == {(kind, value)}
    # one checkpoint per seed, whatever the fine-tuning budget
    per_seed = {}
    for cell in fine_tuning:
        per_seed.setdefault(cell.seed, set()).add(cell.pretrain.run_id)
    assert all(len(ids) == 1 for ids in per_seed.values()), per_seed
