"""The installed packages are the ones constraints.txt pins (what CI and the README install).

A mismatch means the environment was installed without the lock, so a test result here may
not be the one CI gets: reinstall with `pip install -c constraints.txt -e ".[dev]"`.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

CONSTRAINTS = Path(__file__).resolve().parent.parent / "constraints.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*$")


def pins() -> dict[str, str]:
    found = {}
    for line in CONSTRAINTS.read_text().splitlines():
        match = PIN.match(line)
        if match:
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def test_the_lock_pins_the_test_tools_and_torch() -> None:
    pinned = pins()
    for name in ("pytest", "torch", "lm-eval", "hypothesis", "ray", "submitit"):
        assert name in pinned, f"constraints.txt has no pin for {name}: regenerate it (see its header)"
    assert pinned["torch"] == "2.13.0", "torch stays at the 2.13.0 build (a newer one pulls CUDA wheels)"


def test_installed_versions_are_the_pinned_ones() -> None:
    wrong = []
    for name, version in pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name}: pinned {version}, not installed")
            continue
        # a local label (+cpu, +cu124) is the build of the same release
        if Version(installed).public != Version(version).public:
            wrong.append(f"{name}: pinned {version}, installed {installed}")
    assert not wrong, ("installed without the lock; run pip install -c constraints.txt -e \".[dev]\":\n  "
                       + "\n  ".join(wrong))


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """`.ci/run` runs the README's command 2 as written, so what CI checks is what a newcomer runs."""
    root = CONSTRAINTS.parent
    command = (root / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert command.endswith("python -m pytest") and "constraints.txt" in command
    assert command in (root / "README.md").read_text().splitlines()
