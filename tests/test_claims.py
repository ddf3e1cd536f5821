"""Claims: files validated, the right cells run, verdicts that match the truth by construction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.claims import CLAIMS_DIR, ClaimCells, find_claim, load_claim, new_claim, verify, write_verdict
from harness.cli import main
from harness.config import ConfigError
from harness.store import Store

TINY = {"suite": "vision-vit", "task": "mlp", "seeds": 3, "budget": {"steps": 60},
        "overrides": {"profile": "quick", "threads": 1}, "source": "test", "statement": "test"}


def _claim(tmp_path: Path, **fields) -> Path:
    body = {**TINY, **fields}
    path = tmp_path / f"{body['id']}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _verify(path: Path, results: Path, extra: list | None = None, robustness: bool = False) -> dict:
    return verify(load_claim(path), ClaimCells(Store(results), extra or []), path, robustness=robustness)


def test_true_claim_is_supported_and_false_claim_refuted(tmp_path: Path) -> None:
    results = tmp_path / "results"
    true = _verify(CLAIMS_DIR / "sanity-adamw-beats-slow-sgd.yaml", results)
    assert true["verdict"] == "supported", true["reason"]
    assert len(true["per_seed"]) == 3 and all(row["value"] > 0.05 for row in true["per_seed"])
    false = _verify(CLAIMS_DIR / "sanity-slow-sgd-matches-adamw.yaml", results)
    assert false["verdict"] == "refuted", false["reason"]


def test_missing_method_is_not_comparable_and_says_which(tmp_path: Path) -> None:
    path = _claim(tmp_path, id="ghost", method={"name": "telepathy"}, baseline={"name": "backprop"},
                  quantity="accuracy_gap", relation="within 0.01")
    document = _verify(path, tmp_path / "results")
    assert document["verdict"] == "not comparable" and "telepathy" in document["reason"]
    assert not list((tmp_path / "results").rglob("record.json")), "nothing should train"


def test_baseline_learning_rate_is_tuned_on_validation(tmp_path: Path) -> None:
    path = _claim(tmp_path, id="tuned", method={"name": "backprop", "config": {"optimizer": "adamw"}},
                  baseline={"name": "backprop", "config": {"optimizer": "sgd", "momentum": 0.9},
                            "tune_lr": [0.00001, 0.05]},
                  quantity="accuracy_gap", relation="within 0.5")
    document = _verify(path, tmp_path / "results")
    assert [s["lr"] for s in document["baseline_sweep"]] == [0.00001, 0.05]
    assert document["baseline_used"]["config"]["lr"] == 0.05  # far better validation accuracy
    # equal tuning: the method gets as many trials, around its own lr (backprop's default 0.001)
    assert [round(t["lr"], 6) for t in document["tuning"]["method"]] == [0.000707, 0.001414]
    assert document["tuning"]["trials_per_side"] == 2 and document["tuning"]["seed"] == 10_000


def test_unequal_tuning_effort_is_refused(tmp_path: Path) -> None:
    path = _claim(tmp_path, id="unequal", method={"name": "backprop", "tune_lr": [0.001]},
                  baseline={"name": "backprop", "tune_lr": [0.001, 0.003]}, quantity="accuracy_gap",
                  relation="within 0.5")
    with pytest.raises(ConfigError, match="same tuning effort"):
        load_claim(path)


def test_memory_claim_is_held_against_checkpointing_and_bf16(tmp_path: Path) -> None:
    path = _claim(tmp_path, id="mem", method={"name": "backprop"}, baseline={"name": "backprop"},
                  quantity="memory_ratio_ledger", relation=">= 10", budget=None)
    document = _verify(path, tmp_path / "results")
    assert len(document["baseline_used"]["variants_tried"]) == 4
    assert document["baseline_used"]["config"] != {}  # a leaner variant than plain backprop won
    assert document["verdict"] == "refuted"  # backprop is not 10x leaner than itself
    records = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("record.json")]
    assert {r["counters"]["steps"] for r in records} == {5}  # the ledger needs only probe steps


def test_verdict_file_and_cli(tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    path = _claim(tmp_path, id="ghost", method={"name": "telepathy"}, baseline={"name": "backprop"},
                  quantity="accuracy_gap", relation="within 0.01")
    written = write_verdict(Store(results), _verify(path, results))
    assert json.loads(written.read_text())["verdict"] == "not comparable"
    code = main(["claims", "verify", "ghost", f"results_dir={results}", "--claims-dir", str(tmp_path)])
    assert code == 0 and "not comparable" in capsys.readouterr().out


@pytest.mark.parametrize("fields, expected", [
    ({"relation": "bigger"}, "relation"),
    ({"quantity": "speedupp"}, 'Did you mean "speedup"'),
    ({"seedz": 3}, 'Did you mean "seeds"'),
    ({"quantity": "samples_ratio"}, "needs `target:`"),
])
def test_bad_claim_files_name_the_problem(tmp_path: Path, fields: dict, expected: str) -> None:
    base = {"id": "bad", "method": {"name": "backprop"}, "baseline": {"name": "backprop"},
            "quantity": "accuracy_gap", "relation": ">= 0"}
    path = _claim(tmp_path, **{**base, **fields})
    with pytest.raises(ConfigError, match=expected):
        load_claim(path)


def test_new_claim_template_loads(tmp_path: Path) -> None:
    claim = load_claim(new_claim("my-claim", tmp_path))
    assert claim.id == "my-claim"
    with pytest.raises(ConfigError, match="already exists"):
        new_claim("my-claim", tmp_path)
    with pytest.raises(ConfigError, match='Did you mean "my-claim"'):
        find_claim("my-claim2", tmp_path)


def test_every_shipped_claim_file_is_valid() -> None:
    """Each file loads, and its cells resolve (suite, profile, task, overrides, method configs):
    a claim that names a profile its suite lacks fails here, not hours into `verify all`."""
    from harness.claims import _cells

    for path in sorted(CLAIMS_DIR.glob("*.yaml")):
        claim = load_claim(path)
        for variant in (claim, *claim.elsewhere()):  # a general claim's further tasks resolve too
            for side in (variant.method, variant.baseline):
                if side is not None:
                    assert _cells(variant, side, dict(side.config), [0], []), (path.name, variant.task)


def _fake_verdicts(monkeypatch, by_scale: dict[float, str]) -> list[dict]:
    """Make each budget's verdict what `by_scale` says (x1 is the claim's own budget)."""
    from harness import claims as claims_mod

    seen = []

    def once(claim, runner, claim_path=None, pretrain_budget=None):
        scale = 1.0 if claim.budget == {"steps": 100} else claim.budget["steps"] / 100
        seen.append(claim.budget)
        return {"verdict": by_scale[scale], "reason": f"at x{scale:g}"}

    monkeypatch.setattr(claims_mod, "_verify_once", once)
    return seen


@pytest.mark.parametrize(("by_scale", "label", "headline"), [
    ({0.5: "supported", 1.0: "supported", 2.0: "supported"}, "robust", "supported"),
    ({0.5: "refuted", 1.0: "supported", 2.0: "supported"}, "fragile", "inconclusive"),  # never a fragile supported
    ({0.5: "refuted", 1.0: "refuted", 2.0: "supported"}, "fragile", "refuted"),
])
def test_every_verdict_is_decided_again_at_half_and_double_the_budget(tmp_path, monkeypatch, by_scale, label,
                                                                     headline) -> None:
    seen = _fake_verdicts(monkeypatch, by_scale)
    path = _claim(tmp_path, id="robust", method={"name": "backprop"}, baseline={"name": "backprop"},
                  quantity="accuracy_gap", relation=">= 0", budget={"steps": 100})
    document = verify(load_claim(path), ClaimCells(Store(tmp_path / "r"), []), path)
    assert seen == [{"steps": 100}, {"steps": 50.0}, {"steps": 200.0}]
    assert document["robustness"]["label"] == label and document["verdict"] == headline
    assert document["robustness"]["verdicts"] == {"x1": by_scale[1.0], "x0.5": by_scale[0.5], "x2": by_scale[2.0]}


@pytest.mark.parametrize(("elsewhere", "label", "headline"), [
    ("supported", "robust", "supported"),
    ("inconclusive", "fragile", "inconclusive"),  # "on RL tasks" must hold on each task named
])
def test_a_generally_worded_claim_is_decided_on_its_further_tasks_too(tmp_path, monkeypatch, elsewhere, label,
                                                                     headline) -> None:
    from harness import claims as claims_mod

    seen = []

    def once(claim, runner, claim_path=None, pretrain_budget=None):
        seen.append((claim.task, claim.budget, claim.target))
        return {"verdict": "supported" if claim.task == "grid_world" else elsewhere, "reason": claim.task}

    monkeypatch.setattr(claims_mod, "_verify_once", once)
    path = _claim(tmp_path, id="general", suite="control", task="grid_world", quantity="env_steps_ratio",
                  target=0.9, relation=">= 3", budget={"env_steps": 3000},
                  method={"name": "active_inference"}, baseline={"name": "ppo"},
                  also_on=[{"task": "frozen_lake"}, {"task": "maze", "budget": {"env_steps": 4000}, "target": 0.8}])
    document = verify(load_claim(path), ClaimCells(Store(tmp_path / "r"), []), path)
    assert seen[-2:] == [("frozen_lake", {"env_steps": 3000}, 0.9), ("maze", {"env_steps": 4000}, 0.8)]
    assert document["robustness"]["verdicts"]["on maze"] == elsewhere
    assert set(document["robustness"]["estimates"]) == {"x1", "x0.5", "x2", "on frozen_lake", "on maze"}
    assert document["robustness"]["label"] == label and document["verdict"] == headline
    if label == "fragile":
        assert "inconclusive on frozen_lake" in document["robustness"]["reason"]


@pytest.mark.parametrize(("also_on", "expected"), [
    ([{"task": "mlp"}], "other than the claim's own"),
    ([{"task": "vit"}, {"task": "vit"}], "each once"),
])
def test_second_tasks_must_differ(tmp_path: Path, also_on, expected) -> None:
    path = _claim(tmp_path, id="twice", method={"name": "backprop"}, baseline={"name": "backprop"},
                  quantity="accuracy_gap", relation=">= 0", also_on=also_on)
    with pytest.raises(ConfigError, match=expected):
        load_claim(path)


def test_verify_all_plans_every_cell_first_and_launches_them_together(tmp_path: Path, monkeypatch) -> None:
    """Two claims, tuning and robustness budgets included: every round is one launch of every
    missing cell; verifying afterwards trains nothing."""
    from harness import claims as claims_mod

    batches: list[int] = []
    real_launch = claims_mod.launch

    def counting_launch(cells, *args, **kwargs):
        batches.append(len(cells))
        return real_launch(cells, *args, **kwargs)

    monkeypatch.setattr(claims_mod, "launch", counting_launch)
    paths = [_claim(tmp_path, id=f"pair{i}", method={"name": "backprop", "config": {"optimizer": "adamw"}},
                    baseline={"name": "backprop", "config": {"optimizer": "sgd"}, "tune_lr": [0.01, 0.05]},
                    quantity="accuracy_gap", relation=f">= {i / 10}") for i in (0, 1)]
    claims = [(load_claim(p), p) for p in paths]
    runner = ClaimCells(Store(tmp_path / "results"), [])
    rounds = claims_mod.prepare(claims, runner)
    # round 1: the tuning trials of both sides at every budget; round 2: the compared seeds with the winners
    assert rounds == len(batches) == 2 and batches[0] == 2 * 2 * 3  # 2 sides x 2 trials x 3 budgets, shared by both
    trained = runner.ran
    documents = [verify(claim, runner, path) for claim, path in claims]
    assert runner.ran == trained and len(batches) == 2, "verify after prepare must train nothing"
    assert all(d["verdict"] in ("supported", "refuted", "inconclusive") for d in documents)


def test_claims_options_may_come_anywhere_on_the_command_line(tmp_path: Path, capsys) -> None:
    path = _claim(tmp_path, id="ghost", method={"name": "telepathy"}, baseline={"name": "backprop"},
                  quantity="accuracy_gap", relation="within 0.01")
    for argv in (["claims", "verify", "--claims-dir", str(tmp_path), "ghost", f"results_dir={tmp_path / 'r'}"],
                 ["claims", "verify", "ghost", "--claims-dir", str(tmp_path), f"results_dir={tmp_path / 'r'}"]):
        assert main(argv) == 0, capsys.readouterr().err
    assert path.is_file() and (tmp_path / "r" / "claims" / "ghost.json").is_file()


def test_each_side_is_tuned_over_its_own_key_and_a_key_a_method_ignores_is_flagged(tmp_path: Path) -> None:
    """The discrete active-inference agent does not read `lr`: tuned over it, its trials are
    identical (flagged in the verdict); tuned over its Dirichlet learning rate, they differ and
    the winner is the config the comparison runs."""
    path = _claim(tmp_path, id="keys", suite="control", task="grid_world", seeds=3, budget={"env_steps": 300},
                  overrides={"threads": 1}, quantity="env_steps_ratio", target=0.9, relation=">= 1",
                  method={"name": "active_inference", "tune": {"key": "learning_rate", "values": [0.25, 4.0]}},
                  baseline={"name": "active_inference", "tune_lr": [0.001, 0.002]})
    document = _verify(path, tmp_path / "results")
    tuning = document["tuning"]
    assert tuning["keys"] == {"method": "learning_rate", "baseline": "lr"} and tuning["trials_per_side"] == 2
    assert [t["learning_rate"] for t in tuning["method"]] == [0.25, 4.0]
    assert [t["lr"] for t in tuning["baseline"]] == [0.001, 0.002]
    assert len({t["val"] for t in tuning["method"]} | {t["score"] for t in tuning["method"]}) > 1
    assert "baseline's 2 trials over lr gave identical runs" in tuning["reason"]
    assert "method's" not in tuning["reason"]
    best = max(tuning["method"], key=lambda t: t["score"] if t["score"] is not None else -float("inf"))
    assert document["provenance"]["method"]["set"]["learning_rate"] == best["value"]


@pytest.mark.parametrize("method, expected", [
    ({"name": "active_inference", "tune": {"key": "learning_rat", "values": [1.0, 2.0]}},
     'not a setting of active_inference. Did you mean "learning_rate"'),
    ({"name": "active_inference", "tune": {"key": "horizon", "values": [4, 20]}}, "horizon=20 is not a valid"),
    ({"name": "active_inference", "tune": {"key": "gamma", "values": [4.0, 4.0]}}, "repeat a value"),
    ({"name": "dqn", "tune_lr": [0.001, 0.002], "tune": {"key": "gamma", "values": [0.9, 0.99]}}, "not both"),
    ({"name": "active_inference", "tune": {"key": "gamma", "values": [4.0, 16.0, 64.0]}}, "2 lr"),
])
def test_bad_search_spaces_are_refused_when_the_file_is_read(tmp_path: Path, method: dict, expected: str) -> None:
    path = _claim(tmp_path, id="space", suite="control", task="grid_world", quantity="env_steps_ratio", target=0.9,
                  relation=">= 1", method=method, baseline={"name": "dqn", "tune_lr": [0.001, 0.002]})
    with pytest.raises(ConfigError, match=expected) as info:
        load_claim(path)
    if "not a setting" in expected:
        assert "Its Config fields:" in str(info.value) and "b_concentration" in str(info.value)


def test_a_method_declares_its_default_search_key_and_a_default_space_out_of_range_is_refused(monkeypatch) -> None:
    from harness import registry
    from harness.claim_files import NotComparable, Side
    from harness.tuning import search_space

    assert search_space(Side("dqn"), 3) == ("lr", (0.0005, 0.001, 0.002))  # no declaration: lr x 2^k
    monkeypatch.setattr(registry.get_method("ppo"), "tune_key", "ent_coef", raising=False)
    key, space = search_space(Side("ppo"), 2)
    assert key == "ent_coef" and space == pytest.approx((0.01 / 2 ** 0.5, 0.01 * 2 ** 0.5))
    monkeypatch.setattr(registry.get_method("dqn"), "tune_key", "gamma", raising=False)
    with pytest.raises(NotComparable, match="default search space for gamma .* own `tune: {key: gamma"):
        search_space(Side("dqn"), 3)  # 0.99 x 2 is no discount
