"""Mutation check of the verdict engine: every mutant must make at least one test fail.

    python tests/mutation_check.py [--tests tests/test_verdicts.py tests/test_stats.py]

Each mutant replaces one exact snippet of harness/stats.py, harness/claims.py or
harness/quantities.py in a temporary copy of the repository and runs the tests there
(-x: the first failure kills it). Prints one line per mutant; exits 1 if any survived.
Not collected by pytest (the name does not start with test_).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/test_verdicts.py", "tests/test_stats.py", "tests/test_claim_planning.py",
         "tests/test_claims.py::test_a_generally_worded_claim_is_decided_on_its_further_tasks_too"]

# (name, file, original snippet, mutated snippet)
MUTANTS = [
    ("flip a comparison (support >= when low <= boundary)", "harness/stats.py",
     'if (low >= boundary) if relation.op == ">=" else (high <= boundary):',
     'if (low <= boundary) if relation.op == ">=" else (high <= boundary):'),
    ("invert the ratio (method / baseline)", "harness/quantities.py",
     "value, low, high = _div(b.value, m.value), _div(b.low, m.high), _div(b.high, m.low)",
     "value, low, high = _div(m.value, b.value), _div(m.low, b.high), _div(m.high, b.low)"),
    ("drop the bound (never reached read as exact)", "harness/quantities.py",
     "spent = _spent(record, axis)\n    return Reading(spent, spent, math.inf, reached=False)",
     "spent = _spent(record, axis)\n    return Reading(spent, spent, spent, reached=False)"),
    ("drop the bound (decide on values, not on low/high ends)", "harness/claims.py",
     'evidence = Evidence(tuple(scale(r.get("low", r["value"])) for r in rows),\n'
     '                        tuple(scale(r.get("high", r["value"])) for r in rows),',
     'evidence = Evidence(tuple(scale(r["value"]) for r in rows),\n'
     '                        tuple(scale(r["value"]) for r in rows),'),
    ("drop diverged seeds", "harness/quantities.py",
     "    for seed in sorted(method):",
     '    for seed in sorted(s for s in method if method[s].status != "diverged"):'),
    ("seeds-to-decide constant", "harness/stats.py",
     "    values = np.asarray(evidence.value, dtype=float)\n    ends =",
     "    return evidence.n + 2\n    values = np.asarray(evidence.value, dtype=float)\n    ends ="),
    ("seeds-to-decide from the normal quantile", "harness/stats.py",
     "critical = float(scipy_stats.t.ppf(1 - alpha, n - 1))",
     "critical = float(scipy_stats.norm.ppf(1 - alpha))"),
    ("drop the resolution step", "harness/stats.py",
     "+ step ** 2 / 4) / n", "+ 0 * step) / n"),
    ("drop the shared test-set error", "harness/stats.py",
     "/ n + shared_sd ** 2)\n    half", "/ n)\n    half"),
    ("no alpha spending over looks", "harness/stats.py",
     "return total / 2 ** look", "return total / 2"),
    ("looks not recorded (every look is the first)", "harness/claims.py",
     "    return len(seen), history", "    return 1, history"),
    ("accuracy gap not oriented", "harness/quantities.py",
     "value, low, high = -value, -high, -low", "pass"),
    ("any override accepted", "harness/claim_files.py",
     "if head in SAFE_OVERRIDES or (allow_profile", "if True or (allow_profile"),
    ("planned cells not checked", "harness/claims.py",
     "    if problems:\n        raise ConfigError(f\"claim {claim.id}: a planned cell",
     "    if False:\n        raise ConfigError(f\"claim {claim.id}: a planned cell"),
    ("baseline tuned on a compared seed", "harness/tuning.py",
     "TUNING_SEED = 10_000", "TUNING_SEED = 0"),
    ("confidence may loosen alpha", "harness/claim_files.py",
     "if self.confidence is not None and not (1 - ALPHA <= self.confidence < 1):",
     "if self.confidence is not None and not (0.5 <= self.confidence < 1):"),
    ("two seeds accepted", "harness/stats.py", "MIN_SEEDS = 3\n", "MIN_SEEDS = 2\n"),
    ("equivalence on raw ratios", "harness/stats.py",
     "return (-math.log1p(relation.value), math.log1p(relation.value))",
     "return (-relation.value, relation.value)"),
    ("retention gap read as exact", "harness/quantities.py",
     "             worst=_worst_retention, resolution=_retention_resolution),",
     "             worst=_worst_retention),"),
    ("fine-tuning robustness rescales the pretraining", "harness/claims.py",
     "_verify_once(variant, runner, claim_path, pretrain_budget)", "_verify_once(variant, runner, claim_path)"),
    ("a general claim's further tasks are not decided", "harness/claims.py",
     "for other in claim.elsewhere()]", "for other in claim.elsewhere() if False]"),
    ("stale check ignores the claim file", "harness/claims.py",
     'if file_sha256(claim_path) != provenance["claim_sha256"]:', "if False:"),
]


def run(name: str, path: str, original: str, mutated: str, tests: list[str]) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        copy = Path(tmp) / "repo"
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.split()
        for f in files:
            if (ROOT / f).is_file():
                (copy / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / f, copy / f)
        target = copy / path
        text = target.read_text()
        if text.count(original) != 1:
            return False, f"snippet found {text.count(original)} times: the mutant is stale, fix its snippet"
        target.write_text(text.replace(original, mutated))
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=copy, capture_output=True, text=True)
        failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
        return done.returncode != 0, (failed[0] if failed else done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", nargs="*", default=TESTS)
    parser.add_argument("--only", default=None, help="run the mutants whose name contains this")
    args = parser.parse_args()
    survived = 0
    for name, path, original, mutated in MUTANTS:
        if args.only and args.only not in name:
            continue
        killed, detail = run(name, path, original, mutated, args.tests)
        survived += not killed
        print(f"{'killed  ' if killed else 'SURVIVED'} | {name} | {path} | {detail}", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
