"""Claim files: what a claim says, checked when it is read, and the template `bench claims new` writes.

A claim (suites/claims/<id>.yaml) names a method and a baseline (each a `Side`, with an
optional search space: `tune: {key, values}` over any key of the method's Config, or
`tune_lr: [...]`, the shorthand for `tune: {key: lr, ...}`), a suite and one of its tasks, a budget, the number
of seeds, a measured quantity (harness/quantities.py) and the expected relation. Every
key is validated on load (`build_dataclass`), the error budget cannot be loosened, and
`overrides` may hold only what cannot change the comparison (`SAFE_OVERRIDES`).
harness/claims.py turns a claim into cells and a verdict.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness import registry
from harness.config import SUITES_DIR
from harness.typed_config import ConfigError, build_dataclass
from harness.quantities import QUANTITIES
from harness.stats import ALPHA, MIN_SEEDS, Relation, boundaries

CLAIMS_DIR = SUITES_DIR / "claims"
SAFE_OVERRIDES = ("threads", "device", "results_dir", "data_dir", "launcher", "meter")


class NotComparable(Exception):
    """A required method, suite, task or measurement is missing; the message says which."""


@dataclass(frozen=True)
class Tuning:
    """What one side is tuned over: a key of its method's Config and the values to try.

    The learning rate is one such key; a method that does not read `lr` on a task (the
    discrete active-inference agent on control tasks) is tuned over a knob it does read."""

    key: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("tune.key names the method setting to tune (a field of its Config), e.g. `key: lr`")
        if not self.values:
            raise ValueError(f"tune.values: give the values of {self.key} to try, e.g. `values: [0.5, 1.0, 2.0]`")
        bad = [v for v in self.values if not isinstance(v, (int, float, str, bool))]
        if bad:
            raise ValueError(f"tune.values of {self.key} must be plain numbers, strings or booleans, got {bad!r}")
        if len(set(map(repr, self.values))) != len(self.values):
            raise ValueError(f"tune.values of {self.key} repeat a value ({list(self.values)}): each trial must differ")


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a registered method, its settings, and what it is tuned over."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    tune_lr: tuple[float, ...] = ()  # shorthand for tune: {key: lr, values: [...]}
    tune: Tuning | None = None

    def __post_init__(self) -> None:
        if self.tune_lr and self.tune is not None:
            raise ValueError(f"{self.name}: give either tune_lr (the learning rate) or tune: {{key, values}}, not both")
        if any(lr <= 0 for lr in self.tune_lr):
            raise ValueError("tune_lr values are learning rates: every one must be > 0")

    @property
    def search(self) -> Tuning | None:
        """The side's own search space, `tune_lr` read as `tune: {key: lr}`; None: the method's default."""
        if self.tune is not None:
            return self.tune
        return Tuning("lr", tuple(self.tune_lr)) if self.tune_lr else None


def check_tuning(side: Side, role: str) -> None:
    """Refuse a search key the method has not, or a value its Config rejects, when the file is read
    (not hours later in a trial). An unregistered method is left to `verify` (not comparable)."""
    search = side.search
    if search is None:
        return
    try:
        method = registry.get_method(side.name)
    except registry.RegistryError:
        return
    fields = [f.name for f in dataclasses.fields(method.Config)]
    if search.key not in fields:
        raise ValueError(f"{role}.tune.key: {search.key!r} is not a setting of {side.name}."
                         f"{registry.did_you_mean(search.key, fields)} Its Config fields: {', '.join(fields)}.")
    for value in search.values:
        try:
            build_dataclass(method.Config, {**side.config, search.key: value}, f"{role} {side.name}")
        except ConfigError as exc:
            raise ValueError(f"{role}.tune: {search.key}={value!r} is not a valid setting: {exc}") from None


@dataclass(frozen=True)
class SecondTask:
    """A task of the claim's suite where the claim, worded generally ("on reinforcement learning
    tasks"), must hold as well: the robustness check decides it there too, at x1. `budget` and
    `target` default to the claim's own (set them where the task's scale differs)."""

    task: str
    budget: dict[str, float] | None = None
    target: float | None = None

    def __post_init__(self) -> None:
        if not self.task:
            raise ValueError("also_on: each entry names a task of the claim's suite, e.g. `{task: frozen_lake}`")


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    source: str
    method: Side
    suite: str
    task: str
    quantity: str
    relation: str
    baseline: Side | None = None
    seeds: int = 3
    budget: dict[str, float] | None = None
    target: float | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None  # a profile of the suite (part of the claim, unlike overrides)
    confidence: float | None = None  # older files: accepted only when it does not loosen ALPHA
    notes: str = ""
    # What the statement asks that no run here can show (e.g. "beyond 100B parameters"): the
    # verdict is then "not testable", with the file's measured quantity beside it as a proxy.
    not_testable: str | None = None
    # Tasks where a generally worded claim must hold too (robustness; `SecondTask`).
    also_on: tuple[SecondTask, ...] = ()

    def __post_init__(self) -> None:
        if self.quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity {self.quantity!r}{registry.did_you_mean(self.quantity, list(QUANTITIES))}"
                             f" Quantities: {', '.join(QUANTITIES)}.")
        Relation.parse(self.relation)
        quantity = QUANTITIES[self.quantity]
        if quantity.kind != "value" and self.baseline is None:
            raise ValueError(f"quantity {self.quantity} compares with a baseline: add `baseline: {{name: ...}}`")
        if quantity.needs_target and self.target is None:
            raise ValueError(f"quantity {self.quantity} needs `target:` (the validation metric to reach)")
        if QUANTITIES[self.quantity].kind == "ratio":
            boundaries(Relation.parse(self.relation), log_scale=True)  # a ratio's bound must be positive
        if self.seeds < MIN_SEEDS:
            raise ValueError(f"seeds: {self.seeds} is too few: a verdict needs at least {MIN_SEEDS} seeds (with 2, the "
                             f"t quantile is 12.7 and the spread rests on one difference); set `seeds: {MIN_SEEDS}`")
        sides = [(role, side) for role, side in (("method", self.method), ("baseline", self.baseline))
                 if side is not None and side.search is not None]
        if self.baseline is None and sides:
            raise ValueError(f"method.tune{'_lr' if self.method.tune_lr else ''}: tuning is for comparisons (both "
                             "sides get equal trials), and this claim has no baseline; remove it, or set the "
                             "method's config directly")
        if len({len(side.search.values) for _, side in sides}) > 1:
            raise ValueError("both sides get the same tuning effort: the method's and the baseline's search spaces "
                             "(tune_lr or tune.values) must hold as many values (got "
                             f"{', '.join(f'{s.name}: {len(s.search.values)} {s.search.key}' for _, s in sides)})")
        for role, side in sides:
            check_tuning(side, role)
        if self.confidence is not None and not (1 - ALPHA <= self.confidence < 1):
            raise ValueError(f"confidence: {self.confidence} would loosen the fixed {100 * ALPHA:g}% false-support rate "
                             f"that every claim shares; remove the key (or give a value from {1 - ALPHA:g} up to "
                             "below 1, which only tightens it)")
        profile = self.overrides.get("profile")
        if profile is not None and self.profile is not None and profile != self.profile:
            raise ValueError(f"profile {self.profile!r} and overrides.profile {profile!r} disagree: keep one")
        check_overrides(self.overrides.items(), "overrides", allow_profile=True)
        tasks = [entry.task for entry in self.also_on]
        if self.task in tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f"also_on: {tasks} must name tasks other than the claim's own ({self.task!r}), each once")
        if self.also_on and self.quantity.startswith("memory"):
            raise ValueError("also_on: a memory claim is measured on its model's shape; write a claim per shape instead")

    @property
    def suite_profile(self) -> str | None:
        return self.profile if self.profile is not None else self.overrides.get("profile")

    @property
    def alpha(self) -> float:
        """The claim's total false-support rate: ALPHA, or less when `confidence` tightens it."""
        return ALPHA if self.confidence is None else min(ALPHA, 1 - self.confidence)

    def elsewhere(self) -> list[Claim]:
        """The claim as decided on each of its `also_on` tasks."""
        return [dataclasses.replace(self, task=entry.task, budget=entry.budget or self.budget,
                                    target=self.target if entry.target is None else entry.target, also_on=())
                for entry in self.also_on]

    def design(self) -> dict[str, Any]:
        """What the claim compares and how, without the seed count: a change here is a new claim."""
        return {"method": _side_design(self.method),
                "baseline": None if self.baseline is None else _side_design(self.baseline),
                "suite": self.suite, "task": self.task, "quantity": self.quantity, "relation": self.relation,
                "budget": self.budget, "target": self.target, "profile": self.suite_profile,
                **({"not_testable": self.not_testable} if self.not_testable else {}),
                **({"also_on": [dataclasses.asdict(e) for e in self.also_on]} if self.also_on else {})}


