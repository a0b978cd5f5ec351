"""Where pods run: node labels and taints come from the model, the OpenStack roles' pods
select and tolerate the same values.

- Every Kubernetes node's kubelet registers with its model labels (``--node-labels`` in
  its unit) and taints (``registerWithTaints``): control nodes ``stacksalt.io/control``,
  compute nodes ``stacksalt.io/compute``, masters the control-plane taint.
- The masters' objects: every OpenStack Deployment and Job selects the control nodes'
  labels, nova-compute's DaemonSet the compute nodes', and each selector is carried by
  nodes of the model; a tainted node group gives matching tolerations.
- A label a kubelet may not set on its own Node (NodeRestriction; upstream
  k8s.io/kubelet IsKubeletLabel) is refused by the builder in one line naming the key.
"""

from __future__ import annotations

import copy
from typing import Any

import jinja2
import pytest

from stacksalt import objects, paths, secrets
from stacksalt.deployment import Deployment
from stacksalt.model.checks import placement
from stacksalt.validate import collect

pytestmark = pytest.mark.fast

CONTROL = {"stacksalt.io/control": "true"}
COMPUTE = {"stacksalt.io/compute": "true"}
MASTER_TAINT = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]


def role_of(node: str) -> str:
    return {"mst": "master", "ctl": "control", "cmp": "compute"}[node[:3]]


def call(states: dict, sid: str) -> dict:
    return next(kw for _, kw in collect.state_calls(states[sid]))


@pytest.fixture(scope="module")
def rendered(deployment) -> dict[str, dict]:
    return collect.rendered(deployment)


def unit_text(kw: dict) -> str:
    source = (paths.formulas_dir() / "kubernetes/files/kubelet.service.jinja").read_text()
    return jinja2.Template(source).render(**kw["context"])


def test_kubelets_register_with_the_model_labels_and_taints(deployment, rendered):
    seen = set()
    for node, states in rendered.items():
        if "kubernetes-pool-kubelet-config-file-managed" not in states:
            continue
        role = role_of(node)
        seen.add(role)
        labels, taints = {"master": ({}, MASTER_TAINT), "control": (CONTROL, []),
                          "compute": (COMPUTE, [])}[role]
        config = call(states, "kubernetes-pool-kubelet-config-file-managed")["dataset"]
        assert config["registerWithTaints"] == taints, node
        unit = unit_text(call(states, "kubernetes-pool-kubelet-unit-file-managed"))
        flags = [line.strip().rstrip(" \\") for line in unit.splitlines()
                 if line.strip().startswith("--")]
        wanted = [f"--node-labels={k}={v}" for k, v in labels.items()]
        assert [f for f in flags if f.startswith("--node-labels")] == wanted, (node, unit)
    assert seen == {"master", "control", "compute"}


def workloads(deployment: str) -> tuple[Deployment, dict[str, dict[str, Any]]]:
    """The OpenStack objects with a pod template of the first control master."""
    dep = Deployment.load(deployment)
    master = objects.control_masters(dep)[0]
    out = objects.build(dep, master, secrets.decrypt_all(deployment))
    pods = {}
    for f in out["files"]:
        obj = f["object"]
        if obj["kind"] in ("Deployment", "DaemonSet", "Job") and \
                obj["metadata"].get("namespace") == "openstack":
            pods[f"{obj['kind']}/{obj['metadata']['name']}"] = obj["spec"]["template"]["spec"]
    return dep, pods


def test_control_pods_run_on_control_nodes_and_nova_compute_on_compute_nodes(deployment):
    dep, pods = workloads(deployment)
    assert "DaemonSet/nova-compute" in pods and any(k.startswith("Job/") for k in pods)
    for name, pod in pods.items():
        wanted = COMPUTE if name == "DaemonSet/nova-compute" else CONTROL
        assert pod.get("nodeSelector") == wanted, name
        assert "tolerations" not in pod, name  # the model's node groups are untainted
    # the selectors are carried by the model's nodes, each by its own nodes only
    labels = {n: dep.parameters(n)["kubernetes"]["pool"].get("labels") or {}
              for n in dep.node_names if dep.parameters(n).get("kubernetes", {}).get("pool")}
    assert {n for n, lab in labels.items() if lab == CONTROL} == \
        {n for n in labels if role_of(n) == "control"}
    assert {n for n, lab in labels.items() if lab == COMPUTE} == \
        {n for n in labels if role_of(n) == "compute"}


def _pillar(deployment: str = "production") -> dict[str, Any]:
    dep = Deployment.load(deployment)
    node = objects.control_masters(dep)[0]
    values = {name: "x" * 12 for name in secrets.references(dep)}
    return copy.deepcopy(objects.pillar(dep, node, values))


def _pods(out: dict) -> dict[str, dict]:
    return {f"{f['object']['kind']}/{f['object']['metadata']['name']}":
            f["object"]["spec"]["template"]["spec"] for f in out["files"]
            if f["object"]["kind"] in ("Deployment", "DaemonSet", "Job")
            and f["object"]["metadata"].get("namespace") == "openstack"}


