"""Suites (YAML) plus command-line `key=value` overrides, validated before any training.

Layering, lowest to highest precedence:

1. the dataclass defaults of each method and task (the paper's values);
2. the suite file `suites/<name>.yaml`;
3. the suite's profile, when `profile=NAME` is given (a mapping of dotted keys);
4. the command line: `method=backprop seeds=3 budget.steps=300 method.lr=1e-3`.

Keys of a suite (top level):

    description   free text
    tasks         {label: {task: <registered task>, <task config keys>...}}
    task          a label or a list of labels: run only those tasks of the suite
    method        a method name, a list of names, or "all" (every registered method)
    method_exclude names that `method: all` leaves out in this suite (e.g. continual-learning
                  references in an i.i.d. suite); a method named explicitly still runs
    method_options {method name: {<method config keys>...}}: suite defaults per method
    seeds         how many seeds (0..n-1), or an explicit list of seeds
    budget        exactly one of {steps|examples|forward_equivalents|seconds: value}
    pretrain_budget the budget of the cells that fine-tuning tasks (`init_from`) start from, when it
                  is not `budget` (claims pin it so that a scaled budget keeps the starting checkpoint)
    batch_size    training batch size
    eval_every    validation every this many steps (and always at the end)
    eval_subset   N (or null: the whole split): validate on a fixed subset of N validation
                  examples between checkpoints and select on it; the selected state is then
                  scored on the whole validation split (harness/loops/supervised.py)
    device        auto | cpu | cuda
    threads       torch CPU threads per cell (null: torch's default); tiny models run
                  fastest on 1, and 2 threads on a busy 2-core machine can be 10x slower
    meter         {probe_steps: 1, sampling: true}: measurement settings (harness/meter.py)
    launcher      {kind: local|submitit|ray, workers: 1, ...}: where cells run (harness/launch.py)
    shift         {enabled: true, noise: [...], rotation: [...], translation: [...]}: also score
                  the selected state on shifted test sets (harness/interface.ShiftConfig)
    data_dir      a local data directory handed to every task
    results_dir   where records go (default: results)
    profiles      {name: {dotted.key: value}}: named bundles of overrides

On the command line, `method.KEY=V` sets KEY for every selected method and
`method.NAME.KEY=V` for method NAME only; `budget.KIND=V` replaces the budget (the
kinds are exclusive); `tasks.LABEL.KEY=V` reaches into one task. Values are parsed
as YAML (`[a,b]` is a list, `true`, `null`) and then coerced to the declared type,
so `method.lr=1e-3` is a float. Every problem is a `ConfigError` naming the key
and the fix, raised before anything trains:

- every number must be finite (NaN and infinity are refused for every float option of
  every config dataclass), and a dataclass field may declare its range with
  `field(metadata={"range": (low, high)})` (inclusive; None for an open end);
- each task is constructed once while planning, so a task that refuses its config (a
  ViT patch size that does not tile the image) says so now, not in the middle of a sweep;
- a method named twice is run once, with a note (`RunConfig.notes`);
- an empty `results_dir=` is refused (it would write into the current directory).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import yaml

from harness import registry
from harness.budget import BUDGET_KINDS, Budget
from harness.interface import FineTuningConfig, ShiftConfig, SubsetEvaluableTask
from harness.meter import MeterConfig
from harness.registry import did_you_mean
from harness.run_config import LauncherConfig, MethodSpec, RunConfig, TaskSpec
from harness.typed_config import ConfigError, build_dataclass, coerce, parse_overrides

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"
TOP_LEVEL_KEYS = (
    "suite", "description", "tasks", "task", "method", "method_options", "seeds", "budget", "batch_size",
    "eval_every", "eval_subset", "device", "threads", "meter", "launcher", "shift", "data_dir", "results_dir",
    "profile", "profiles", "pretrain_method", "pretrain_budget", "schedule", "method_exclude",
)
# The one schedule rule: a suite's `schedule:` sets these keys for every method that has them,
# so no method decays its rate next to one that keeps it constant (issue: fair protocol).
SCHEDULE_KEYS = ("schedule", "warmup", "min_lr_ratio")
DEVICES = ("auto", "cpu", "cuda")
MAX_SEEDS = 1000  # a count beyond this is a typo, not a benchmark


# ----------------------------------------------------------------------------- suites


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def suite_path(name: str) -> Path:
    """`vision-vit` -> suites/vision-vit.yaml; a path to a .yaml file is taken as is."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise ConfigError(f"suite file {candidate} does not exist.")
        return candidate
    path = SUITES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = available_suites()
        raise ConfigError(
            f"unknown suite {name!r}.{did_you_mean(name, known)} Known suites: {', '.join(known)} "
            "(or pass a path to a .yaml file)."
        )
    return path


