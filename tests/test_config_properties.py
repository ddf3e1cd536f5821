"""Property tests (Hypothesis): malformed suites, overrides and claim files always get a
ConfigError that names the field, never a traceback."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.claims import load_claim
from harness.config import ConfigError, resolve
from harness.run_config import RunConfig

VALID_SUITE = {
    "description": "property tests",
    "tasks": {"mlp": {"task": "digits", "model": "mlp", "mlp": {"hidden": [16]}}},
    "method": "backprop",
    "method_options": {"backprop": {"lr": 0.01}},
    "seeds": 2,
    "budget": {"steps": 10},
    "batch_size": 32,
    "eval_every": 5,
    "device": "cpu",
}
VALID_CLAIM = {
    "id": "prop", "source": "s", "statement": "s", "method": {"name": "backprop", "config": {}},
    "baseline": {"name": "backprop", "config": {}}, "suite": "vision-vit", "task": "mlp",
    "quantity": "accuracy_gap", "relation": "within 0.01", "seeds": 3,
}

junk = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(tree: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested dict (the places a mutation can hit)."""
    if not isinstance(tree, dict):
        return []
    out = []
    for key, value in tree.items():
        out.append(prefix + (key,))
        out.extend(_paths(value, prefix + (key,)))
    return out


def _mutate(base: dict, data: st.DataObject) -> tuple[dict, str]:
    tree = copy.deepcopy(base)
    paths = _paths(tree)
    path = data.draw(st.sampled_from(paths))
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()):  # replace a value with junk
        parent[path[-1]] = data.draw(junk)
        return tree, str(path[-1])
    new_key = data.draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in parent))
    parent[new_key] = data.draw(junk)  # add an unknown key
    return tree, new_key


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_malformed_suites_get_an_error_naming_the_field(tmp_path_factory, data) -> None:
    suite, field = _mutate(VALID_SUITE, data)
    path = tmp_path_factory.mktemp("suite") / "prop.yaml"
    path.write_text(yaml.safe_dump(suite))
    try:
        assert isinstance(resolve([f"suite={path}"]), RunConfig)
    except ConfigError as exc:
        message = str(exc)
        named = [field, *(p for p in ("tasks", "method", "budget", "seeds") if p in message)]
        assert any(str(name) in message or repr(name) in message for name in named), message


@settings(max_examples=100, deadline=None)
@given(key=st.text(min_size=1, max_size=15).filter(lambda k: "=" not in k), value=junk)
def test_malformed_overrides_get_a_config_error(key: str, value: object) -> None:
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    try:
        resolve(["suite=vision-vit", f"{key}={text}"])
    except ConfigError as exc:
        assert str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_malformed_claims_get_an_error_naming_the_field(tmp_path_factory, data) -> None:
    claim, field = _mutate(VALID_CLAIM, data)
    if not isinstance(claim.get("id"), str) or not claim["id"] or "/" in claim["id"] or claim["id"].startswith("."):
        claim["id"] = "prop"
    path = tmp_path_factory.mktemp("claims") / f"{claim['id']}.yaml"
    path.write_text(yaml.safe_dump(claim))
    try:
        load_claim(path)
    except ConfigError as exc:
        message = str(exc)
        assert field in message or repr(field) in message or "claim" in message, message


def test_the_unmutated_inputs_are_valid(tmp_path: Path) -> None:
    path = tmp_path / "prop.yaml"
    path.write_text(yaml.safe_dump(VALID_SUITE))
    assert resolve([f"suite={path}"]).batch_size == 32
    claim = tmp_path / "prop.yaml"
    claim.write_text(yaml.safe_dump(VALID_CLAIM))
    assert load_claim(claim).id == "prop"
