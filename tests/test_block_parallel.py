"""Block-parallel training is the sequential method's learning, spread over processes, and the
pipeline's time is what its stage times predict (harness/block_parallel.py)."""

from __future__ import annotations

import pytest
import torch

from harness.block_parallel import (ParallelConfig, build, check_staged, pipeline_seconds, run_distributed,
                                    run_sequential, split_blocks)

TINY_VIT = {"model": "vit", "vit": {"patch_size": 4, "dim": 16, "depth": 3, "heads": 2}}


def _owned(name: str, first: int, last: int, blocks: int) -> bool:
    """Whether parameter `name` belongs to the stage running blocks[first:last]."""
    if name.startswith("stem."):
        return first == 0
    if name.startswith("head."):
        return last == blocks
    return first <= int(name.split(".")[1]) < last


@pytest.mark.parametrize("method, options", [("local_learning", {}), ("forward_only", {"context_error": False})])
def test_pipelined_weights_are_the_sequential_weights(method: str, options: dict) -> None:
    cfg = ParallelConfig(method=method, method_options=options, task_options=TINY_VIT, batch_size=32, steps=6)
    sequential = run_sequential(cfg, method, options)
    ranks = run_distributed(cfg, "pipeline", [(0, 1), (1, 3)])
    assert ranks[-1].losses == pytest.approx(sequential.losses, rel=1e-4)
    initial = build(cfg, method, options, lambda: 0)[1].state_dict()
    checked = 0
    for rank in ranks:
        for name, value in rank.state.items():
            if _owned(name, rank.first, rank.last, 3) and not name.endswith(("running_mean", "running_var")):
                torch.testing.assert_close(value, sequential.state[name], rtol=1e-4, atol=1e-5, msg=name)
                checked += not torch.equal(value, initial[name])
    assert checked > 10  # the stages did learn: their weights moved, exactly as in one process


def test_ddp_is_backprop_on_the_whole_batch() -> None:
    cfg = ParallelConfig(task_options=TINY_VIT, batch_size=32, steps=4)
    sequential = run_sequential(cfg, "backprop", cfg.backprop_options)
    ranks = run_distributed(cfg, "ddp")
    for name, value in sequential.state.items():
        for rank in ranks:
            torch.testing.assert_close(rank.state[name], value, rtol=1e-3, atol=1e-4, msg=name)


def test_projection_matches_the_measured_two_process_run() -> None:
    """(B + P - 1) x the slowest stage's measured time (plus its message) is the run's wall time
    within 15%. Both come from the same run, so a busy machine slows both alike; a pipeline that
    serialised its stages (a blocking send, a missing pre-posted receive) would take their sum."""
    cfg = ParallelConfig(task_options={"model": "vit", "vit": {"patch_size": 2, "dim": 64, "depth": 4, "heads": 4}},
                         batch_size=64, steps=12)
    ranks = run_distributed(cfg, "pipeline")
    stages = [sum(r.compute) / len(r.compute) for r in ranks]
    predicted = pipeline_seconds(stages, [ranks[0].message_seconds], cfg.steps)
    measured = max(r.wall for r in ranks)
    assert abs(predicted / measured - 1) < 0.15, (predicted, measured, stages)


def test_split_blocks_balances_the_slowest_stage() -> None:
    assert split_blocks([1, 1, 1, 1], 2) == [(0, 2), (2, 4)]
    assert split_blocks([3, 1, 1, 1], 2) == [(0, 1), (1, 4)]
    assert split_blocks([1, 2, 3], 3) == [(0, 1), (1, 2), (2, 3)]
    with pytest.raises(ValueError, match="cannot split 3 blocks into 4 stages"):
        split_blocks([1, 1, 1], 4)


@pytest.mark.parametrize("method, options, names", [("forward_only", {}, "context_error=false"),
                                                    ("local_learning", {"next_weight": 1.0}, "next_weight=0"),
                                                    ("backprop", {}, "no stage_step")])
def test_a_method_with_backward_messages_is_refused_with_the_fix(method: str, options: dict, names: str) -> None:
    cfg = ParallelConfig(method=method, method_options=options, task_options=TINY_VIT, batch_size=16, steps=1)
    staged, model, batches = build(cfg, method, options, lambda: 0)
    with pytest.raises(ValueError, match=names):
        check_staged(staged, model, next(batches), [(0, 1), (1, 3)])
