"""Shift evaluation: shifted test sets are what they say, and records carry clean and shifted accuracy."""

from __future__ import annotations

import pytest
import torch

from harness.config import resolve
from harness.plan import plan
from harness.runner import run_cell
from suites.tasks.image_shifts import gaussian_noise, rotate, shifted_sets, translate


def test_zero_severity_shifts_change_nothing() -> None:
    images = torch.rand(4, 1, 8, 8)
    assert torch.equal(translate(images, 0), images)
    assert torch.allclose(rotate(images, 0.0), images, atol=1e-5)
    assert torch.equal(gaussian_noise(images, 0.0, torch.Generator().manual_seed(0)), images)


def test_translation_moves_pixels_and_fills_background() -> None:
    images = torch.zeros(1, 1, 4, 4)
    images[0, 0, 0, 0] = 1.0
    moved = translate(images, 1)
    assert moved[0, 0, 1, 1] == 1.0 and moved.sum() == 1.0


def test_rotation_by_90_degrees_turns_the_image() -> None:
    images = torch.zeros(1, 1, 5, 5)
    images[0, 0, 2, 4] = 1.0  # right of centre
    turned = rotate(images, 90.0)
    assert turned[0, 0].argmax().item() != images[0, 0].argmax().item()
    assert turned.sum().item() == pytest.approx(1.0, abs=1e-4)


def test_noise_is_the_same_for_every_caller() -> None:
    images = torch.rand(3, 1, 8, 8)
    first = shifted_sets(images, (0.2,), (), (), seed=0)["noise@0.2"]
    second = shifted_sets(images, (0.2,), (), (), seed=0)["noise@0.2"]
    assert torch.equal(first, second)


def test_vision_vit_records_clean_and_shifted_accuracy(tiny_suite) -> None:
    assert resolve(["suite=vision-vit"]).shift.enabled
    (cell,) = plan(resolve([f"suite={tiny_suite(steps=60, eval_every=30)}", "shift.enabled=true",
                            "shift.translation=[1]"]))
    shift = run_cell(cell)["final"]["shift"]
    assert set(shift["shifted"]) == {"noise@0.1", "noise@0.3", "rotation@15", "rotation@30", "translation@1"}
    assert shift["shifted"]["noise@0.3"] < shift["clean"]  # strong noise hurts
    assert shift["gap"] == pytest.approx(shift["clean"] - shift["mean_shifted"])


def _with_shift(clean: float, shifted: float):
    import json
    from pathlib import Path

    from harness.record import parse_record

    record = json.loads((Path(__file__).parent / "data" / "record_supervised.json").read_text())
    record["config"]["shift"] = {"enabled": True}
    record["final"]["test"]["accuracy"] = clean
    record["final"]["shift"] = {"clean": clean, "shifted": {"noise@0.3": shifted}, "mean_shifted": shifted,
                                "gap": clean - shifted, "reason": None}
    return parse_record(record)


def test_shift_retention_cannot_be_bought_by_being_worse_on_clean_data() -> None:
    """A method at 0.50 clean / 0.47 shifted has the smaller gap (0.03 vs 0.05) next to one at 0.90 / 0.85,
    so the gap calls it more robust; it keeps 94.0% of its accuracy against 94.4%, so the ratio does not."""
    from harness.quantities import QUANTITIES

    weak, strong = _with_shift(0.50, 0.47), _with_shift(0.90, 0.85)
    gap, retention = QUANTITIES["shift_gap"], QUANTITIES["shift_retention_gap"]
    assert gap.read(weak, None).value < gap.read(strong, None).value  # "more robust" by the gap
    assert retention.read(weak, None).value < retention.read(strong, None).value  # less robust by the ratio
    assert retention.read(weak, None).value == pytest.approx(0.94)


def test_shift_test_subset_enters_the_run_id_only_when_set() -> None:
    """Run ids made before shift.test_subset existed (whole test set) stay the same, so their records resume."""
    whole, subset = (plan(resolve(["suite=vision-vit", "method=backprop", "task=mlp", f"shift.test_subset={n}"]))[0]
                     for n in ("null", 2000))
    assert "test_subset" not in whole.identity()["shift"]
    assert subset.identity()["shift"]["test_subset"] == 2000 and subset.run_id != whole.run_id
