"""The release upgrade rehearsed under load (Docker tier; no Kubernetes needed).

`stacksalt upgrade rehearse lab --to gazpacho` runs flamingo's control plane from the
lab's objects on Docker (a sandbox per pod, probes as written, each Service a haproxy over
ready pods), makes resources (project, user, image, network, subnet, port, flavor, a
server on the fake driver), starts the load generator (keystoneauth1 against every API
through its Service) and applies gazpacho's plan in its order: expand and migrate Jobs,
each workload rolled under its strategy, contract Jobs. Twice:

- the shipped shape (maxSurge 1, maxUnavailable 0, readiness probes, preStop): no failed
  request but a server build that lands on the one compute while it rolls (KNOWN below),
  every resource made before still usable, under 10 minutes;
- the negative control (`--break recreate`: every Deployment stops its pod before the new
  one is ready): the same measurement must count failed requests.

It runs after the next-release module (name order): its gazpacho images are built once
and the two stacks never share the two cores.
"""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from stacksalt import paths
from stacksalt.cli import main as cli_main
from stacksalt.upgrade import rehearse, report

pytestmark = pytest.mark.lab

OPERATIONS = {
    "keystone": {"token issue", "token validate"},
    "glance": {"image list"},
    "nova": {"flavor list", "server list", "server create", "server show", "server active",
             "server delete", "server gone"},
    "neutron": {"network list", "port create", "port delete"},
    "placement": {"resource providers"},
}


@pytest.fixture(scope="module")
def shipped(lab_secrets, tmp_path_factory):
    """The rehearsal through the CLI, as an operator runs it, with its report."""
    out = tmp_path_factory.mktemp("rehearsal") / "shipped.json"
    rc = cli_main(["-C", str(paths.example("lab")), "upgrade", "rehearse", "--to", "gazpacho",
                   "--report", str(out)])
    return rc, out, json.loads(out.read_text())


@pytest.fixture(scope="module")
def broken(shipped, lab_secrets):
    return rehearse.rehearse("lab", "gazpacho", Console(), prefix="stacksalt-test-broken",
                             broken="recreate")


# The one failure the shipped shape still has (issue 12 stays open on it): a server
# created while the only compute rolls (DaemonSet, maxUnavailable 1, maxSurge 0) is
# scheduled to it, and the new nova-compute's init_host sets an instance still BUILDING
# on its host to ERROR (nova/compute/manager.py, _init_instance: "compute stopped before
# instance was fully spawned"). Every other request must succeed.
KNOWN = {"server active @ roll nova-compute"}


def test_no_request_fails_across_the_upgrade_but_a_build_on_the_rolling_compute(shipped):
    rc, _, rep = shipped
    failed = {api: a["failed_in"] for api, a in rep["apis"].items() if a["failed_requests"]}
    unexplained = {api: {k: n for k, n in where.items() if k not in KNOWN}
                   for api, where in failed.items()}
    assert not any(unexplained.values()), "\n".join(report.lines(rep))
    assert sum(n for where in failed.values() for n in where.values()) <= 2, failed
    assert rc == (1 if failed else 0)


def test_every_api_was_loaded_before_during_and_after(shipped):
    """What makes zero failures a measurement: each API answered requests of each of its
    operations, in each period, through its Service."""
    _, _, rep = shipped
    assert set(rep["apis"]) == set(OPERATIONS)
    for api, ops in OPERATIONS.items():
        a = rep["apis"][api]
        assert set(a["operations"]) >= ops, api
        for period in ("before", "during", "after"):
            assert a["latency"][period]["requests"] >= 3, (api, period, a["latency"])
    assert rep["total_requests"] > 300


def test_the_plan_ran_in_order_under_ten_minutes(shipped):
    _, _, rep = shipped
    names = [p["name"] for p in rep["phases"]]
    for role in ("keystone", "placement-api", "glance-api", "neutron-server",
                 "nova-controller"):
        expand, migrate = names.index(f"{role} expand"), names.index(f"{role} migrate")
        rolled, contract = names.index(f"roll {role}"), names.index(f"{role} contract")
        assert expand < migrate < rolled < contract, (role, names)
    assert names.index("roll nova-controller") < names.index("roll nova-compute") < \
        names.index("nova-controller contract")
    assert not any("bootstrap" in n for n in names)  # unless_exists: first install only
    assert rep["upgrade_seconds"] < 600
    assert rep["release"] == {"from": "flamingo", "to": "gazpacho"}
    assert rep["shape"] == "shipped"
    assert rep["not_running"] == []


def test_every_resource_made_before_is_still_usable(shipped):
    _, _, rep = shipped
    assert rep["resources_failed"] == []
    checked = " | ".join(rep["resources_checked"])
    for what in ("token", "image", "flavor", "network", "subnet", "port", "new port",
                 "hard-rebooted, stopped and started", "allocation"):
        assert what in checked, (what, checked)


def test_the_report_has_osic_fields_and_a_picture(shipped):
    _, path, rep = shipped
    for a in rep["apis"].values():
        assert {"total_requests", "failed_requests", "uptime_pct",
                "longest_error_window_s"} <= a.keys()
    png = path.with_suffix(".png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_the_broken_shape_counts_failed_requests(broken):
    """The negative control: Recreate leaves each API without a ready pod for a while."""
    rep = broken.report
    assert rep["shape"] == "recreate"
    assert rep["failed_requests"] > 0, "\n".join(report.lines(rep))
    assert rep["longest_error_window"]["seconds"] > 1
    down = {api for api, a in rep["apis"].items() if a["failed_requests"]}
    assert {"keystone", "glance", "nova", "neutron", "placement"} <= down, down
