"""Every Kubernetes and Calico object a node's states write is in the one apply plan.

For every node of every deployment, with the binaries and the apply switched on (the
production value of ``kubernetes_binaries_install``, forced on for the lab in a copy of
the model), the node's whole highstate is rendered (``state.show_sls`` with its real
pillar) and two sets are compared:

- the object files it writes: every ``file.serialize`` whose data is a Kubernetes-style
  object (``apiVersion`` and ``kind``) under ``/etc/kubernetes``, and every Calico
  resource (``projectcalico.org/*``) wherever it is written. Three kinds of file are not
  objects for an API: the static pods in the kubelet's ``staticPodPath`` (the kubelet
  runs them from disk), calicoctl's own client configuration (``CalicoAPIConfig``), and
  the components' configuration files (``COMPONENT_CONFIG`` of stacksalt.validate
  .kubernetes, e.g. the apiserver's audit ``Policy``: read by the component from disk);
- the files named by the steps of the apply plans it writes (``apply-plan.yaml``).

Each object file must be in exactly one step, and each step's file must be written: an
object written and never applied (Calico's DaemonSet before the one plan) fails here, as
does a step whose file no state writes.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from stacksalt import paths, secrets
from stacksalt.deployment import Deployment
from stacksalt.validate import collect
from stacksalt.validate.kubernetes import COMPONENT_CONFIG
from tests.conftest import deployments
from tests.trees import copy_deployment

pytestmark = pytest.mark.fast

SWITCH = re.compile(r"^(\s*kubernetes_binaries_install:\s*)false\s*$", re.MULTILINE)
PLAN_NAME = "apply-plan.yaml"


def binaries_on(root: Path, deployment: str) -> bool:
    """Set kubernetes_binaries_install to true in the deployment's cluster classes of the
    copy under root; whether anything had to change."""
    changed = False
    cluster = paths.reclass_dir(root) / "classes" / "cluster" / deployment
    for f in sorted(cluster.rglob("*.yml")):
        text, n = SWITCH.subn(r"\g<1>true", f.read_text())
        if n:
            f.write_text(text)
            changed = True
    return changed


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> dict[str, collect.Rendered]:
    """{deployment: render with the binaries on}: the checkout's own render where the
    model has them on already (production), a copy of the model otherwise (lab)."""
    out = {}
    for deployment in deployments():
        secrets.generate(deployment)
        root = tmp_path_factory.mktemp(f"binaries-{deployment}")
        root = copy_deployment(deployment, root / "repo")
        if binaries_on(root, deployment):
            out[deployment] = collect.render(deployment, root)
        else:
            out[deployment] = collect.rendered(deployment)
    return out


def static_pod_dir(params: dict[str, Any]) -> str:
    common = params.get("kubernetes", {}).get("common", {})
    return str(common.get("manifests_dir", "/etc/kubernetes/manifests")).rstrip("/") + "/"


def object_files(states: dict[str, Any], static_pods: str) -> dict[str, str]:
    """{path: state id} of every object file the node's states write (module docstring)."""
    out = {}
    for state_id, path, data in collect.serialized(states):
        if not collect.is_object(data) or path.startswith(static_pods):
            continue
        calico = str(data["apiVersion"]).startswith("projectcalico.org/")
        if calico and data["kind"] == "CalicoAPIConfig":
            continue
        if data["kind"] in COMPONENT_CONFIG.get(str(data["apiVersion"]), ()):
            continue
        if calico or path.startswith("/etc/kubernetes/"):
            out[path] = state_id
    return out