def load_suite(name: str) -> dict[str, Any]:
    path = suite_path(name)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"suite file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"suite file {path} must hold a mapping of keys, not {type(data).__name__}.")
    data.setdefault("suite", path.stem)
    return data


# -------------------------------------------------------------------------- overrides



def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    head = parts[0]
    if head not in TOP_LEVEL_KEYS:
        raise ConfigError(f"unknown key {head!r}.{did_you_mean(head, list(TOP_LEVEL_KEYS))} "
                          f"Known keys: {', '.join(TOP_LEVEL_KEYS)}.")
    if head in ("budget", "pretrain_budget") and len(parts) == 2:
        raw[head] = {parts[1]: value}  # budget kinds are exclusive: a new kind replaces the old
        return
    if head == "method" and len(parts) > 1:
        names = registry.method_names()
        if len(parts) > 2 and parts[1] in names:
            _set_nested(raw.setdefault("_method_cli", {}).setdefault(parts[1], {}), parts[2:], value)
        else:
            _set_nested(raw.setdefault("_method_common", {}), parts[1:], value)
        return
    if len(parts) == 1:
        raw[head] = value
        return
    target = raw.setdefault(head, {})
    if not isinstance(target, dict):
        raise ConfigError(f"{head} is not a mapping, so {key!r} cannot be set.")
    _set_nested(target, parts[1:], value)


def _set_nested(target: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        nxt = target.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{part!r} holds a value, not a mapping, so it has no key {parts[-1]!r}.")
        target = nxt
    target[parts[-1]] = value



    return value


# ---------------------------------------------------------------------- resolution


def resolve(args: list[str]) -> RunConfig:
    """Command-line arguments (`suite=... key=value ...`) -> a validated RunConfig."""
    return resolve_overrides(parse_overrides(args), tuple(args))


def resolve_overrides(overrides: list[tuple[str, Any]], args: tuple[str, ...] = ()) -> RunConfig:
    """(key, value) pairs, already typed (as from code, e.g. claims) -> a validated RunConfig."""
    suite_names = [v for k, v in overrides if k == "suite"]
    if not suite_names:
        raise ConfigError(f"no suite given: add suite=NAME (known suites: {', '.join(available_suites())}).")
    raw = load_suite(str(suite_names[-1]))
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"suite {raw['suite']}: unknown key {key!r}.{did_you_mean(key, list(TOP_LEVEL_KEYS))}")

    profile = next((v for k, v in reversed(overrides) if k == "profile"), raw.get("profile"))
    if profile is not None:
        profiles = raw.get("profiles") or {}
        if not isinstance(profiles, dict):
            raise ConfigError(f"profiles must map profile names to overrides, got {profiles!r}.")
        if profile not in profiles:
            raise ConfigError(
                f"suite {raw['suite']} has no profile {profile!r}.{did_you_mean(str(profile), list(profiles))} "
                f"Profiles: {', '.join(profiles) or 'none'}."
            )
        body = profiles[profile] or {}
        if not isinstance(body, dict):
            raise ConfigError(f"profiles.{profile} must map dotted keys to values, got {body!r}.")
        for key, value in body.items():
            _set_dotted(raw, str(key), value)
    for key, value in overrides:
        if key not in ("suite", "profile"):
            _set_dotted(raw, key, value)
    return _validate(raw, profile, args or tuple(f"{k}={v}" for k, v in overrides))


