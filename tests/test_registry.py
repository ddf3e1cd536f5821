"""Registry: one decorator, one name, lookups that suggest the closest name."""

from __future__ import annotations

import pytest

from harness import registry


def test_backprop_and_image_tasks_are_registered() -> None:
    assert "backprop" in registry.method_names()
    assert {"digits", "fashion_mnist", "mnist", "cifar10"} <= set(registry.task_names())


def test_unknown_method_suggests_closest_name() -> None:
    with pytest.raises(registry.RegistryError) as info:
        registry.get_method("backprob")
    assert 'Did you mean "backprop"' in str(info.value)


def test_unknown_task_lists_known_ones() -> None:
    with pytest.raises(registry.RegistryError, match="Known tasks: .*digits"):
        registry.get_task("imagenet")


def test_registering_a_second_class_under_a_taken_name_fails() -> None:
    registry.discover()
    with pytest.raises(ValueError, match="registered twice"):
        @registry.register_method("backprop")
        class Impostor:  # noqa: F841
            pass


def test_template_is_not_registered() -> None:
    assert "_template" not in registry.method_names() and "template" not in registry.method_names()


def test_a_method_without_memory_buffers_is_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match="lacks memory_buffers.*methods/_template.py"):
        @registry.register_method("no_ledger_probe")
        class NoLedger:  # noqa: F841
            supports = frozenset({"classify"})
            Config = object

            def setup(self, ctx): ...
            def step(self, batch): ...
            def predict(self, inputs): ...
            def state_dict(self): ...
            def load_state_dict(self, state): ...
    assert "no_ledger_probe" not in registry.method_names()


def test_a_method_started_from_the_template_gets_its_optimizer_state_in_the_ledger(tiny_suite) -> None:
    """A newcomer copies methods/_template.py, names it, and the ledger counts the optimizer."""
    import sys
    import types
    from pathlib import Path

    from harness.config import resolve
    from harness.plan import plan
    from harness.runner import run_cell

    source = (Path(registry.__file__).parent.parent / "methods" / "_template.py").read_text()
    module = types.ModuleType("methods.template_probe")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source.replace("<name>", "template_probe"), "template_probe.py", "exec"), module.__dict__)
    try:
        cell, = plan(resolve([f"suite={tiny_suite(steps=6, eval_every=3)}", "method=template_probe"]))
        record = run_cell(cell)
        assert record["status"] == "completed", record.get("error")
        ledger = record["memory"]["ledger"]["bytes"]
        # Adam keeps two moments per parameter: as many bytes again as the parameters, twice
        assert ledger.get("optimizer", 0) >= 2 * ledger["parameters"], f"optimizer state missing: {ledger}"
    finally:
        registry._METHODS.pop("template_probe", None)
        sys.modules.pop(module.__name__, None)
