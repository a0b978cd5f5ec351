#!/usr/bin/env python3
"""Benchmark `stacksalt model check` against its 10 s target for a 1000-node model.

Generates a synthetic model (stacksalt.model.synthetic: ~200 classes over service,
system and cluster levels, ~1,400 ``_param`` references, 1000 nodes) into a temporary
directory, then times:

* the check in-process (``stacksalt.model.check.run``), N times;
* the ``stacksalt model check`` command on it (interpreter start-up included), N times;
* ``stacksalt model check lab`` on the real model, if ``reclass/nodes/lab`` exists.

and prints the medians and their ratio to the target. Not a test: run it by hand,
``.venv/bin/python benchmarks/model_check.py [--nodes 1000] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stacksalt import paths
from stacksalt.model import check
from stacksalt.model.synthetic import generate

TARGET_SECONDS = 10.0
STACKSALT = Path(sys.executable).parent / "stacksalt"


def _time_cli(args: list[str], runs: int) -> tuple[list[float], int]:
    times, code = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run([str(STACKSALT), *args], capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        code = proc.returncode
    return times, code


def _report(label: str, times: list[float], note: str = "") -> None:
    median = statistics.median(times)
    runs = ", ".join(f"{t:.2f}" for t in times)
    print(
        f"{label:<44} median {median:6.2f} s  ({median / TARGET_SECONDS:5.1%} of the "
        f"{TARGET_SECONDS:.0f} s target)  runs: {runs}{note}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="stacksalt-bench-") as tmp:
        stats = generate(Path(tmp) / "inventory", nodes=args.nodes)
        print(
            f"synthetic model: {stats.nodes} nodes, {stats.classes} classes, "
            f"{stats.references} references"
        )
        times, errors = [], 0
        for _ in range(args.runs):
            started = time.perf_counter()
            result = check.run(stats.inventory, stats.deployment)
            times.append(time.perf_counter() - started)
            errors = len(result.errors)
        _report("check.run() in-process, synthetic", times, f"  errors: {errors}")
        cli = ["model", "check", stats.deployment, "--inventory", str(stats.inventory)]
        times, code = _time_cli(cli, args.runs)
        _report("`stacksalt model check`, synthetic", times, f"  exit code: {code}")

    real = paths.reclass_dir("lab")
    if real is not None and (real / "nodes" / "lab").is_dir():
        times, code = _time_cli(["model", "check", "lab", "--inventory", str(real)], args.runs)
        _report("`stacksalt model check lab`, real model", times, f"  exit code: {code}")
    else:
        print(f"real model: {real}/nodes/lab does not exist, skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
