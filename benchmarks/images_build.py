#!/usr/bin/env python3
"""Benchmark `stacksalt images build lab` when nothing changed, against its 30 s target.

Runs `stacksalt images build DEPLOYMENT` (the command, interpreter start-up, model check,
base and Salt image checks, context assembly and every build included) once to warm the
cache, then N more times, and prints each run, the median and its ratio to the target.
Every image must come entirely from the layer cache; a run that rebuilds a step is
reported (the contexts are deterministic, so that means something really changed).

Cold builds (measured on the 2-core machine, nothing cached but stacksalt/base and
stacksalt/salt; see README "Images") are printed for reference: they are not repeated
here, as removing images that other work uses is not a benchmark's business.

Not a test: run it by hand, ``.venv/bin/python benchmarks/images_build.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 30.0
STACKSALT = Path(sys.executable).parent / "stacksalt"
COLD = {
    "openstack-base:flamingo (pip install of 174 packages: 178 s)": 235,
    "openstack-base:gazpacho (machine under load from other builds)": 325,
    "mariadb + rabbitmq + memcached (apt)": 57,
    "freeze flamingo (builddeps stage + pip install)": 211,
    "freeze gazpacho (builddeps cached)": 156,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--deployment", default="lab")
    args = parser.parse_args()
    cmd = [str(STACKSALT), "images", "build", args.deployment]
    print(f"warm-up: {' '.join(cmd[1:])}", flush=True)
    warm = subprocess.run(cmd, capture_output=True, text=True)
    if warm.returncode != 0:
        print(warm.stdout[-4000:], warm.stderr[-4000:], sep="\n")
        return 1
    times = []
    for i in range(args.runs):
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
        took = time.perf_counter() - started
        if proc.returncode != 0:
            print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
            return 1
        rebuilt = re.findall(r"│ (\S+)\s+│.*│ no \((\d+/\d+)\)", proc.stdout)
        images = len(re.findall(r"│ (yes|no) ", proc.stdout)) or len(
            re.findall(r"│\s+(yes|no \()", proc.stdout))
        times.append(took)
        note = f"rebuilt steps: {rebuilt}" if rebuilt else "all cached"
        print(f"run {i + 1}: {took:6.2f} s ({images} images, {note})", flush=True)
    median = statistics.median(times)
    print(f"\nunchanged rebuild of {args.deployment}'s images: median {median:.2f} s over "
          f"{len(times)} runs; target {TARGET_SECONDS:.0f} s; ratio {median / TARGET_SECONDS:.2f}")
    print("cold builds (recorded):")
    for what, seconds in COLD.items():
        print(f"  {what}: {seconds} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