def _side_design(side: Side) -> dict[str, Any]:
    """A side as the design hash sees it: `tune` only when set, so files that predate it keep their hash
    (and their looks at the data, harness/claims.py `_looks`)."""
    design = dataclasses.asdict(side)
    if side.tune is None:
        del design["tune"]
    return design


def check_overrides(pairs: Any, where: str, allow_profile: bool = False) -> None:
    """Refuse any override that could change what is compared, naming the key."""
    for key, _ in pairs:
        head = str(key).split(".")[0]
        if head in SAFE_OVERRIDES or (allow_profile and key == "profile"):
            continue
        allowed = ", ".join(f"{k}.*" if k in ("launcher", "meter") else k for k in SAFE_OVERRIDES)
        raise ConfigError(f"{where}: {key} cannot be overridden for a claim: it could change what is compared. "
                          f"Only {allowed} may be set; put method, baseline, seeds, budget or profile in the "
                          "claim file itself (its hash is in the verdict).")


# ------------------------------------------------------------------------------ files


def claim_paths(claims_dir: Path = CLAIMS_DIR) -> list[Path]:
    return sorted(claims_dir.glob("*.yaml"))


def load_claim(path: Path) -> Claim:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"claim file {path} is not valid YAML: {exc}") from exc
    claim = build_dataclass(Claim, raw, f"claim {path.stem}")
    if claim.id != path.stem:
        raise ConfigError(f"claim file {path} has id {claim.id!r}; the id must equal the file name ({path.stem!r}).")
    return claim


