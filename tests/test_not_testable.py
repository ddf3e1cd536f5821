"""A claim no run here can test says so in its verdict, with its measured proxy beside it; the
stability proxy (loss_spike_rate) counts spikes and divergence on the training-loss curve."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from harness.claims import ClaimCells, load_claim, verify
from harness.quantities import QUANTITIES, Missing, read
from harness.store import Store


def _curve(*losses: float | None) -> SimpleNamespace:
    return SimpleNamespace(method="m", seed=0, curve=[{"train_loss": x} for x in losses], status="completed")


def test_spike_rate_counts_jumps_above_the_lowest_loss_so_far() -> None:
    spikes = QUANTITIES["loss_spike_rate"].read
    assert spikes(_curve(None, 2.0, 1.0, 0.8, 0.7), None).value == 0.0
    assert spikes(_curve(None, 2.0, 1.0, 1.6, 0.9, 0.5), None).value == pytest.approx(1 / 4)  # 1.6 > 1.5 x 1.0
    assert spikes(_curve(2.0, float("nan"), 1.0), None).value == 1.0
    with pytest.raises(Missing, match="did not train"):  # flat: no spike, and no evidence either
        spikes(_curve(2.4, 2.3, 2.28, 2.29), None)
    with pytest.raises(Missing, match="two or more"):
        spikes(_curve(None, 1.0), None)
    diverged = SimpleNamespace(**{**vars(_curve(2.0)), "status": "diverged"})
    assert read(QUANTITIES["loss_spike_rate"], diverged, None).value == 1.0


def test_a_not_testable_claim_keeps_its_proxy_beside_the_verdict(tmp_path: Path) -> None:
    body = {"id": "huge", "source": "test", "statement": "Trains stably beyond 100B parameters.",
            "method": {"name": "backprop"}, "suite": "vision-vit", "task": "mlp", "seeds": 3,
            "budget": {"steps": 60}, "overrides": {"profile": "quick", "threads": 1},
            "quantity": "loss_spike_rate", "relation": "<= 0.5",
            "not_testable": "no machine here holds a 100B-parameter model"}
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(body))
    document = verify(load_claim(path), ClaimCells(Store(tmp_path / "results"), []), path, robustness=False)
    assert document["verdict"] == "not testable"
    assert "100B-parameter" in document["reason"] and "loss_spike_rate" in document["reason"]
    proxy = document["proxy"]
    assert proxy["verdict"] in ("supported", "refuted", "inconclusive"), proxy
    assert [0 <= row["value"] <= 1 for row in document["per_seed"]] == [True] * 3


def test_seeds_that_all_read_zero_spikes_are_not_a_zero_width_support() -> None:
    """A rate counted over k intervals moves in steps of 1/k: three runs without a spike in 10 intervals
    each cannot support 'rate <= 0.05' (a rate of 1 in 20 would read 0 as often as not); over 200
    intervals they can."""
    from harness.claims import _verdict
    from harness.quantities import resolution
    from harness.stats import Relation

    quantity = QUANTITIES["loss_spike_rate"]
    for intervals, expected in ((10, "inconclusive"), (200, "supported")):
        runs = [SimpleNamespace(**{**vars(_curve(*[2.0 - i / (2 * intervals) for i in range(intervals + 1)])),
                                   "completed": True}) for _ in range(3)]
        step, shared, note = resolution(quantity, runs, [])
        assert step == pytest.approx(1 / intervals) and f"{intervals} evaluation intervals" in note
        rows = [{"seed": s, "method": 0.0, "baseline": None, "value": 0.0, "low": 0.0, "high": 0.0} for s in range(3)]
        document = _verdict(rows, quantity, Relation.parse("<= 0.05"), 1, 0.05, step, shared, note)
        assert document["verdict"] == expected, document
