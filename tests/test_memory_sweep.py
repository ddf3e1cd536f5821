"""The depth sweep reads simulated peaks (recomputation counted), and the local methods' memory
grows more slowly with depth than checkpointed backprop's (the least-memory fp32 baseline)."""

from __future__ import annotations

from harness.memory_sweep import VARIANTS, SweepConfig, ratios, sweep, table, ten_x_depth

CHECKPOINT_INPUTS = 64 * 16 * 32 * 4  # one block's input kept by checkpointing: batch x tokens x dim, float32


def test_local_methods_gain_on_backprop_with_depth() -> None:
    cfg = SweepConfig(task="digits", patch_size=2, dim=32, heads=2, batch_size=64, depths=(2, 6))
    variants = tuple(v for v in VARIANTS if v[0] in ("forward_only", "local_learning", "backprop checkpoint"))
    peaks = sweep(cfg, variants)
    curve = ratios(peaks)
    for method in ("forward_only", "local_learning"):
        assert curve[6][method] > curve[2][method] > 0.5
        grew_local = peaks[6][method] - peaks[2][method]
        assert grew_local < peaks[6]["backprop checkpoint"] - peaks[2]["backprop checkpoint"]
    # Checkpointing keeps every block's input: four more blocks, at least four more inputs
    assert 4 * CHECKPOINT_INPUTS < peaks[6]["backprop checkpoint"] - peaks[2]["backprop checkpoint"]
    assert "| 6 |" in table(cfg, peaks)


def test_ten_x_depth_is_the_first_depth_reaching_the_factor() -> None:
    curve = {4: {"m": 2.0}, 8: {"m": 9.9}, 16: {"m": 10.0}, 32: {"m": 20.0}}
    assert ten_x_depth(curve, "m") == 16
    assert ten_x_depth({4: {"m": 3.0}}, "m") is None