def plan_steps(states: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(plan path, step name, absolute file) for every step of every plan written."""
    out = []
    for _, path, data in collect.serialized(states):
        if os.path.basename(path) != PLAN_NAME:
            continue
        steps = data.get("steps", data) if isinstance(data, dict) else data
        assert isinstance(steps, list), f"{path}: a plan is a list of steps or has steps"
        for step in steps:
            out.append((path, step["name"], os.path.join(os.path.dirname(path), step["file"])))
    return out


def coverage(states: dict[str, Any], static_pods: str) -> list[str]:
    """What is wrong with one node's render: files never applied, applied twice, or
    planned but not written."""
    files = object_files(states, static_pods)
    steps = plan_steps(states)
    planned = Counter(file for _, _, file in steps)
    problems = [f"{path} (state {sid}) is written but in no plan step"
                for path, sid in sorted(files.items()) if path not in planned]
    problems += [f"{file} is in {n} plan steps" for file, n in sorted(planned.items()) if n > 1]
    problems += [f"{plan}: step {name} names {file}, which no state writes"
                 for plan, name, file in steps if file not in files]
    return problems


@pytest.mark.parametrize("deployment", deployments())
def test_every_object_written_is_applied_once_and_every_step_is_written(deployment, renders):
    dep = Deployment.load(deployment)
    rendered = renders[deployment]
    problems, masters = [], 0
    for node in dep.node_names:
        states = rendered.get(node) or {}
        node_problems = coverage(states, static_pod_dir(dep.parameters(node)))
        problems += [f"{node}: {p}" for p in node_problems]
        if plan_steps(states):
            masters += 1
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:80])
    # the plans are there at all: one per Kubernetes master
    assert masters == 3, masters


def test_coverage_finds_each_kind_of_gap():
    """The check itself (negative controls): an object never planned, a file planned
    twice, a planned file nobody writes; a static pod and calicoctl's config are no
    object files; a clean node has no problem."""
    def serialize(path, data):
        return {"file": ["serialize", {"name": path}, {"dataset": data}]}

    obj = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "calico-node"}}
    pool = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "p"}}
    plan = {"steps": [{"name": "daemonset/calico-node", "file": "calico/ds.yaml"},
                      {"name": "ippool/p", "file": "calico/pool.yaml"}]}
    good = {
        "plan": serialize("/etc/kubernetes/objects/apply-plan.yaml", plan),
        "ds": serialize("/etc/kubernetes/objects/calico/ds.yaml", obj),
        "pool": serialize("/etc/kubernetes/objects/calico/pool.yaml", pool),
        "static": serialize("/etc/kubernetes/manifests/kube-apiserver.yaml",
                            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}),
        "cfg": serialize("/etc/calico/calicoctl.cfg",
                         {"apiVersion": "projectcalico.org/v3", "kind": "CalicoAPIConfig"}),
    }
    assert coverage(good, "/etc/kubernetes/manifests/") == []
    unplanned = dict(good, extra=serialize("/etc/kubernetes/addons/calico/x.yaml", obj),
                     res=serialize("/etc/calico/resources/bgppeer-a.yaml", pool))
    assert coverage(unplanned, "/etc/kubernetes/manifests/") == [
        "/etc/calico/resources/bgppeer-a.yaml (state res) is written but in no plan step",
        "/etc/kubernetes/addons/calico/x.yaml (state extra) is written but in no plan step",
    ]
    twice = dict(good, plan=serialize("/etc/kubernetes/objects/apply-plan.yaml", {"steps": [
        *plan["steps"], {"name": "again", "file": "calico/ds.yaml"}]}))
    assert coverage(twice, "/etc/kubernetes/manifests/") == [
        "/etc/kubernetes/objects/calico/ds.yaml is in 2 plan steps"]
    missing = {k: v for k, v in good.items() if k != "pool"}
    assert coverage(missing, "/etc/kubernetes/manifests/") == [
        "/etc/kubernetes/objects/apply-plan.yaml: step ippool/p names "
        "/etc/kubernetes/objects/calico/pool.yaml, which no state writes"]


@pytest.mark.parametrize("deployment", deployments())
def test_no_state_runs_kubectl_or_calicoctl_but_the_apply(deployment, renders):
    """With the binaries on, no command of any state (cmd.*: name, unless, onlyif) of any
    node runs kubectl or calicoctl: the one apply state does, from the plan."""
    runs = []
    for node, states in renders[deployment].items():
        for state_id, state in (states or {}).items():
            if not isinstance(state, dict):
                continue
            for call, kwargs in collect.state_calls(state):
                text = " ".join(str(kwargs.get(k, "")) for k in ("name", "unless", "onlyif"))
                if call.startswith("cmd.") and re.search(r"\b(kubectl|calicoctl)\b", text):
                    runs.append(f"{node}: {state_id}")
    assert not runs, runs
