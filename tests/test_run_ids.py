"""Run ids: a knob added to a method's Config after records exist leaves their ids alone."""

from __future__ import annotations

from dataclasses import dataclass

from harness.interface import added_later
from harness.jsonable import run_id
from harness.plan import config_identity


@dataclass(frozen=True)
class Before:
    lr: float = 1e-3


@dataclass(frozen=True)
class After:
    lr: float = 1e-3
    retention: float = added_later(1.0)


def test_a_knob_added_later_is_in_the_run_id_only_when_set() -> None:
    assert run_id(config_identity(After())) == run_id(config_identity(Before()))
    assert config_identity(After(retention=0.9)) == {"lr": 1e-3, "retention": 0.9}
    assert run_id(config_identity(After(retention=0.9))) != run_id(config_identity(Before()))
