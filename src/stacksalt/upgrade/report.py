"""The rehearsal's report: what the load generator saw, API by API, phase by phase.

Input: the request log (one record per request: ``t`` its start in epoch seconds, ``api``,
``op``, ``status`` the HTTP status or 0 when no response came, ``ms`` its latency, ``ok``,
``error``) and the phases (``name``, ``start``, ``end``) the rehearsal went through.

Output, for each API, the fields OSIC's api_uptime reported (``total_requests``,
``failed_requests``, ``uptime_pct``), plus the longest error window (from the start of
the first failed request of a run of failures with no success between them, to the end of
its last one), the p50 and p99 latency before the first phase, during the phases and after
the last, and each phase's duration. ``picture`` draws requests and errors per API over
time with the phase boundaries (matplotlib, PNG).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stacksalt.errors import StacksaltError

FIELDS = ("t", "api", "op", "status", "ms", "ok")


class ReportError(StacksaltError):
    """The request log or the phases cannot be read; the message names the file."""


def read_log(path: Path) -> list[dict[str, Any]]:
    """The request log, one JSON object per line."""
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReportError(f"{path}:{number}: not a JSON record ({exc.msg})") from None
        missing = [f for f in FIELDS if f not in record]
        if missing:
            raise ReportError(f"{path}:{number}: a request record without "
                              f"{', '.join(missing)}")
        records.append(record)
    return records


def percentile(values: list[float], pct: float) -> float | None:
    """The nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def error_windows(records: Iterable[dict[str, Any]]) -> list[tuple[float, float]]:
    """The (start, end) of each run of failed requests of one API, in time order."""
    windows: list[tuple[float, float]] = []
    start = end = None
    for rec in sorted(records, key=lambda r: r["t"]):
        if rec["ok"]:
            if start is not None:
                windows.append((start, end))
                start = end = None
            continue
        finish = rec["t"] + rec["ms"] / 1000
        if start is None:
            start, end = rec["t"], finish
        else:
            end = max(end, finish)
    if start is not None:
        windows.append((start, end))
    return windows


def _period(t: float, phases: list[dict[str, Any]]) -> str:
    if not phases or t < phases[0]["start"]:
        return "before"
    if t >= phases[-1]["end"]:
        return "after"
    return "during"


def _latency(records: list[dict[str, Any]], phases: list[dict[str, Any]]) -> dict[str, Any]:
    by_period: dict[str, list[float]] = defaultdict(list)
    for rec in records:
        if rec["ok"]:
            by_period[_period(rec["t"], phases)].append(rec["ms"])
    return {period: {"p50_ms": percentile(by_period[period], 50),
                     "p99_ms": percentile(by_period[period], 99),
                     "requests": len(by_period[period])}
            for period in ("before", "during", "after")}


def summarize(records: list[dict[str, Any]], phases: list[dict[str, Any]],
              **extra: Any) -> dict[str, Any]:
    """The report as a JSON-able mapping; ``extra`` (release, shape, ...) is kept as is."""
    phases = sorted(phases, key=lambda p: p["start"])
    by_api: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        by_api[rec["api"]].append(rec)
    apis: dict[str, Any] = {}
    longest = {"api": None, "seconds": 0.0, "start": None}
    for api in sorted(by_api):
        recs = by_api[api]
        failed = [r for r in recs if not r["ok"]]
        windows = error_windows(recs)
        widest = max(windows, key=lambda w: w[1] - w[0], default=None)
        seconds = round(widest[1] - widest[0], 3) if widest else 0.0
        apis[api] = {
            "total_requests": len(recs),
            "failed_requests": len(failed),
            "uptime_pct": round(100 * (len(recs) - len(failed)) / len(recs), 3),
            "longest_error_window_s": seconds,
            "operations": sorted({r["op"] for r in recs}),
            "failures": _failure_kinds(failed),
            # where each failure fell: "<operation> @ <phase>" (or before/after/between)
            "failed_in": _failed_in(failed, phases),
            "latency": _latency(recs, phases),
        }
        if widest and (longest["api"] is None or seconds > longest["seconds"]):
            longest = {"api": api, "seconds": seconds, "start": widest[0]}
    total = len(records)
    failed_total = sum(a["failed_requests"] for a in apis.values())
    return {
        **extra,
        "apis": apis,
        "total_requests": total,
        "failed_requests": failed_total,
        "uptime_pct": round(100 * (total - failed_total) / total, 3) if total else None,
        "longest_error_window": longest,
        "phases": [{"name": p["name"], "seconds": round(p["end"] - p["start"], 3)}
                   for p in phases],
        "upgrade_seconds": (round(phases[-1]["end"] - phases[0]["start"], 3)
                            if phases else None),
    }


