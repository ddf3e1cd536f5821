"""Config: suites + overrides are validated before anything trains, with errors that name the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import ConfigError, resolve
from harness.typed_config import parse_overrides

SUITE = """
description: a tiny suite for tests
tasks:
  mlp: {task: digits, model: mlp, mlp: {hidden: [32]}}
method: backprop
method_options:
  backprop: {lr: 0.003}
seeds: 2
budget: {steps: 50}
batch_size: 32
eval_every: 10
profiles:
  fast:
    budget.steps: 5
    tasks.mlp.mlp.hidden: [8]
"""


@pytest.fixture
def suite(tmp_path: Path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(SUITE)
    return str(path)


def test_suite_values_and_defaults(suite: str) -> None:
    run = resolve([f"suite={suite}"])
    assert run.suite == "tiny"
    assert run.seeds == (0, 1)
    assert (run.budget.kind, run.budget.value) == ("steps", 50)
    (method,) = run.methods
    assert method.name == "backprop" and method.config.lr == 0.003 and method.config.optimizer == "adamw"
    assert run.tasks[0].config.mlp.hidden == (32,)


def test_overrides_are_typed_and_layered(suite: str) -> None:
    run = resolve([f"suite={suite}", "method.lr=1e-3", "seeds=3", "budget.examples=640", "method.bf16=true"])
    assert run.methods[0].config.lr == pytest.approx(1e-3)  # "1e-3" is a string to YAML: coerced by type
    assert run.methods[0].config.bf16 is True
    assert run.seeds == (0, 1, 2)
    assert (run.budget.kind, run.budget.value) == ("examples", 640)  # a new kind replaces the old


def test_per_method_override_beats_common(suite: str) -> None:
    run = resolve([f"suite={suite}", "method.backprop.lr=0.1", "method.lr=0.2"])
    assert run.methods[0].config.lr == pytest.approx(0.1)


def test_profile_then_command_line(suite: str) -> None:
    run = resolve([f"suite={suite}", "profile=fast"])
    assert run.budget.value == 5 and run.tasks[0].config.mlp.hidden == (8,)
    run = resolve([f"suite={suite}", "profile=fast", "budget.steps=7"])
    assert run.budget.value == 7


def test_list_syntax_for_methods(suite: str) -> None:
    run = resolve([f"suite={suite}", "method=[backprop]", "seeds=[3,5]"])
    assert [m.name for m in run.methods] == ["backprop"] and run.seeds == (3, 5)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("method=bakprop", 'Did you mean "backprop"'),
        ("budget.steps=-5", "budget.steps must be a positive number"),
        ("budget.stepz=5", 'Did you mean "steps"'),
        ("seed=3", 'Did you mean "seeds"'),
        ("method.lrr=0.1", 'method.lrr for method backprop. Did you mean "lr"'),
        ("method.lr=fast", "method.backprop.lr must be a number"),
        ("method.lr=-1", "lr must be > 0"),
        ("method.optimizer=adam", "must be one of adamw, sgd"),
        ("tasks.mlp.model=resnet", "must be one of"),
        ("tasks.mlp.mlp.hiden=[3]", 'Did you mean "hidden"'),
        ("tasks.mlp.task=fashion_mnst", 'Did you mean "fashion_mnist"'),
        ("batch_size=0", "batch_size must be a positive integer"),
        ("device=tpu", "device must be one of auto, cpu, cuda"),
        ("profile=fsat", 'Did you mean "fast"'),
        ("nonsense", "not of the form key=value"),
        ("task=mpl", 'Did you mean "mlp"'),
        ("task=[]", "selects no task"),
    ],
)
def test_bad_input_names_the_key_and_the_fix(suite: str, override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve([f"suite={suite}", override])
    assert expected in str(info.value)


def test_task_key_selects_suite_tasks_by_label() -> None:
    assert [t.label for t in resolve(["suite=vision-vit", "task=mlp"]).tasks] == ["mlp"]
    assert [t.label for t in resolve(["suite=vision-vit", "task=[vit,mlp]"]).tasks] == ["vit", "mlp"]


def test_unknown_suite_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match='Did you mean "vision-vit"'):
        resolve(["suite=vision-vti"])


def test_shipped_suite_rejects_misspelled_method() -> None:
    with pytest.raises(ConfigError, match="backprop"):
        resolve(["suite=vision-vit", "method=bakprop"])


def test_parse_overrides_reads_yaml_values() -> None:
    assert parse_overrides(["a=[x,y]", "b=true", "c=null", "d=3"]) == [("a", ["x", "y"]), ("b", True), ("c", None), ("d", 3)]


def test_method_exclude_leaves_methods_out_of_all_only(suite: str) -> None:
    def names(*overrides: str) -> list[str]:
        return [m.name for m in resolve([f"suite={suite}", *overrides]).methods]

    everything = names("method=all")
    assert "replay" in everything and "backprop" in everything
    left = names("method=all", "method_exclude=[replay]")
    assert "replay" not in left and set(everything) - set(left) == {"replay"}
    assert names("method=replay", "method_exclude=[replay]") == ["replay"]  # named explicitly: it runs
    with pytest.raises(ConfigError, match='method_exclude: unknown method .*Did you mean "replay"'):
        names("method=all", "method_exclude=[repaly]")
