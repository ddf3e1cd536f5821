"""The mathematics of discrete active inference, on torch tensors, without autograd.

One hidden-state factor and any number of observation modalities (pymdp's A, B, C, D;
Da Costa et al. 2020, "Active inference on discrete state-spaces: a synthesis", J. Math.
Psychol. 99; Heins et al. 2022, "pymdp", JOSS 7(73)). Equation numbers refer to Da Costa et al.

- `infer_states`: q(s_t) ∝ exp(ln A·o_t + ln B_{u_{t-1}} q(s_{t-1})) (the fixed point of the
  variational message passing of eq. 4-5; with one factor it is exact after one iteration).
- `expected_free_energy`: G(π) = Σ_τ risk + ambiguity − novelty, for every policy of depth
  H (eq. 9-10): risk KL[q(o_τ|π) || p(o_τ)] with p(o) = softmax(C) (negative pragmatic
  value), ambiguity E_q(s_τ|π) H[p(o|s)] (with H(q(o)) it is the negative epistemic value,
  state information gain), novelty the expected information gain about the Dirichlet
  parameters of the learned A and B (pymdp's `spm_wnorm` form). Policies are expanded as a
  tree, so shared prefixes are computed once; policy order is itertools.product's.
- `wnorm`: pymdp's spm_wnorm, 1/sum(a) - 1/a, the sensitivity of the expected log-likelihood
  to one more count.
- `forget`: exponential forgetting of Dirichlet counts toward their prior, a <- a0 + w (a - a0),
  w in (0, 1]: the forgetting rate of Dirichlet learning in Smith, Friston & Whyte (2022), "A
  step-by-step tutorial on active inference and its application to empirical data", J. Math.
  Psychol. 107 (there the counts decay toward 0; here toward the prior a0, Kulhavy & Zarrop
  (1993), "On a general concept of forgetting", Int. J. Control 58(4), "stabilised forgetting",
  so that counts of a never-revisited state fall back to the flat prior, not below it, and
  its outcome becomes unknown again). w = 1 (no forgetting) is pymdp's behaviour. With w < 1
  the effective memory is about 1 / (1 - w) updates: a world that changes (a moved goal) is
  relearned in about that many, where counts that never decay need as many contrary
  observations as they ever gathered.

Every function runs under `torch.no_grad()`; nothing here builds an autograd graph.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-16


def log(x: Tensor) -> Tensor:
    return torch.log(x.clamp_min(EPS))


def normalise(counts: Tensor) -> Tensor:
    """Dirichlet counts -> the expected categorical distribution, column by column (dim 0)."""
    return counts / counts.sum(dim=0, keepdim=True).clamp_min(EPS)


def wnorm(counts: Tensor) -> Tensor:
    """pymdp's spm_wnorm: 1/a0 - 1/a (<= 0), the novelty weights of Dirichlet counts a."""
    return (1.0 / counts.sum(dim=0, keepdim=True).clamp_min(EPS) - 1.0 / counts.clamp_min(EPS)) * (counts > 0)


@torch.no_grad()
def forget(counts: Tensor, prior: float, retention: float) -> Tensor:
    """Counts decayed toward their flat prior: prior + retention * (counts - prior) (see the module docstring)."""
    return counts if retention >= 1.0 else prior + retention * (counts - prior)


@torch.no_grad()
def infer_states(observation: tuple[int, ...], A: list[Tensor], prior: Tensor) -> tuple[Tensor, float]:
    """Posterior over states given one observation and the predictive prior; also the surprise -ln p(o)."""
    log_joint = log(prior).clone()
    for a, o in zip(A, observation):
        log_joint += log(a[o])
    evidence = torch.logsumexp(log_joint, dim=0)
    return torch.exp(log_joint - evidence), float(-evidence)


@torch.no_grad()
def expected_free_energy(qs: Tensor, A: list[Tensor], B: Tensor, log_C: list[Tensor], horizon: int,
                         novelty_A: list[Tensor | None], novelty_B: Tensor | None,
                         state_info_gain: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
    """G of every policy of depth `horizon` ([U**horizon]) and its parts (risk, ambiguity, novelty).

    log_C: per modality, log p(o) = log softmax(C). novelty_A / novelty_B: `wnorm` of the
    learned counts (None: not learned, or parameter information gain switched off).
    """
    states, _, actions = B.shape
    # every modality at once: outcomes stacked, so one product per level serves them all
    A_all, log_C_all = torch.cat(A), torch.cat(log_C)
    ambiguity_per_state = sum(-(a * log(a)).sum(dim=0) for a in A)  # Σ_m H[p(o_m|s)] for every s
    learned = [w if w is not None else torch.zeros_like(a) for w, a in zip(novelty_A, A)]
    W_A = torch.cat(learned) if any(w is not None for w in novelty_A) else None
    step = B.permute(1, 2, 0).reshape(states, actions * states)  # beliefs @ step: every action's prediction
    step_W = None if novelty_B is None else novelty_B.permute(1, 2, 0).reshape(states, actions * states)
    beliefs = qs.unsqueeze(0)  # [N, S]: the predicted state of every partial policy
    parts = {name: torch.zeros(1, dtype=qs.dtype) for name in ("risk", "ambiguity", "novelty")}
    for _ in range(horizon):
        nxt = (beliefs @ step).reshape(-1, states)  # child n*U + u
        parts = {name: value.repeat_interleave(actions) for name, value in parts.items()}
        qo = nxt @ A_all.T
        if state_info_gain:
            parts["risk"] += (qo * (log(qo) - log_C_all)).sum(dim=1)
            parts["ambiguity"] += nxt @ ambiguity_per_state
        else:  # expected utility only: -E_q(o)[ln p(o)]
            parts["risk"] -= qo @ log_C_all
        if W_A is not None:
            parts["novelty"] -= ((qo @ W_A) * nxt).sum(dim=1)
        if step_W is not None:  # -q(s'|π) · W_B[:, :, u] q(s|π), for each child (n, u)
            weighted = (beliefs @ step_W).reshape(-1, states)
            parts["novelty"] -= (weighted * nxt).sum(dim=1)
        beliefs = nxt
    return parts["risk"] + parts["ambiguity"] - parts["novelty"], parts
