"""Shared fixtures: a tiny real suite (digits) that trains in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

TINY_SUITE = """
description: tiny digits suite for tests
tasks:
  mlp: {{task: digits, model: mlp, mlp: {{hidden: [64]}}}}
method: backprop
method_options:
  backprop: {{lr: 0.01}}
seeds: {seeds}
budget: {{steps: {steps}}}
batch_size: 64
eval_every: {eval_every}
device: cpu
threads: 1
"""


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test's tiny models run on one torch thread, as `threads=1` cells do: on the 2-core
    test machine a second thread makes them several times slower, not faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_suite(tmp_path: Path):
    """Write a tiny suite file and return its path; keyword arguments change its numbers."""

    def make(seeds: int = 1, steps: int = 150, eval_every: int = 50, name: str = "tiny") -> str:
        path = tmp_path / f"{name}.yaml"
        path.write_text(TINY_SUITE.format(seeds=seeds, steps=steps, eval_every=eval_every))
        return str(path)

    return make