def find_claim(claim_id: str, claims_dir: Path = CLAIMS_DIR) -> Path:
    path = claims_dir / f"{claim_id}.yaml"
    if not path.is_file():
        known = [p.stem for p in claim_paths(claims_dir)]
        raise ConfigError(f"no claim {claim_id!r} in {claims_dir}.{registry.did_you_mean(claim_id, known)} "
                          f"Claims: {', '.join(known) or 'none'} (or `bench claims new {claim_id}`).")
    return path


TEMPLATE = """\
# A claim the harness can check. Every key is validated; `bench claims verify {id}` runs it.
id: {id}
source: "Who made the claim, where (talk, paper, press release), and a link or reference."
statement: "The claim in the words it was made."
method: {{name: backprop, config: {{}}}}        # the paradigm the claim is about
baseline: {{name: backprop, config: {{}}, tune_lr: [0.0003, 0.001, 0.003]}}  # strongest reasonable baseline
# Equal tuning: the method gets as many trials (its own search space, or its default key x 0.5, 1, 2).
# Any key of a method's Config can be searched: tune: {{key: learning_rate, values: [0.5, 1.0, 2.0]}}.
suite: vision-vit                             # suites/<suite>.yaml
task: mlp                                     # a task label of that suite
quantity: accuracy_gap                        # {quantities}
relation: "within 0.01"                       # '>= X', '<= X' or 'within M' (equivalence margin M)
seeds: 3
budget: {{examples: 275000}}                    # null: the suite's budget
target: null                                  # validation metric to reach, for *-to-target quantities
profile: null                                 # a profile of the suite, e.g. quick
overrides: {{}}                                 # only threads, device, results_dir, data_dir, launcher.*, meter.*
also_on: []                                   # general wording: tasks where it must hold too, e.g. [{{task: mlp}}]
notes: "How the words were mapped to this test, and what it does not cover."
"""


def new_claim(claim_id: str, claims_dir: Path = CLAIMS_DIR) -> Path:
    path = claims_dir / f"{claim_id}.yaml"
    if path.exists():
        raise ConfigError(f"claim {claim_id!r} already exists at {path}; edit it or choose another id.")
    path.write_text(TEMPLATE.format(id=claim_id, quantities=" | ".join(QUANTITIES)))
    return path