def _positive_int(raw: dict[str, Any], key: str, default: int) -> int:
    value = coerce(raw.get(key, default), int, key)
    if value < 1:
        raise ConfigError(f"{key} must be a positive integer, got {value}.")
    return value


def _validate(raw: dict[str, Any], profile: str | None, overrides: tuple[str, ...]) -> RunConfig:
    budget = _budget(raw.get("budget"))
    seeds = _seeds(raw.get("seeds", 1))
    device = coerce(raw.get("device", "auto"), Literal["auto", "cpu", "cuda"], "device")
    tasks = _select_tasks(_tasks(raw.get("tasks"), raw.get("data_dir")), raw.get("task"))
    _check_env_steps(budget, tasks)
    methods, notes = _methods(raw, tasks)
    pretrain_method = _pretrain_method(raw, tasks)
    pretrain_budget = None if raw.get("pretrain_budget") is None else _budget(raw["pretrain_budget"], "pretrain_budget")
    results_dir = raw.get("results_dir", "results")
    if results_dir is None or not str(results_dir).strip():
        raise ConfigError("results_dir is empty: name a directory, e.g. results_dir=results "
                          "(an empty one would write into the current directory).")
    return RunConfig(
        suite=str(raw["suite"]),
        description=str(raw.get("description") or ""),
        tasks=tasks,
        methods=methods,
        seeds=seeds,
        budget=budget,
        batch_size=_positive_int(raw, "batch_size", 128),
        eval_every=_positive_int(raw, "eval_every", 100),
        eval_subset=_eval_subset(raw.get("eval_subset"), tasks),
        device=device,
        threads=None if raw.get("threads") is None else _positive_int(raw, "threads", 1),
        meter=build_dataclass(MeterConfig, raw.get("meter"), "meter"),
        launcher=_launcher(raw.get("launcher")),
        shift=build_dataclass(ShiftConfig, raw.get("shift"), "shift"),
        results_dir=Path(str(results_dir)),
        profile=profile,
        overrides=overrides,
        pretrain_method=pretrain_method,
        pretrain_budget=pretrain_budget,
        notes=notes,
    )


def _eval_subset(value: Any, tasks: tuple[TaskSpec, ...]) -> int | None:
    """`eval_subset`: None (validate on the whole split), or N >= 1 for tasks that can score a subset."""
    if value is None:
        return None
    size = coerce(value, int, "eval_subset")
    if size < 1:
        raise ConfigError(f"eval_subset must be a positive number of validation examples (or null: the whole "
                          f"split), got {size}.")
    for task in tasks:
        if not isinstance(registry.get_task(task.task)(task.config), SubsetEvaluableTask):
            raise ConfigError(f"eval_subset={size}, but task {task.label} ({task.task}) cannot score a subset of its "
                              "validation split (no evaluate_subset, harness/interface SubsetEvaluableTask): "
                              "set eval_subset=null for it.")
    return size


def _init_from(task: TaskSpec) -> str | None:
    return task.config.init_from if isinstance(task.config, FineTuningConfig) else None


def _pretrain_method(raw: dict[str, Any], tasks: tuple[TaskSpec, ...]) -> MethodSpec | None:
    """The suite's `pretrain_method`, as the suite configures it (`method_options.NAME`), for
    tasks with `init_from: LABEL`.

    Command-line method overrides are left out on purpose: every fine-tuning method, whatever
    its settings, starts from the same pretraining cell (the suite's own cell of task LABEL
    with that method, so it is trained once and found in the store after that).
    """
    labels = {t.label: t for t in tasks}
    fine_tunes = {t.label: _init_from(t) for t in tasks}
    fine_tunes = {label: source for label, source in fine_tunes.items() if source is not None}
    if not fine_tunes:
        return None
    for label, source in fine_tunes.items():
        if source not in labels:
            raise ConfigError(f"tasks.{label}.init_from: no task labelled {source!r} in this suite."
                              f"{did_you_mean(str(source), list(labels))} Labels: {', '.join(labels)}.")
        if _init_from(labels[source]) is not None:
            raise ConfigError(f"tasks.{label}.init_from={source}, but {source} is itself a fine-tuning task; "
                              "pretrain from a task without init_from.")
    name = raw.get("pretrain_method")
    if not isinstance(name, str):
        raise ConfigError(f"tasks {', '.join(fine_tunes)} fine-tune (init_from), so the suite must name the method "
                          f"that pretrains them: add e.g. `pretrain_method: backprop` to it (got {name!r}).")
    if name not in registry.method_names():
        _unknown_method(name, "pretrain_method")
    options = (raw.get("method_options") or {}).get(name) or {}
    method_cls = registry.get_method(name)
    return MethodSpec(name, build_dataclass(method_cls.Config, options, f"method_options.{name}"))


