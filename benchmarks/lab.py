#!/usr/bin/env python3
"""Lab benchmarks (not tests): prints medians and their ratio to the targets.

- lab up with images cached, from no containers: `lab down` then `lab up` (target 180 s)
- the idempotent second `salt '*' state.apply` on every lab node (target 30 s)

Usage: .venv/bin/python benchmarks/lab.py [--runs N] [--skip-up]
Leaves the lab up.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

from rich.console import Console

from stacksalt.deployment import Deployment
from stacksalt.lab import dockerd
from stacksalt.lab import lab as lab_mod
from stacksalt.lab.plan import plan

TARGET_UP_S = 180.0
TARGET_APPLY_S = 30.0


def report(name: str, samples: list[float], target: float) -> None:
    med = statistics.median(samples)
    runs = ", ".join(f"{s:.1f}" for s in samples)
    print(f"{name}: median {med:.1f} s over {len(samples)} runs ({runs}); "
          f"target {target:.0f} s; ratio {med / target:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-up", action="store_true", help="only time the idempotent apply")
    args = ap.parse_args()
    quiet = Console(quiet=True)
    if not args.skip_up:
        ups = []
        for i in range(args.runs):
            lab_mod.down("lab", console=quiet)
            log = Console(file=io.StringIO(), record=True, width=120)
            t = time.monotonic()
            rc = lab_mod.up("lab", console=log)
            ups.append(time.monotonic() - t)
            print(f"lab up run {i + 1}: {ups[-1]:.1f} s (exit {rc})", flush=True)
            if rc:
                print(log.export_text())
                return rc
        report("lab up (images cached, no containers)", ups, TARGET_UP_S)
    elif lab_mod.up("lab", console=quiet):
        return 1
    lab = plan(Deployment.load("lab"))
    master = dockerd.ensure_engine(quiet).containers.get(
        lab.master.container_name(lab.deployment))
    applies = []
    expected = [n.minion_id for n in lab.nodes]
    for i in range(args.runs):
        t = time.monotonic()
        results = lab_mod.apply(master, "*", expected)
        applies.append(time.monotonic() - t)
        changed = sum(r.changed for r in results.values())
        failed = sum(r.failed for r in results.values())
        print(f"state.apply run {i + 1}: {applies[-1]:.1f} s, {changed} changed, "
              f"{failed} failed", flush=True)
    report("idempotent salt '*' state.apply (9 nodes)", applies, TARGET_APPLY_S)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
