"""kubernetes.master.objects run for real by Salt on the lab's masters.

Every master holds the one plan and the cluster's objects under /etc/kubernetes/objects
(Calico, CoreDNS, OpenStack), exactly what `state.show_sls` says (the fast tier
validates those objects and that they are the builder's), with their modes: the Secret
0600 in a 0700 directory, the rest 0644/0755. A second run changes nothing; a stale file
(an old release's Job) is removed; a damaged Secret file is restored without its values
in the state's output.
"""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from stacksalt import saltrender, secrets

pytestmark = pytest.mark.lab

MASTERS = ["mst01.lab.local", "mst02.lab.local", "mst03.lab.local"]
TOP = "/etc/kubernetes/objects"
SECRET_DIR = f"{TOP}/openstack/00-secret"
STALE = f"{TOP}/openstack/30-glance-api/job-glance-api-contract-epoxy.yaml"
SLS = "kubernetes.master.objects"


def sh(container, cmd: str) -> str:
    res = container.exec_run(["sh", "-c", cmd])
    out = res.output.decode(errors="replace")
    assert res.exit_code == 0, f"{cmd}: exit {res.exit_code}"
    return out


def apply(lab, minion: str) -> dict:
    code, out = lab.salt(minion, "state.apply", SLS, timeout=300)
    assert isinstance(out, dict) and minion in out, f"state.apply returned {code}"
    states = out[minion]
    assert isinstance(states, dict), f"{minion}: state.apply did not run"
    failed = [k for k, v in states.items() if not v.get("result")]
    assert code == 0 and not failed, failed
    return states


@pytest.fixture(scope="module")
def expected(lab) -> dict[str, object]:
    """{path: dataset} the formula writes, from show_sls on this host for mst01."""
    states = saltrender.show_sls(MASTERS[0], "lab", [SLS])
    out = {}
    for state in states.values():
        if not isinstance(state, dict) or "file" not in state:
            continue
        args = {k: v for d in state["file"] if isinstance(d, dict) for k, v in d.items()}
        if "serialize" in state["file"]:
            out[args["name"]] = args["dataset"]
    assert len(out) > 60
    return out


@pytest.mark.parametrize("minion", MASTERS)
def test_files_are_the_rendered_objects_with_their_modes(lab, expected, minion):
    node = lab.container(minion)
    listing = sh(node, f"find {TOP} -printf '%y %m %u:%g %p\\n'").splitlines()
    modes = {line.split()[3]: tuple(line.split()[:3]) for line in listing}
    assert set(expected) <= set(modes)
    assert modes[SECRET_DIR] == ("d", "700", "root:root")
    # the one plan names every object file written, each once
    plan = yaml.safe_load(sh(node, f"cat {TOP}/apply-plan.yaml"))
    files = sorted(f"{TOP}/{s['file']}" for s in plan["steps"])
    assert files == sorted(p for p in expected if not p.endswith("/apply-plan.yaml"))
    assert {s["component"] for s in plan["steps"]} == {"kubernetes", "calico", "coredns",
                                                       "openstack"}
    for path, (kind, mode, owner) in modes.items():
        assert owner == "root:root", path
        if kind == "d":
            assert mode == ("700" if path == SECRET_DIR else "755"), path
        elif path.startswith(SECRET_DIR + "/"):
            assert mode == "600", path
        else:
            assert mode == "644", path
    for path, dataset in expected.items():
        written = yaml.safe_load(sh(node, f"cat {path}"))
        same = written == dataset
        assert same, f"{minion}: {path} is not what state.show_sls renders"


def test_second_run_changes_nothing_and_stale_files_go(lab):
    minion = MASTERS[1]
    node = lab.container(minion)
    apply(lab, minion)
    sh(node, f"echo 'kind: Job' > {STALE}")
    states = apply(lab, minion)
    changed = {k: v["changes"] for k, v in states.items() if v.get("changes")}
    assert list(changed) == [next(k for k in states if "stale-files-removed" in k)], changed
    assert STALE in json.dumps(changed)
    assert node.exec_run(["test", "-e", STALE]).exit_code == 1
    states = apply(lab, minion)
    assert not [k for k, v in states.items() if v.get("changes")]


def test_a_damaged_secret_is_restored_without_showing_values(lab):
    minion = MASTERS[2]
    node = lab.container(minion)
    values = secrets.decrypt_all("lab")
    path = next(p for p in sh(node, f"ls {SECRET_DIR}/*.yaml").split())
    before = sh(node, f"sha256sum {path}")
    sh(node, f"truncate -s 0 {path} && chmod 0644 {path}")
    states = apply(lab, minion)
    changed = [k for k, v in states.items() if v.get("changes")]
    assert len(changed) == 1 and "00-secret" in changed[0], changed
    output = json.dumps(states)
    leaked = [name for name, value in values.items()
              if value in output or base64.b64encode(value.encode()).decode() in output]
    assert leaked == [], "state output contains these secrets' values"
    assert sh(node, f"sha256sum {path}") == before
    assert sh(node, f"stat -c %a {path}").strip() == "600"