def phase_of(t: float, phases: list[dict[str, Any]]) -> str:
    """The name of the phase running at ``t``: before, after, between two, or its own."""
    if not phases or t < phases[0]["start"]:
        return "before"
    for phase in phases:
        if phase["start"] <= t < phase["end"]:
            return phase["name"]
    return "after" if t >= phases[-1]["end"] else "between"


def _failed_in(failed: list[dict[str, Any]], phases: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for rec in failed:
        out[f"{rec['op']} @ {phase_of(rec['t'], phases)}"] += 1
    return dict(sorted(out.items()))


def _failure_kinds(failed: list[dict[str, Any]]) -> dict[str, int]:
    kinds: dict[str, int] = defaultdict(int)
    for rec in failed:
        what = f"{rec['op']}: {rec['status'] or (rec.get('error') or 'no response')}"
        kinds[what[:160]] += 1
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def lines(report: dict[str, Any]) -> list[str]:
    """The report as text: one line per API, then the phases."""
    out = [f"{'api':<12} {'requests':>8} {'failed':>6} {'uptime %':>9} {'err win s':>9} "
           f"{'p50 before/during/after ms':>28} {'p99 during ms':>13}"]
    for api, a in report["apis"].items():
        lat = a["latency"]

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.0f}"

        p50 = "/".join(ms(lat[p]["p50_ms"]) for p in ("before", "during", "after"))
        out.append(f"{api:<12} {a['total_requests']:>8} {a['failed_requests']:>6} "
                   f"{a['uptime_pct']:>9.3f} {a['longest_error_window_s']:>9.1f} "
                   f"{p50:>28} {ms(lat['during']['p99_ms']):>13}")
        for what, count in a["failures"].items():
            out.append(f"  {count} x {what}")
        for where, count in a["failed_in"].items():
            out.append(f"  {count} x {where}")
    out.append("phases: " + ", ".join(f"{p['name']} {p['seconds']:.1f} s"
                                      for p in report["phases"]))
    out.append(f"all APIs: {report['total_requests']} requests, "
               f"{report['failed_requests']} failed; upgrade {report['upgrade_seconds']} s")
    return out


def write(report: dict[str, Any], records: list[dict[str, Any]],
          phases: list[dict[str, Any]], path: Path) -> Path:
    """The JSON at ``path`` and the picture beside it (``.png``); returns the picture."""
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    png = path.with_suffix(".png")
    picture(records, phases, png)
    return png


def picture(records: list[dict[str, Any]], phases: list[dict[str, Any]],
            path: Path, bin_seconds: float = 1.0) -> None:
    """Requests and failed requests per second for each API, phase boundaries marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not records:
        raise ReportError(f"{path}: no requests to draw (the load generator logged none)")
    t0 = min(r["t"] for r in records)
    apis = sorted({r["api"] for r in records})
    fig, axes = plt.subplots(len(apis), 1, sharex=True, squeeze=False,
                             figsize=(10, 1.6 * len(apis) + 1))
    end = max(r["t"] for r in records) - t0
    bins = [i * bin_seconds for i in range(int(end / bin_seconds) + 2)]
    for ax, api in zip(axes[:, 0], apis, strict=True):
        recs = [r for r in records if r["api"] == api]
        ax.hist([r["t"] - t0 for r in recs if r["ok"]], bins=bins, color="tab:green",
                label="answered")
        ax.hist([r["t"] - t0 for r in recs if not r["ok"]], bins=bins, color="tab:red",
                label="failed")
        for phase in phases:
            ax.axvline(phase["start"] - t0, color="grey", linewidth=0.8)
        ax.set_ylabel(api, rotation=0, ha="right")
    top = axes[0, 0]
    for phase in phases:
        top.text(phase["start"] - t0, top.get_ylim()[1], phase["name"], fontsize=7,
                 rotation=30, va="bottom")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel(f"seconds (requests per {bin_seconds:g} s)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
