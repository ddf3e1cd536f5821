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
perception and learning in continuous state spaces, and its rule for learning variances).
Friston, K. (2008). Hierarchical models in the brain. PLoS Comput. Biol. 4(11) (the Laplace-
encoded free energy of a hierarchy, precisions exp(lambda) per level). Millidge, B., Seth, A.
& Buckley, C. (2021). Predictive coding: a theoretical and experimental review.
arXiv:2107.12979 (precision-weighted prediction errors; PC -> backprop in the small-error limit).
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
- continuous (task kind "classify"): the hierarchical Gaussian model of Friston (2005, 2008)
  under the Laplace approximation, with what distinguishes it from predictive coding:
  learned precisions. Layer k predicts x_k = f_k(x_{k-1}) + w_k, w_k ~ N(0, pi_k^-1 I), with
  one log-precision lambda_k = ln pi_k per layer (the output's "node" is the one-hot target).
  The Laplace-encoded free energy of one example is (Friston 2008; Bogacz 2017 with
  Sigma_k = pi_k^-1 I; equation numbers not re-checked offline)

      F = sum_k 1/2 (pi_k ||e_k||^2 - n_k lambda_k),   e_k = x_k - f_k(x_{k-1}),

  n_k the units of layer k. One step on a batch (methods/_energy.py, shared with
  predictive coding, with a precision per energy term):
  1. x_k start at the feedforward pass (the prior's mode);
  2. T=20 inference steps: value nodes descend dF/dx_k = pi_k e_k - J_{k+1}^T pi_{k+1} e_{k+1}
     (SGD with momentum, rate preconditioned by 2/(pi_k + pi_{k+1}), see Deviations); at the
     defaults, after 300 digits steps, F falls from ~60 to ~2.9 per example in 20 sweeps
     (still ~1% per sweep at the end): near the mode the Laplace approximation is taken at,
     where predictive coding's 5 small steps stop after the first fall;
  3. weights descend dF/dW_k = -pi_k e_k df_k/dW_k (AdamW, predictive coding's schedule):
     local, precision-weighted prediction errors;
  4. precisions descend dF/dlambda_k = 1/2 (pi_k E_q||e_k||^2 - n_k) per unit and example
     (Bogacz 2017's variance rule, in the log-parameterisation of Friston 2008), with
     E_q||e_k||^2 = ||e_k||^2 + n_k / (pi_k + pi_{k+1}): under the Laplace approximation
     q(x_k) has precision pi_k + J^T pi_{k+1} J, and its variance enters the expected
     error. Without it F decreases without bound as pi_k -> inf for every hidden layer (the
     node collapses onto its prediction, -ln pi_k wins); measured (inference_lr 0.2, 300
     steps): hidden precisions then rise above the output's and the update returns to
     backprop's direction (cosine 0.98 / 0.97 / 0.98).
  Per-layer scalar precisions (Friston 2008's exp(lambda) I per level), not diagonal ones:
  one scalar per layer is estimated from every unit and example of a batch, and stays
  stable with the small, relaxation-made errors a hidden layer has; a diagonal precision
  would add n_k weakly identified numbers per layer, and its direct effect on a layer's
  gradient, a per-row scale, is what AdamW's per-parameter normalisation undoes (its effect
  through the relaxation would remain; not tried). Output "ce" has no precision (a
  categorical likelihood): only the hidden ones learn then.
  Distance from backprop (tests/test_active_inference.py, digits MLP 64-64-64-10, 300 steps
  of batch 64 at the defaults, then one fixed batch; per layer, bottom to top): cosine of the
  weight gradient to backprop's 0.888 / 0.766 / 0.812, norm ratio 29 / 48 / 99 (the
  precisions, which AdamW undoes); test accuracy 0.961. The same inference with unit
  precisions (learn_precision=false): 0.976 / 0.963 / 0.963; predictive coding's defaults:
  0.9998 / 0.9987 / 0.9954. So most of the distance is the precisions', some the longer
  relaxation's. Over longer training the hidden precisions keep rising slowly (after 1,500
  steps lambda = 12.1 / 11.2 / 11.0 for the two hidden layers and the output, still growing
  ~0.1 per 100 steps; cosine 0.78 / 0.62 / 0.92, accuracy 0.975): F does not pin a hidden
  layer's precision (see Deviations), and with the hidden precisions far above the output's
  the relaxed errors would shrink back toward backprop's.
  Digits ViT (patch 4, dim 16, depth 2; stem, 2 blocks, head), same protocol: 0.68 / 0.67 /
  0.47 / 0.55, accuracy 0.827; unit precisions 0.84 / 0.86 / 0.82 / 0.80 (0.841); predictive
  coding 0.997 / 0.993 / 0.986 / 0.998 (0.855); iPC 0.41 / 0.53 / 0.83 / 0.9996 (0.816).
  `learn_precision=false` with predictive coding's T and rate gives predictive_coding's
  numbers exactly (the preconditioner is 1 at unit precisions).

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
- Counts never decay by default (pymdp); `retention` < 1 decays the learned outcome counts A
  (`retention_b`: the transitions B) toward their flat prior before each episode
  (methods/_pomdp.py `forget`), for worlds that change. Measured (A-B-A grid world, phases of
  300 steps, tests/test_control.py): mean phase-3 return 0.31 / 0.39 (seeds 0 / 1) without,
  0.84 / 0.80 with retention 0.9, at a price in phase 1 (last 100 steps 1.0 / 1.0 -> 0.89 / 0.75);
  decaying B as well (0.95 both) re-opens explored transitions and slows learning (0.75 / 0.79).
- Continuous variant: no action (a classifier does not act); value nodes start at the
  feedforward pass, not at the last batch's posterior (examples are independent).
- No hyperpriors on lambda (Friston 2008 gives each level's log-precision a Gaussian prior).
  Without one a hidden layer's precision is only weakly identified: its errors are caused
  by the relaxation, not by data, and the Laplace variance term slows its growth to a drift
  instead of stopping it (measured above). A hyperprior would be the principled stop; its
  mean and precision would be two more knobs, and none is tuned here.
- The posterior precision of x_k is taken as pi_k + pi_{k+1} (Gauss-Newton with
  J^T J ~ I, one scalar per layer, mean-field between layers); its exact value needs the
  layer's Jacobian. The propagated term J Var_q(x_{k-1}) J^T of E_q||e_k||^2 is dropped.
- Preconditioned inference: x_k's step is inference_lr * 2/(pi_k + pi_{k+1}) * dF/dx_k,
  a diagonal approximation of the inverse curvature of F in x_k (the same Gauss-Newton
  approximation; DEM's state updates are Newton-like, Friston 2008). It leaves the fixed
  point unchanged and keeps the relaxation stable when precisions grow to ~100 (plain SGD at
  rate 0.05 diverged after ~150 steps, accuracy 0.10); it is 1 at unit precisions. With
  J^T J ~ I assumed, the rate still has to leave room for the real curvature: at 0.2 the
  output precision collapsed once (lambda 6 -> -12 between steps 250 and 500, recovered by
  step 1,100); 0.1 ran 1,500 steps without it. Chosen for stability, not for the cosine.
- inference_steps 20 and inference_lr 0.1 instead of predictive coding's 5 and 0.05: the
  Laplace approximation is taken at the posterior mode, which 5 small steps do not reach.
- The precision update is plain SGD on lambda once per learning sweep, from the batch's
  errors (Bogacz 2017 updates Sigma; lambda = -ln Sigma keeps pi positive without clipping,
  but a step after a burst of large errors can still be large: the collapse above).

forward_equivalents: 0 for the discrete agent (it never runs the task's network: its cost is
in the measured seconds and FLOPs); the continuous variant counts as predictive_coding does
(the precision update reuses the learning sweep's errors; the preconditioner costs nothing):
at T=20 about 3 + 2 c_n + 38 (1 - c_1), ~4x predictive coding's default step.

Results: see the README's control section and the issue-8 report (T-maze, grid world,
FrozenLake against dqn and policy_gradient). Continuous variant with learned precisions,
digits (`python -m harness.cli run suite=vision-vit method=active_inference profile=quick
threads=1 seeds=1`, one seed, CPU): MLP 0.9777 (23.6 ms/step), ViT 0.9276 (348 ms/step,
40.9 forward-equivalents per step); predictive coding's 3-seed numbers on the same budget:
0.9796 +- 0.0043 and 0.9276 +- 0.0028, backprop's 0.9666 +- 0.0074 and 0.9322 +- 0.0113.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from harness.interface import Batch, DiscreteModelSpec, Observation, SetupContext, StepStats, Transition, added_later
from harness.registry import register_method
from methods._energy import LayeredEnergy
from methods._free_energy_lm import DecoderEnergy
from methods._pomdp import expected_free_energy, forget, infer_states, log, normalise, wnorm
from methods.predictive_coding import PredictiveCodingConfig


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
    # added after records existed: at 1.0 they stay out of the run id (harness.interface.added_later)
    retention: float = added_later(1.0)  # per-episode decay of learned A (outcome) counts toward their prior (1: none; _pomdp.forget)
    retention_b: float = added_later(1.0)  # the same for the learned transitions B
    # continuous variant (classify): inference to near the posterior mode, learned precisions
    inference_steps: int = 20  # PC's 5 stop far from the mode the Laplace approximation is taken at
    inference_lr: float = 0.1  # per example, preconditioned by the precisions (0.2 diverged once, see Deviations)
    learn_precision: bool = True  # false: unit precisions, i.e. predictive coding
    precision_lr: float = 0.05  # SGD rate of each log-precision on dF/dlambda per unit and example

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.precision_lr <= 0:
            raise ValueError(f"precision_lr must be > 0, got {self.precision_lr}")
        if self.gamma <= 0 or self.alpha <= 0:
            raise ValueError(f"gamma and alpha are precisions and must be > 0, got {self.gamma}, {self.alpha}")
        if self.horizon is not None and not 1 <= self.horizon <= 8:
            raise ValueError(f"horizon must be in 1..8 (policies grow as actions**horizon), got {self.horizon}")
        if min(self.a_concentration, self.b_concentration, self.d_concentration, self.learning_rate) <= 0:
            raise ValueError("concentrations and learning_rate must be > 0")
        if not (0 < self.retention <= 1 and 0 < self.retention_b <= 1):
            raise ValueError(f"retention and retention_b must be in (0, 1] (1: counts never decay), got "
                             f"{self.retention}, {self.retention_b}")
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
        cfg = self.cfg  # forgetting between episodes (trials), as in Smith et al. 2022
        self.pA = [forget(a, cfg.a_concentration, cfg.retention) if learn else a
                   for a, learn in zip(self.pA, self.learn_A)]
        self.pB = forget(self.pB, cfg.b_concentration, cfg.retention_b) if self.learn_B else self.pB
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


class PrecisionWeightedEnergy(LayeredEnergy):
    """The hierarchical Gaussian model with a learned log-precision per layer."""

    name = "active_inference"

    def setup(self, ctx: SetupContext) -> None:
        super().setup(ctx)
        with torch.no_grad():  # units per example of every layer's output (the output: the classes)
            h = torch.zeros(1, *ctx.task.describe()["input_shape"], device=ctx.device)
            h = h if self.stem_is_layer else self.model.stem(h)
            self.units = []
            for layer in self.layers:
                h = layer(h)
                self.units.append(h[0].numel())
        self.log_precision = torch.zeros(len(self.layers), dtype=torch.float64)  # lambda_k, pi_k = 1 at start
        self.pi = [1.0] * len(self.layers)

    def precision(self, k: int) -> float:
        return self.pi[k]

    def inference_scale(self, k: int) -> float:
        """x_k's step divided by the mean of the two precisions acting on it (1 at unit precisions)."""
        return 2.0 / (self.pi[k] + self.pi[k + 1])

    @torch.no_grad()
    def learned(self, energies: list[Tensor | None]) -> None:
        """lambda_k descends dF/dlambda_k = 1/2 (pi_k E_q||e_k||^2 - n_k), per unit and example."""
        cfg = self.cfg
        last = len(energies) - 1  # the output learns a precision only for "se" (see the docstring)
        known = [k for k, e in enumerate(energies) if e is not None and (k < last or cfg.output_energy == "se")]
        if not cfg.learn_precision or not known:
            return
        values = torch.stack([energies[k] for k in known]).tolist()  # one read from the device
        for k, energy in zip(known, values):
            sq = 2 * energy  # ||e_k||^2 per example
            lam = float(self.log_precision[k])
            variance = sq / self.units[k]
            if k < len(self.layers) - 1:  # Laplace: E_q[e^2] adds Var_q(x_k) = 1/(pi_k + pi_k+1)
                variance += 1.0 / (self.pi[k] + self.pi[k + 1])
            self.log_precision[k] = lam - cfg.precision_lr * 0.5 * (self.pi[k] * variance - 1.0)
        self.pi = [math.exp(float(lam)) for lam in self.log_precision]

    def memory_buffers(self) -> dict[str, list[Tensor]]:
        return {**super().memory_buffers(), "log_precisions": [self.log_precision]}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "log_precision": self.log_precision.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.log_precision = state["log_precision"].clone()
        self.pi = [math.exp(float(lam)) for lam in self.log_precision]


@register_method("active_inference")
class ActiveInference:
    """Three variants by task kind: discrete (control), continuous (classify) and decoder (lm:
    the continuous variant's free energy on a language model's blocks, methods/_free_energy_lm.py,
    which cites its papers and lists its own deviations and measurements)."""

    supports = frozenset({"classify", "control", "lm"})
    Config = ActiveInferenceConfig

    class DecoderFreeEnergy(DecoderEnergy, PrecisionWeightedEnergy):
        """The continuous variant on a language model's decoder (methods/_free_energy_lm.py)."""

    def setup(self, ctx: SetupContext) -> None:
        self.ctx, self.cfg = ctx, ctx.config
        self.variant = {"control": "discrete", "lm": "decoder"}.get(ctx.task.kind, "continuous")
        if self.variant != "discrete":
            self.continuous = self.DecoderFreeEnergy() if self.variant == "decoder" else PrecisionWeightedEnergy()
            self.continuous.setup(ctx)  # ActiveInferenceConfig is a PredictiveCodingConfig
            return
        task = ctx.task
        self.agent = DiscreteAgent(task.generative_model(), tuple(task.observation_counts), task.action_count,
                                   self.cfg, ctx.generator)

    # --------------------------------------- continuous variant (classify, lm)

    def step(self, batch: Batch) -> StepStats:
        return dataclasses.replace(self.continuous.step(batch), kind=f"{self.variant}_vfe")

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
        if self.variant != "discrete":
            net = self.continuous
            return {"variant": self.variant, "energy": "Laplace free energy, learned precision per layer",
                    "precisions": [round(p, 4) for p in net.pi] if self.cfg.learn_precision else "unit"}
        agent = self.agent
        return {"variant": "discrete", "states": agent.spec.states, "horizon": agent.horizon,
                "policies": len(agent.policies), "given": agent.spec.notes,
                "learned": [f"A[{m}]" for m, learn in enumerate(agent.learn_A) if learn]
                + (["B"] if agent.learn_B else []) + (["D"] if self.cfg.learn_d else [])}

    # -------------------------------------------------------------------- both

    def memory_buffers(self) -> dict[str, list[Tensor]]:
        if self.variant != "discrete":
            return self.continuous.memory_buffers()
        return {"dirichlet_counts": [*self.agent.pA, self.agent.pB, self.agent.pD], "beliefs": [self.agent.qs]}

    def state_dict(self) -> dict[str, Any]:
        if self.variant != "discrete":
            return self.continuous.state_dict()
        return {"pA": [a.clone() for a in self.agent.pA], "pB": self.agent.pB.clone(), "pD": self.agent.pD.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.variant != "discrete":
            self.continuous.load_state_dict(state)
            return
        self.agent.pA = [a.clone() for a in state["pA"]]
        self.agent.pB, self.agent.pD = state["pB"].clone(), state["pD"].clone()