def _launcher(value: Any) -> LauncherConfig:
    return build_dataclass(LauncherConfig, value, "launcher")


def _budget(value: Any, key: str = "budget") -> Budget:
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(
            f"{key} must name exactly one kind, e.g. {key}.steps=300; got {value!r}. "
            f"Kinds: {', '.join(BUDGET_KINDS)}."
        )
    (kind, amount), = value.items()
    if kind not in BUDGET_KINDS:
        raise ConfigError(f"unknown budget kind {key}.{kind}.{did_you_mean(kind, list(BUDGET_KINDS))} "
                          f"Kinds: {', '.join(BUDGET_KINDS)}.")
    amount = coerce(amount, float, f"{key}.{kind}")
    try:
        return Budget(kind, amount)
    except ValueError as exc:
        raise ConfigError(f"{exc} (set e.g. {key}.{kind}=1000).") from exc


def _check_env_steps(budget: Budget, tasks: tuple[TaskSpec, ...]) -> None:
    """budget.env_steps counts environment steps: a task without an environment never spends it."""
    if budget.kind != "env_steps":
        return
    static = [t.label for t in tasks if registry.get_task(t.task).kind != "control"]
    if static:
        raise ConfigError(f"budget.env_steps counts environment steps, and tasks {', '.join(static)} are not "
                          "control tasks; give them budget.steps or budget.examples (or run suite=control).")


def _seeds(value: Any) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        seeds = tuple(coerce(list(value), list[int], "seeds"))
        if not seeds or len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds must be a non-empty list of distinct integers, got {value!r}.")
        return seeds
    count = coerce(value, int, "seeds")
    if not 1 <= count <= MAX_SEEDS:
        raise ConfigError(f"seeds must be between 1 and {MAX_SEEDS} (the number of seeds to run), got {count}.")
    return tuple(range(count))


def _tasks(value: Any, data_dir: Any) -> tuple[TaskSpec, ...]:
    if not isinstance(value, dict) or not value:
        raise ConfigError("tasks must map a label to a task, e.g. tasks: {mlp: {task: digits, model: mlp}}.")
    specs = []
    for label, body in value.items():
        if not isinstance(body, dict):
            raise ConfigError(f"tasks.{label} must be a mapping with at least `task: NAME`, got {body!r}.")
        body = dict(body)
        if "task" not in body:
            raise ConfigError(f"tasks.{label} names no task: add tasks.{label}.task=NAME "
                              f"(known tasks: {', '.join(registry.task_names())}).")
        name = str(body.pop("task"))
        try:
            task_cls = registry.get_task(name)
        except registry.RegistryError as exc:
            raise ConfigError(f"tasks.{label}.task: {exc}") from exc
        if data_dir is not None and "data_dir" in {f.name for f in dataclasses.fields(task_cls.Config)}:
            body.setdefault("data_dir", str(data_dir))
        config = build_dataclass(task_cls.Config, body, f"tasks.{label}")
        try:  # tasks check their shapes when constructed (cheap: data loads later)
            task_cls(config)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"tasks.{label}: {exc}") from exc
        specs.append(TaskSpec(str(label), name, config))
    return tuple(specs)


