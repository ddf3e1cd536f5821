"""The package a user would install: a wheel with its licence and metadata, that installs into a
fresh virtual environment and runs `bench list methods` there (issue 22).

Offline: the wheel is built without build isolation (the installed setuptools builds it) and
installed with --no-deps --no-index into a venv made with --system-site-packages, so torch and
the other dependencies come from this machine, not from a package index.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What a source checkout holds besides the package: never copied into the build tree.
NOT_SOURCE = shutil.ignore_patterns(".git", "results", "reports", "build", "dist", "site", "*.egg-info",
                                    "__pycache__", ".pytest_cache", ".venv*", "tests")


def test_metadata_names_the_licence_authors_and_urls() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] in ("MIT", "Apache-2.0")
    assert (ROOT / "LICENSE").read_text().strip(), "the LICENSE file is empty"
    assert project["authors"] == [{"name": "paradigm-bench developers"}]
    assert {"Homepage", "Source", "Documentation", "Issues"} <= set(project["urls"])
    assert any(c.startswith("Intended Audience") for c in project["classifiers"])


@pytest.mark.slow
def test_the_wheel_installs_in_a_fresh_venv_and_bench_runs(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)  # never leave build/ in the checkout
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(dist), str(source)], check=True, capture_output=True, text=True)
    wheel = next(dist.glob("paradigm_bench-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(info).decode())
    assert metadata["License-Expression"] in ("MIT", "Apache-2.0")
    assert any(n.endswith("licenses/LICENSE") for n in names), "the wheel carries no LICENSE"
    assert "suites/vision-vit.yaml" in names, "the suite files are package data and must ship"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python, bench = venv / "bin" / "python", venv / "bin" / "bench"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)],
                   check=True, capture_output=True, text=True)
    elsewhere = tmp_path / "elsewhere"  # not the checkout, so `import harness` cannot find the source tree
    elsewhere.mkdir()
    where = subprocess.run([str(python), "-c", "import harness; print(harness.__file__)"], cwd=elsewhere,
                           check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(venv), f"the venv imported harness from {where}, not from the wheel"
    listed = subprocess.run([str(bench), "list", "methods"], cwd=elsewhere, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert "backprop" in listed.stdout and "forward_forward" in listed.stdout, listed.stdout
    suites = subprocess.run([str(bench), "list", "suites"], cwd=elsewhere, capture_output=True, text=True)
    assert suites.returncode == 0 and "vision-vit" in suites.stdout, suites.stderr
