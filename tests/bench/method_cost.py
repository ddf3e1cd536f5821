"""Cost per forward-equivalent of each method against backprop, on vision-vit's quick profile.

    python tests/bench/method_cost.py [--task mlp|vit|both] [--steps N] [--repeats R] [--methods a,b] [key=value ...]

The figures of docs/_suites/vision-vit.md's cost table were taken with this script; the logic
now lives in harness/perf.py (`bench perf`, which probes any suite and profile, the default
run's Fashion-MNIST models included). This keeps the old command: the quick profile's cells
(digits, batch 64), interleaved rounds, one thread. Reports only; asserts nothing (timings on
a shared machine are noise for a test).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: this checkout's code, not an installed copy's
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness import perf

METHODS = ("backprop", "evolution", "zeroth_order", "forward_forward")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=("mlp", "vit", "both"), default="both")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per method per round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds, methods interleaved")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated; backprop is the reference")
    parser.add_argument("overrides", nargs="*", help="suite overrides, e.g. method.zeroth_order.noise=replay")
    args = parser.parse_args()
    overrides = ["suite=vision-vit", "profile=quick", "seeds=1", "device=cpu", f"method=[{args.methods}]",
                 *args.overrides]
    if args.task != "both":
        overrides.append(f"task={args.task}")
    print(perf.table(perf.measure(overrides, steps=args.steps, repeats=args.repeats)))


if __name__ == "__main__":
    main()
