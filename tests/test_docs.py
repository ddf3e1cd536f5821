"""The documentation site builds with `mkdocs build --strict` (a broken link or nav entry fails it),
and its generated pages cover every registered method and every suite."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import registry
from harness.config import available_suites

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs-material is not installed (it comes with the dev and docs extras: pip install -e '.[docs]')")


def test_docs_build_strict_with_a_page_per_method_and_suite(tmp_path: Path) -> None:
    site = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    for name in registry.method_names():
        page = site / "methods" / name / "index.html"
        assert page.is_file(), f"no docs page for method {name}"
        assert "Config" in page.read_text()
    for name in available_suites():
        assert (site / "suites" / name / "index.html").is_file(), f"no docs page for suite {name}"
    assert "Hinton" in (site / "methods" / "forward_forward" / "index.html").read_text()  # the docstring's paper
    assert "sanity-adamw-beats-slow-sgd" in (site / "claims" / "index.html").read_text()
    assert "harness/budget.py" in (site / "measurement" / "index.html").read_text()
