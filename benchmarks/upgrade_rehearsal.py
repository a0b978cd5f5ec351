#!/usr/bin/env python3
"""Benchmark the release upgrade under load: `stacksalt upgrade rehearse lab --to
gazpacho`, N times, against the goal (zero failed requests across all APIs, the whole
upgrade under 600 s on this machine), and the negative control (`--break recreate`) in
the same run, which must count failed requests.

Per run: the upgrade's duration (the first step of the plan to the end of the last), the
requests and failed requests of each API, the longest error window, the p50/p99 latency
during the upgrade. Then medians, and the ratio of the median upgrade time to the 600 s
target. The exit code is 1 when a shipped run failed a request, took longer than the
target, or the negative control failed none.

Needs the Docker engine (the images are built when missing: a first run builds both
releases' OpenStack images). Not a test: run it by hand,
``.venv/bin/python benchmarks/upgrade_rehearsal.py [--runs 3] [--no-control]
[--reports DIR]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console

from stacksalt import paths
from stacksalt.upgrade import rehearse, report

TARGET_SECONDS = 600.0


def one(console: Console, broken: str | None, reports: Path | None, n: int) -> dict:
    started = time.monotonic()
    result = rehearse.rehearse("lab", "gazpacho", console, prefix="stacksalt-bench",
                               broken=broken)
    rep = result.report
    if reports is not None:
        reports.mkdir(parents=True, exist_ok=True)
        report.write(rep, result.records, result.phases,
                     reports / f"{broken or 'shipped'}-{n}.json")
    rep["wall_seconds"] = round(time.monotonic() - started, 1)
    print(f"{broken or 'shipped'} run {n}: upgrade {rep['upgrade_seconds']:.1f} s, "
          f"{rep['total_requests']} requests, {rep['failed_requests']} failed, longest "
          f"error window {rep['longest_error_window']['seconds']:.1f} s "
          f"({rep['longest_error_window']['api']}), wall {rep['wall_seconds']} s")
    for line in report.lines(rep):
        print(f"    {line}")
    return rep


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-control", action="store_true",
                        help="skip the negative control (--break recreate)")
    parser.add_argument("--reports", type=Path, help="write each run's report and picture")
    args = parser.parse_args()
    paths.activate(paths.example("lab"))
    console = Console(stderr=True)
    shipped = [one(console, None, args.reports, n) for n in range(1, args.runs + 1)]
    control = [] if args.no_control else [one(console, "recreate", args.reports, 1)]
    upgrade = statistics.median(r["upgrade_seconds"] for r in shipped)
    failed = statistics.median(r["failed_requests"] for r in shipped)
    total = statistics.median(r["total_requests"] for r in shipped)
    print(f"shipped shape, {len(shipped)} runs: median upgrade {upgrade:.1f} s (target "
          f"{TARGET_SECONDS:.0f} s, ratio {upgrade / TARGET_SECONDS:.2f}), median "
          f"{total:.0f} requests, median {failed:.0f} failed "
          f"(runs: {[r['failed_requests'] for r in shipped]})")
    for api in sorted(shipped[0]["apis"]):
        p99 = [r["apis"][api]["latency"]["during"]["p99_ms"] for r in shipped]
        p50 = [r["apis"][api]["latency"]["during"]["p50_ms"] for r in shipped]
        print(f"  {api}: during the upgrade p50 {statistics.median(p50):.0f} ms, "
              f"p99 {statistics.median(p99):.0f} ms")
    bad = any(r["failed_requests"] for r in shipped) or upgrade > TARGET_SECONDS
    for r in control:
        print(f"negative control (Recreate): {r['failed_requests']} of {r['total_requests']} "
              f"failed, longest error window {r['longest_error_window']['seconds']:.1f} s")
        bad = bad or r["failed_requests"] == 0
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