def test_a_tainted_node_group_gives_matching_tolerations():
    pillar = _pillar()
    groups = pillar["kubernetes"]["control"]["node_groups"]
    groups["control"]["taints"] = [
        {"key": "stacksalt.io/control", "value": "true", "effect": "NoSchedule"},
        {"key": "example.com/dedicated", "effect": "NoExecute"}]
    b = objects.builder()
    pods = _pods(b.build(pillar, objects.defaults()))
    want = [{"key": "stacksalt.io/control", "operator": "Equal", "value": "true",
             "effect": "NoSchedule"},
            {"key": "example.com/dedicated", "operator": "Exists", "effect": "NoExecute"}]
    for name, pod in pods.items():
        if name == "DaemonSet/nova-compute":
            assert "tolerations" not in pod  # the compute group is not tainted
        else:
            assert pod["tolerations"] == want, name
            assert all(b.tolerated(t, pod["tolerations"]) for t in groups["control"]["taints"])


def test_the_model_groups_replace_the_default_group():
    pillar = _pillar()
    pillar["kubernetes"]["control"]["node_groups"]["control"]["labels"] = {"example.com/x": "y"}
    pods = _pods(objects.builder().build(pillar, objects.defaults()))
    assert pods["Deployment/keystone"]["nodeSelector"] == {"example.com/x": "y"}


@pytest.mark.parametrize("key", [
    "node-role.kubernetes.io/worker", "kubernetes.io/role", "example.kubernetes.io/x",
    "k8s.io/x", "sub.k8s.io/x", "node-restriction.kubernetes.io/x"])
def test_restricted_label_prefixes_are_refused(key):
    b = objects.builder()
    assert b.restricted_label(key)
    assert "NodeRestriction" in b.label_problem(key, "true")


@pytest.mark.parametrize("key", [
    "stacksalt.io/compute", "node.kubernetes.io/pool", "foo.node.kubernetes.io/x",
    "kubelet.kubernetes.io/x", "topology.kubernetes.io/zone", "kubernetes.io/hostname",
    "node.kubernetes.io/instance-type", "example.com/kubernetes.io", "plain"])
def test_kubelet_labels_are_allowed(key):
    b = objects.builder()
    assert not b.restricted_label(key)
    assert b.label_problem(key, "true") == ""


@pytest.mark.parametrize("labels, taints, message", [
    ({"node-role.kubernetes.io/worker": "true"}, [],
     "kubernetes:pool:labels:node-role.kubernetes.io/worker: label "),
    ({"stacksalt.io/compute": True}, [],
     "kubernetes:pool:labels:stacksalt.io/compute: label 'stacksalt.io/compute': True must be"),
    ({}, [{"key": "x", "effect": "NoScheduled"}],
     "kubernetes:pool:taints:0: taint 'x' has effect 'NoScheduled'"),
])
def test_bad_node_labels_and_taints_are_one_error_naming_the_key(labels, taints, message):
    pillar = _pillar()
    b = objects.builder()
    b.kubernetes_settings(pillar, objects.defaults())  # the unchanged pillar is fine
    pillar["kubernetes"]["pool"].update(labels=labels, taints=taints)
    with pytest.raises(b.ObjectError) as exc:
        b.kubernetes_settings(pillar, objects.defaults())
    assert message in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("change, message", [
    (lambda p: p["kubernetes"]["control"]["service"]["keystone"].update(nodes="gpu"),
     "kubernetes:control:service:keystone:nodes is 'gpu', which is not a group of "
     "kubernetes:control:node_groups (compute, control)"),
    (lambda p: p["kubernetes"]["control"]["node_groups"]["control"].update(
        labels={"kubernetes.io/role": "control"}),
     "kubernetes:control:node_groups:control:labels:kubernetes.io/role: label"),
])
def test_bad_node_groups_are_one_error_naming_the_key(change, message):
    pillar = _pillar()
    change(pillar)
    with pytest.raises(objects.error_type()) as exc:
        objects.builder().build(pillar, objects.defaults())
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_schedulable_needs_the_labels_and_tolerations_of_blocking_taints():
    nodes = {
        "ctl01": ({"stacksalt.io/control": "true"},
                  [{"key": "dedicated", "value": "control", "effect": "NoSchedule"}]),
        "ctl02": ({"stacksalt.io/control": "true"},
                  [{"key": "busy", "effect": "PreferNoSchedule"}]),
        "cmp01": ({"stacksalt.io/compute": "true"}, []),
    }
    tol = [{"key": "dedicated", "operator": "Equal", "value": "control",
            "effect": "NoSchedule"}]
    assert placement.schedulable(CONTROL, [], nodes) == ["ctl02"]
    assert placement.schedulable(CONTROL, tol, nodes) == ["ctl01", "ctl02"]
    assert placement.schedulable(COMPUTE, tol, nodes) == ["cmp01"]
    # negative controls: a wrong value, a wrong label
    assert placement.schedulable({"stacksalt.io/control": "false"}, tol, nodes) == []
    del nodes["ctl02"]
    assert placement.schedulable(CONTROL, [], nodes) == []