def _select_tasks(tasks: tuple[TaskSpec, ...], selection: Any) -> tuple[TaskSpec, ...]:
    """The tasks named by the `task` key (labels), in the suite's order; all when it is unset."""
    if selection is None:
        return tasks
    wanted = [str(s) for s in (selection if isinstance(selection, (list, tuple)) else [selection])]
    labels = [t.label for t in tasks]
    for name in wanted:
        if name not in labels:
            raise ConfigError(f"task={name!r} is not a task label of this suite.{did_you_mean(name, labels)} "
                              f"Labels: {', '.join(labels)}.")
    if not wanted:
        raise ConfigError(f"task=[] selects no task; name one or more of {', '.join(labels)}.")
    return tuple(t for t in tasks if t.label in wanted)


def _methods(raw: dict[str, Any], tasks: tuple[TaskSpec, ...]) -> tuple[tuple[MethodSpec, ...], tuple[str, ...]]:
    """The selected methods (each once) and notes on what was dropped."""
    selection = raw.get("method", "all")
    excluded = raw.get("method_exclude") or []
    if not isinstance(excluded, (list, tuple)):
        raise ConfigError(f"method_exclude must be a list of method names, got {excluded!r}.")
    for name in excluded:
        if str(name) not in registry.method_names():
            _unknown_method(str(name), "method_exclude")
    names = ([n for n in registry.method_names() if n not in {str(e) for e in excluded}] if selection == "all"
             else selection)
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, (list, tuple)) or not names:
        raise ConfigError(f"method must be a name, a list of names or 'all'; got {selection!r}.")
    unique = list(dict.fromkeys(str(n) for n in names))
    notes = ()
    if len(unique) < len(names):
        twice = sorted({str(n) for n in names if [str(m) for m in names].count(str(n)) > 1})
        notes = (f"method {', '.join(twice)} named more than once in method={list(names)}; each runs once.",)
    names = unique
    suite_options = raw.get("method_options") or {}
    if not isinstance(suite_options, dict):
        raise ConfigError(f"method_options must map method names to their settings, got {suite_options!r}.")
    for name in suite_options:
        if name not in registry.method_names():
            _unknown_method(name, "method_options")
    common = raw.get("_method_common") or {}
    specific = raw.get("_method_cli") or {}
    schedule = _schedule(raw)
    specs = []
    for name in names:
        name = str(name)
        if name not in registry.method_names():
            _unknown_method(name, "method")
        method_cls = registry.get_method(name)
        known = {f.name for f in dataclasses.fields(method_cls.Config)}
        for key in common:
            if key not in known:
                raise ConfigError(
                    f"unknown key method.{key} for method {name}.{did_you_mean(key, sorted(known))} "
                    f"Keys of {name}: {', '.join(sorted(known))}. "
                    f"To set it for one method only, write method.<name>.{key}=..."
                )
        own = suite_options.get(name) or {}
        if not isinstance(own, dict):
            raise ConfigError(f"method_options.{name} must be a mapping of {name}'s settings, got {own!r}.")
        rule = {k: v for k, v in schedule.items() if k in known}
        values = {**own, **rule, **common, **(specific.get(name) or {})}
        specs.append(MethodSpec(name, build_dataclass(method_cls.Config, values, f"method.{name}")))
    return tuple(specs), notes


def _schedule(raw: dict[str, Any]) -> dict[str, Any]:
    """The suite's schedule rule (`schedule: {schedule: cosine, warmup: 0.05, min_lr_ratio: 0.0}`)."""
    rule = raw.get("schedule") or {}
    if isinstance(rule, str):
        rule = {"schedule": rule}
    if not isinstance(rule, dict) or set(rule) - set(SCHEDULE_KEYS):
        raise ConfigError(f"schedule must map some of {', '.join(SCHEDULE_KEYS)} to values every method with "
                          f"that setting gets, e.g. schedule: {{schedule: constant, warmup: 0.0}}; got {rule!r}.")
    return rule


def _unknown_method(name: str, where: str) -> None:
    known = registry.method_names()
    raise ConfigError(f"{where}: unknown method {name!r}.{did_you_mean(name, known)} "
                      f"Known methods: {', '.join(known)} (or 'all').")
