"""REINFORCE with a learned baseline: a softmax policy trained by backprop on episode returns.

Papers: Williams, R. J. (1992). Simple statistical gradient-following algorithms for
connectionist reinforcement learning. Machine Learning 8. Sutton, R. S. & Barto, A. G.
(2018). Reinforcement Learning: An Introduction, 2nd ed., section 13.4 (REINFORCE with
baseline). Reference code read: vwxyzjn/cleanrl, cleanrl/ppo.py (network and optimiser
conventions; the update here is REINFORCE's, not PPO's clipped one).

The policy is the task's network (an MLP over the one-hot observation, one logit per action);
the baseline a separate value MLP (one hidden layer of 64, tanh) built from the method's
generator. Per environment step the action is sampled from softmax(logits); the transition
is stored. After every `episodes_per_update` finished episodes, one Adam step descends

    −Σ_t (G_t − V(o_t)) ln π(a_t | o_t) − β H[π(· | o_t)] + ½ Σ_t (G_t − V(o_t))²

over the batch's steps (G_t the discounted return from t, advantages not normalised; the
value term trains the baseline, whose gradient does not reach the policy). An episode cut by
the budget is dropped: it has no return to learn from.

Choices (no paper fixes them for these tasks; picked with a handful of runs on the grid world
and the T-maze): lr 1e-2, gamma 0.99, entropy_coef 0.01, episodes_per_update 4.

forward_equivalents per step, in forward passes of the policy network on one observation: 1
to act; on update steps 1 + 2 (forward and backward) per stored step for the policy, and
as much for the value network (counted as 3 per step in all, the value net being smaller).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from harness.interface import Observation, SetupContext, StepStats, Transition, one_hot, optimizer_state_tensors
from harness.registry import register_method
from methods._rl import sample_action, value_network


@dataclass(frozen=True)
class PolicyGradientConfig:
    lr: float = 1e-2
    gamma: float = 0.99
    entropy_coef: float = 0.01
    episodes_per_update: int = 4
    value_hidden: int = 64

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.entropy_coef < 0 or self.episodes_per_update < 1 or self.value_hidden < 1:
            raise ValueError("entropy_coef must be >= 0, episodes_per_update and value_hidden >= 1")


@register_method("policy_gradient")
class PolicyGradient:
    supports = frozenset({"control"})
    Config = PolicyGradientConfig

    def setup(self, ctx: SetupContext) -> None:
        self.ctx, self.cfg = ctx, ctx.config
        self.counts = tuple(ctx.task.observation_counts)
        self.policy = ctx.model
        self.value = value_network(sum(self.counts), self.cfg.value_hidden, ctx.generator, ctx.device)
        self.optimizer = torch.optim.Adam([*self.policy.parameters(), *self.value.parameters()], lr=self.cfg.lr)
        self.episode: list[tuple[Tensor, int, float]] = []  # (one-hot observation, action, reward)
        self.finished: list[list[tuple[Tensor, int, float]]] = []

    def reset(self, observation: Observation) -> None:
        self.episode = []  # an episode cut short (by the budget) never reaches here; see observe

    def act(self, observation: Observation) -> int:
        with torch.no_grad():
            logits = self.policy(one_hot(observation, self.counts).unsqueeze(0))[0]
        return sample_action(logits, self.ctx.generator)[0]

    def observe(self, transition: Transition) -> StepStats:
        self.episode.append((one_hot(transition.observation, self.counts), transition.action, transition.reward))
        if not transition.done:
            return StepStats(loss=None, examples=1, forward_equivalents=1.0, kind="act")
        self.finished.append(self.episode)
        self.episode = []
        if len(self.finished) < self.cfg.episodes_per_update:
            return StepStats(loss=None, examples=1, forward_equivalents=1.0, kind="act")
        loss, steps = self._update()
        return StepStats(loss=loss, examples=1, forward_equivalents=1.0 + 3.0 * steps, kind="update")

    def _update(self) -> tuple[float, int]:
        observations, actions, returns = [], [], []
        for episode in self.finished:
            g, backwards = 0.0, []
            for _, _, reward in reversed(episode):
                g = reward + self.cfg.gamma * g
                backwards.append(g)
            returns += backwards[::-1]
            observations += [o for o, _, _ in episode]
            actions += [a for _, a, _ in episode]
        self.finished = []
        obs, acts, rets = torch.stack(observations), torch.tensor(actions), torch.tensor(returns)
        log_probs = torch.log_softmax(self.policy(obs), dim=1)
        values = self.value(obs).squeeze(1)
        advantage = rets - values.detach()
        policy_loss = -(advantage * log_probs.gather(1, acts.unsqueeze(1)).squeeze(1)).mean()
        entropy = -(log_probs.exp() * log_probs).sum(dim=1).mean()
        loss = policy_loss - self.cfg.entropy_coef * entropy + 0.5 * (rets - values).pow(2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item(), len(actions)

    def memory_buffers(self) -> dict[str, list[Tensor]]:
        return {"optimizer_state": optimizer_state_tensors(self.optimizer), "value_network": list(self.value.parameters())}

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "value": self.value.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.value.load_state_dict(state["value"])
        self.optimizer.load_state_dict(state["optimizer"])
