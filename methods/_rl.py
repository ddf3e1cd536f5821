"""Pieces the backprop-trained control baselines share (policy_gradient, ppo).

- `value_network`: the critic, a separate MLP (one tanh hidden layer) over the one-hot
  observation, built from the method's generator alone so runs are reproducible.
- `sample_action`: an action sampled from softmax(logits) with the method's generator, and
  its log-probability (PPO keeps it as the behaviour policy's).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from harness.interface import seeded_init


def value_network(inputs: int, hidden: int, generator: torch.Generator, device: torch.device | str) -> nn.Module:
    """inputs -> Linear(hidden) -> tanh -> Linear(1): V(o) (cleanrl's critic, one layer narrower)."""
    with seeded_init(generator):
        return nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, 1)).to(device)


def sample_action(logits: Tensor, generator: torch.Generator) -> tuple[int, float]:
    """(action, ln pi(action)) for one observation's logits [actions]."""
    log_probs = torch.log_softmax(logits, dim=0)
    action = int(torch.multinomial(log_probs.exp(), 1, generator=generator))
    return action, float(log_probs[action])
