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
