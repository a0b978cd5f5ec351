"""The rehearsal's report from a request log (stacksalt.upgrade.report): the counts, the
error windows, the latencies by period and the picture, from synthetic logs whose answers
are known, with the broken cases beside the right ones."""

from __future__ import annotations

import json

import pytest

from stacksalt.upgrade import report

pytestmark = pytest.mark.fast

PHASES = [{"name": "expand", "start": 100.0, "end": 110.0},
          {"name": "roll keystone", "start": 110.0, "end": 130.0},
          {"name": "contract", "start": 130.0, "end": 135.0}]


def rec(t, api="keystone", ok=True, ms=10.0, status=None, op="token issue"):
    return {"t": t, "api": api, "op": op, "status": status if status is not None else
            (201 if ok else 503), "ms": ms, "ok": ok, "error": None if ok else "down"}


def steady(api, start, end, step=1.0, ms=10.0):
    t, out = start, []
    while t < end:
        out.append(rec(t, api, ms=ms))
        t += step
    return out


def test_no_failure_is_full_uptime():
    records = steady("keystone", 90, 140) + steady("glance", 90, 140, ms=20.0)
    out = report.summarize(records, PHASES)
    assert out["apis"]["keystone"] == {
        **out["apis"]["keystone"], "total_requests": 50, "failed_requests": 0,
        "uptime_pct": 100.0, "longest_error_window_s": 0.0}
    assert out["failed_requests"] == 0 and out["uptime_pct"] == 100.0
    assert out["longest_error_window"]["api"] is None
    assert out["upgrade_seconds"] == 35.0
    assert [p["seconds"] for p in out["phases"]] == [10.0, 20.0, 5.0]


def test_failures_are_counted_and_their_window_measured():
    """Negative control of the one above: three failures in a row during the roll (the
    last one 500 ms long) are 3 failed of 50, one window from the first failure's start
    to the last one's end, and a lone failure later is a second, shorter window."""
    records = steady("keystone", 90, 140)
    for r in records:
        if r["t"] in (115.0, 116.0, 117.0):
            r.update(ok=False, status=0, error="ConnectFailure: refused")
        if r["t"] == 117.0:
            r["ms"] = 500.0
        if r["t"] == 125.0:
            r.update(ok=False, status=502)
    out = report.summarize(records, PHASES)
    api = out["apis"]["keystone"]
    assert api["total_requests"] == 50
    assert api["failed_requests"] == 4
    assert api["uptime_pct"] == 92.0
    assert api["longest_error_window_s"] == 2.5
    assert report.error_windows(records) == [(115.0, 117.5), (125.0, 125.01)]
    assert out["longest_error_window"] == {"api": "keystone", "seconds": 2.5, "start": 115.0}
    assert api["failures"] == {"token issue: ConnectFailure: refused": 3, "token issue: 502": 1}
    assert api["failed_in"] == {"token issue @ roll keystone": 4}
    assert report.phase_of(99, PHASES) == "before" and report.phase_of(135, PHASES) == "after"
    assert report.phase_of(105, PHASES) == "expand"
    assert report.phase_of(120, [{"name": "a", "start": 100, "end": 110},
                                 {"name": "b", "start": 130, "end": 140}]) == "between"
    assert any("4" in line and "keystone" in line for line in report.lines(out))


def test_a_success_between_failures_ends_the_window():
    records = [rec(1, ok=False), rec(2), rec(3, ok=False)]
    assert report.error_windows(records) == [(1, 1.01), (3, 3.01)]
    assert report.error_windows([rec(1), rec(2)]) == []


def test_latency_is_split_before_during_and_after_the_phases():
    records = steady("nova", 90, 100, ms=10) + steady("nova", 100, 135, ms=100) + \
        steady("nova", 135, 140, ms=20)
    records.append(rec(120.5, "nova", ok=False, ms=9999))  # failures count no latency
    lat = report.summarize(records, PHASES)["apis"]["nova"]["latency"]
    assert lat["before"] == {"p50_ms": 10, "p99_ms": 10, "requests": 10}
    assert lat["during"] == {"p50_ms": 100, "p99_ms": 100, "requests": 35}
    assert lat["after"] == {"p50_ms": 20, "p99_ms": 20, "requests": 5}


def test_nearest_rank_percentile():
    values = [float(v) for v in range(1, 101)]
    assert report.percentile(values, 50) == 50
    assert report.percentile(values, 99) == 99
    assert report.percentile(values, 100) == 100
    assert report.percentile([7.0], 99) == 7.0
    assert report.percentile([], 50) is None


def test_a_bad_log_line_names_the_file_and_line(tmp_path):
    log = tmp_path / "requests.jsonl"
    log.write_text(json.dumps(rec(1)) + "\n" + "{not json\n")
    with pytest.raises(report.ReportError, match=r"requests.jsonl:2: not a JSON record"):
        report.read_log(log)
    log.write_text(json.dumps({"t": 1, "api": "nova"}) + "\n")
    with pytest.raises(report.ReportError, match=r"requests.jsonl:1: .* without op, status"):
        report.read_log(log)
    log.write_text(json.dumps(rec(1)) + "\n\n" + json.dumps(rec(2, ok=False)) + "\n")
    assert [r["ok"] for r in report.read_log(log)] == [True, False]


def test_write_makes_the_json_and_the_picture(tmp_path):
    records = steady("keystone", 90, 140) + steady("glance", 90, 140)
    records[20].update(ok=False)
    out = report.summarize(records, PHASES, release={"from": "a", "to": "b"})
    png = report.write(out, records, PHASES, tmp_path / "rehearsal.json")
    saved = json.loads((tmp_path / "rehearsal.json").read_text())
    assert saved["apis"]["keystone"]["failed_requests"] == 1
    assert saved["release"] == {"from": "a", "to": "b"}
    assert png == tmp_path / "rehearsal.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    with pytest.raises(report.ReportError, match="no requests to draw"):
        report.picture([], PHASES, tmp_path / "empty.png")
