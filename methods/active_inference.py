"""Active inference: agents that infer hidden states, choose policies by expected free energy
and learn their generative model from counts; on supervised tasks, a hierarchical Gaussian
model trained by minimising variational free energy with local updates.

Papers: Da Costa, L., Parr, T., Sajid, N., Veselic, S., Neacsu, V. & Friston, K. (2020).
Active inference on discrete state-spaces: a synthesis. Journal of Mathematical Psychology 99.
Heins, C. et al. (2022). pymdp: A Python library for active inference in discrete state
spaces. JOSS 7(73). Friston, K. et al. (2015). Active inference and epistemic value. Cognitive
Neuroscience 6(4) (the T-maze). Friston, K. (2005). A theory of cortical responses. Phil.
Trans. R. Soc. B 360; Bogacz, R. (2017). A tutorial on the free-energy framework for modelling
perception and learning. J. Math. Psychol. 76 (predictive coding as active inference's
perception and learning in continuous state spaces).
Reference code read: infer-actively/pymdp 0.0.7 (agent.py, control.py, learning.py, maths.py;
learned from, not copied; tests/test_active_inference.py cross-checks the numbers with it).

Two variants under one name; the record says which ran (`StepStats.kind`, so
`flops.steps_per_kind`, and for control `record["control"]["agent"]["variant"]`):

- discrete (task kind "control"): a POMDP agent (methods/_pomdp.py). Per environment step:
  state inference q(s_t) from the observation and the prediction B_{u} q(s_{t-1}); a
  posterior over every policy of depth H, q(π) = softmax(-γ G(π)), G = risk + ambiguity −
  novelty (pragmatic, epistemic and parameter-epistemic value); the action sampled from
  softmax(α ln P(u)), P(u) the policy posterior's marginal over first actions (pymdp's
  "marginal_action"); then Dirichlet count updates a += o ⊗ q(s) for the learned
  likelihoods, b_u += q(s_t) ⊗ q(s_{t-1}) for learned transitions, d += q(s_1) for the
  initial state. The task's `generative_model()` says which parts are given (the structure
  of the state space, e.g. the T-maze's layout and the cue's meaning) and which are learned
  (suites/tasks/control_envs.py lists them per task); the unknown parts start from a flat
  Dirichlet prior. Nothing here computes a gradient: torch tensors under no_grad, and the
  task's network is never run (tests/test_active_inference.py checks that no autograd graph
  is built).
- continuous (task kind "classify"): the hierarchical Gaussian model of predictive coding
  (methods/predictive_coding.py, reused, not copied). Under the Laplace approximation with
  unit precisions its energy, Σ_k ½||x_k − f_k(x_{k−1})||² + the output term, *is* the
  variational free energy up to constants (Friston 2005; Bogacz 2017, eq. 9-10 with Σ = I):
  inference relaxes the value nodes (the posterior means), learning descends the same
  energy layer by layer. With the same settings it therefore gives predictive_coding's
  numbers; that is the point, not a coincidence.

Deviations (every one, with the reason):
- One hidden-state factor: the T-maze's location x context factors are flattened into 8
  states (exact, the joint of the factors; pymdp keeps them apart, which only saves memory).
  With one factor the fixed-point iteration of variational message passing is exact in one
  step, so `infer_states` is a Bayesian filter; no smoothing over past states (as pymdp's
  default "VANILLA" inference), so D learns from the filtered q(s_1).
- The expected parameters (normalised Dirichlet counts), not E[ln A] = ψ(a) − ψ(a0), enter
  inference and planning (pymdp's choice).
- The end of an episode is modelled as an absorbing state: on termination every action
  adds a self-transition count for the final state (the agent never sees what comes after,
  and without this a flat prior would promise a jump anywhere, holes included).
- Policies are every action sequence of depth H (pymdp's `construct_policies`), with H the
  task's `horizon` unless `horizon` is set; re-planned at every step (receding horizon).
- Parameter information gain (novelty) is implemented but off by default, as in pymdp's
  Agent: with flat Dirichlet priors its bonus (~1/n per state-action pair) outweighs the
  goal preference for hundreds of steps (FrozenLake, one seed, 2,000 steps: moving average
  peaked at 0.80 with it, target 0.9 reached at step 270 without; b_concentration 1.0
  instead of 0.1 took ~1,000 steps on the grid world, 0.1: ~310). Exploration then comes
  from the flat priors themselves (an untried move may lead anywhere, an unvisited state's
  outcome is unknown: optimism) and from the state information gain.
- No precision (γ) updating and no habit (E) learning: γ is fixed, E flat (pymdp defaults).
- Continuous variant: precisions fixed at 1 (no precision learning: with the feedforward
  initialisation the hidden errors start at 0, and a learned precision 1/E[e²] diverges
  there); no action, since a classifier does not act.

forward_equivalents: 0 for the discrete agent (it never runs the task's network: its cost is
in the measured seconds and FLOPs); the continuous variant counts as predictive_coding does.

Results: see the README's control section and the issue-8 report (T-maze, grid world,
FrozenLake against dqn and policy_gradient; digits through vision-vit).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from harness.interface import Batch, DiscreteModelSpec, Observation, SetupContext, StepStats, Transition
from harness.registry import register_method
from methods._pomdp import expected_free_energy, infer_states, log, normalise, wnorm
from methods.predictive_coding import PredictiveCoding, PredictiveCodingConfig


@dataclass(frozen=True)
class ActiveInferenceConfig(PredictiveCodingConfig):
    """Predictive coding's keys (the continuous variant) and the discrete agent's."""

    gamma: float = 16.0  # policy precision (pymdp: 16)
    alpha: float = 16.0  # action precision (pymdp: 16)
    action_selection: Literal["stochastic", "deterministic"] = "stochastic"
    horizon: int | None = None  # policy depth; None: the task's
    state_info_gain: bool = True  # epistemic value (ambiguity and risk, not only utility)
    param_info_gain: bool = False  # novelty of the learned A and B (pymdp's default: off; see Deviations)
    a_concentration: float = 1.0  # flat Dirichlet prior of learned likelihoods, per entry
    b_concentration: float = 0.1  # flat Dirichlet prior of learned transitions, per entry
    d_concentration: float = 1.0  # prior counts of the given D
    learning_rate: float = 1.0  # counts added per observation (pymdp lr_pA, lr_pB)
    learn_d: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gamma <= 0 or self.alpha <= 0:
            raise ValueError(f"gamma and alpha are precisions and must be > 0, got {self.gamma}, {self.alpha}")
        if self.horizon is not None and not 1 <= self.horizon <= 8:
            raise ValueError(f"horizon must be in 1..8 (policies grow as actions**horizon), got {self.horizon}")
        if min(self.a_concentration, self.b_concentration, self.d_concentration, self.learning_rate) <= 0:
            raise ValueError("concentrations and learning_rate must be > 0")
        if self.action_selection not in ("stochastic", "deterministic"):
            raise ValueError(f"action_selection must be stochastic or deterministic, got {self.action_selection!r}")


class DiscreteAgent:
    """The POMDP agent: beliefs, planning by expected free energy, Dirichlet learning."""

    def __init__(self, spec: DiscreteModelSpec, outcomes: tuple[int, ...], actions: int,
                 cfg: ActiveInferenceConfig, generator: torch.Generator) -> None:
        self.cfg, self.spec, self.generator = cfg, spec, generator
        self.horizon = cfg.horizon or spec.horizon
        f64 = torch.float64
        s = spec.states
        self.learn_A = [a is None for a in spec.A]
        self.pA = [torch.full((o, s), cfg.a_concentration, dtype=f64) if a is None else torch.as_tensor(a, dtype=f64)
                   for a, o in zip(spec.A, outcomes)]
        self.learn_B = spec.B is None
        self.pB = (torch.full((s, s, actions), cfg.b_concentration, dtype=f64) if spec.B is None
                   else torch.as_tensor(spec.B, dtype=f64))
        self.pD = cfg.d_concentration * torch.as_tensor(spec.D, dtype=f64)
        self.log_C = [torch.log_softmax(torch.as_tensor(c, dtype=f64), dim=0) for c in spec.C]
        self.policies = torch.tensor(list(itertools.product(range(actions), repeat=self.horizon)))
        self.qs = normalise(self.pD)
        self.previous: tuple[Tensor, int] | None = None

    @torch.no_grad()
    def reset(self, observation: Observation) -> None:
        self.qs, _ = infer_states(observation, [normalise(a) for a in self.pA], normalise(self.pD))
        if self.cfg.learn_d:
            self.pD += self.cfg.learning_rate * self.qs
        self._learn_A(observation)
        self.previous = None

    @torch.no_grad()
    def policy_posterior(self) -> tuple[Tensor, dict[str, Tensor]]:
        A, B = [normalise(a) for a in self.pA], normalise(self.pB)
        info = self.cfg.param_info_gain
        G, parts = expected_free_energy(
            self.qs, A, B, self.log_C, self.horizon,
            [wnorm(a) if learn and info else None for a, learn in zip(self.pA, self.learn_A)],
            wnorm(self.pB) if self.learn_B and info else None, self.cfg.state_info_gain)
        return torch.softmax(-self.cfg.gamma * G, dim=0), {"G": G, **parts}

    @torch.no_grad()
    def act(self) -> int:
        q_pi, _ = self.policy_posterior()
        marginal = torch.zeros(self.pB.shape[2], dtype=q_pi.dtype).index_add_(0, self.policies[:, 0], q_pi)
        if self.cfg.action_selection == "deterministic":
            action = int(marginal.argmax())
        else:
            p = torch.softmax(self.cfg.alpha * log(marginal), dim=0)
            action = int(torch.multinomial(p.float(), 1, generator=self.generator))
        self.previous = (self.qs, action)
        return action

    @torch.no_grad()
    def observe(self, transition: Transition) -> float:
        """Infer the new state, learn from it; the surprise -ln p(o) of the observation."""
        qs_prev, action = self.previous if self.previous is not None else (self.qs, transition.action)
        B = normalise(self.pB)
        self.qs, surprise = infer_states(transition.next_observation, [normalise(a) for a in self.pA],
                                         B[:, :, action] @ qs_prev)
        self._learn_A(transition.next_observation)
        if self.learn_B:
            self.pB[:, :, action] += self.cfg.learning_rate * torch.outer(self.qs, qs_prev)
            if transition.terminated:  # the end is absorbing, whatever the agent would do next
                self.pB += self.cfg.learning_rate * torch.outer(self.qs, self.qs).unsqueeze(2)
        return surprise

    def _learn_A(self, observation: Observation) -> None:
        for m, (a, learn) in enumerate(zip(self.pA, self.learn_A)):
            if learn:
                a[observation[m]] += self.cfg.learning_rate * self.qs


@register_method("active_inference")
class ActiveInference:
    supports = frozenset({"classify", "control"})
    Config = ActiveInferenceConfig

    def setup(self, ctx: SetupContext) -> None:
        self.ctx, self.cfg = ctx, ctx.config
        self.variant = "discrete" if ctx.task.kind == "control" else "continuous"
        if self.variant == "continuous":
            self.continuous = PredictiveCoding()
            self.continuous.setup(ctx)  # ActiveInferenceConfig is a PredictiveCodingConfig
            return
        task = ctx.task
        self.agent = DiscreteAgent(task.generative_model(), tuple(task.observation_counts), task.action_count,
                                   self.cfg, ctx.generator)

    # ------------------------------------------------- continuous variant (classify)

    def step(self, batch: Batch) -> StepStats:
        return dataclasses.replace(self.continuous.step(batch), kind="continuous_vfe")

    def predict(self, inputs: Tensor) -> Tensor:
        return self.continuous.predict(inputs)

    # --------------------------------------------------- discrete variant (control)

    def reset(self, observation: Observation) -> None:
        self.agent.reset(observation)

    def act(self, observation: Observation) -> int:
        return self.agent.act()  # the observation is already in the beliefs (reset / observe)

    def observe(self, transition: Transition) -> StepStats:
        surprise = self.agent.observe(transition)
        return StepStats(loss=surprise, examples=1, forward_equivalents=0.0, kind="discrete_pomdp")

    def describe(self) -> dict[str, Any]:
        if self.variant == "continuous":
            return {"variant": "continuous", "energy": "variational free energy, unit precisions (predictive coding)"}
        agent = self.agent
        return {"variant": "discrete", "states": agent.spec.states, "horizon": agent.horizon,
                "policies": len(agent.policies), "given": agent.spec.notes,
                "learned": [f"A[{m}]" for m, learn in enumerate(agent.learn_A) if learn]
                + (["B"] if agent.learn_B else []) + (["D"] if self.cfg.learn_d else [])}

    # -------------------------------------------------------------------- both

    def memory_buffers(self) -> dict[str, list[Tensor]]:
        if self.variant == "continuous":
            return self.continuous.memory_buffers()
        return {"dirichlet_counts": [*self.agent.pA, self.agent.pB, self.agent.pD], "beliefs": [self.agent.qs]}

    def state_dict(self) -> dict[str, Any]:
        if self.variant == "continuous":
            return self.continuous.state_dict()
        return {"pA": [a.clone() for a in self.agent.pA], "pB": self.agent.pB.clone(), "pD": self.agent.pD.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.variant == "continuous":
            self.continuous.load_state_dict(state)
            return
        self.agent.pA = [a.clone() for a in state["pA"]]
        self.agent.pB, self.agent.pD = state["pB"].clone(), state["pD"].clone()
