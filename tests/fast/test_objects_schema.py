"""Every Kubernetes and Calico object the formulas write passes its strict schema.

The objects are collected from ``state.show_sls`` of every node of every deployment
(``stacksalt.validate.collect``: each ``file.serialize`` whose dataset has apiVersion
and kind), nothing is executed. API objects are checked against kubernetes-validate's
strict schemas for the deployment's pinned Kubernetes version, Calico resources by
``stacksalt.validate.calico``. So that the test cannot pass on an empty render, the
objects every deployment must have are listed and counted per node.
"""

from __future__ import annotations

import copy
from collections import Counter

import pytest

from stacksalt.deployment import Deployment
from stacksalt.validate import collect, kubernetes

pytestmark = pytest.mark.fast

BUMP_TARGET = "1.34.1"
MASTER_PODS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
MANIFESTS = "/etc/kubernetes/manifests"
# Written on every master: (kind, namespace, name)
CLUSTER_OBJECTS = (
    ("Deployment", "kube-system", "coredns"),
    ("Service", "kube-system", "kube-dns"),
    ("DaemonSet", "kube-system", "calico-node"),
    ("IPPool", None, None),
    ("BGPConfiguration", None, "default"),
)


@pytest.fixture(scope="module")
def objects(deployment):
    return collect.objects(deployment)


def _k8s_nodes(deployment: str) -> tuple[list[str], list[str], dict[str, str]]:
    """(masters, every Kubernetes node, {node: pinned version}) from the model."""
    dep = Deployment.load(deployment)
    masters, nodes, versions = [], [], {}
    for node in dep.node_names:
        k8s = dep.parameters(node).get("kubernetes", {})
        if k8s.get("common", {}).get("enabled"):
            nodes.append(node)
            versions[node] = str(k8s["common"]["version"])
            if k8s.get("master", {}).get("enabled"):
                masters.append(node)
    return masters, nodes, versions


def _name(obj: dict) -> tuple[str | None, str | None]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace"), meta.get("name")


def test_every_object_passes_its_schema(deployment, objects):
    _, _, versions = _k8s_nodes(deployment)
    failures = []
    for minion, path, obj in objects:
        version = versions.get(minion)
        assert version, f"{minion} writes {path} but is no Kubernetes node"
        failures += [f"{minion}: {path}: {e}" for e in kubernetes.validate(obj, version)]
    assert not failures, f"{len(failures)} schema errors:\n" + "\n".join(failures)


def test_every_object_passes_the_schema_of_the_next_version(objects):
    """Nothing the formulas write is gone from the API of the version-bump target."""
    failures = [f"{minion}: {path}: {e}" for minion, path, obj in objects
                for e in kubernetes.validate(obj, BUMP_TARGET)]
    assert not failures, f"{len(failures)} schema errors for {BUMP_TARGET}:\n" + "\n".join(
        failures)


def test_every_object_has_a_validator(objects):
    """API objects have a schema, Calico resources a validator; only the components'
    own config files (kubeconfig, KubeletConfiguration, ...) are checked by kind alone."""
    by = Counter(kubernetes.coverage(obj, "1.33.5") for _, _, obj in objects)
    assert by["none"] == 0
    assert by["schema"] >= 2 * by["component-config"], by


def test_minimum_objects(deployment, objects):
    masters, nodes, _ = _k8s_nodes(deployment)
    assert len(masters) == 3 and len(nodes) > len(masters), (masters, nodes)
    by_path = {(minion, path): obj for minion, path, obj in objects}
    missing = []
    for node in nodes:
        pods = ["kube-proxy", *(MASTER_PODS if node in masters else ())]
        for pod in pods:
            obj = by_path.get((node, f"{MANIFESTS}/{pod}.yaml"))
            if not obj or obj["kind"] != "Pod" or _name(obj) != ("kube-system", pod):
                missing.append(f"{node}: static pod {pod}")
        kinds = {obj["kind"] for (minion, _), obj in by_path.items() if minion == node}
        for kind in ("KubeletConfiguration", "KubeProxyConfiguration"):
            if kind not in kinds:
                missing.append(f"{node}: {kind}")
    for master in masters:
        have = {(obj["kind"], *_name(obj)) for (minion, _), obj in by_path.items()
                if minion == master}
        for kind, namespace, name in CLUSTER_OBJECTS:
            if not any(k == kind and (namespace is None or ns == namespace)
                       and (name is None or n == name) for k, ns, n in have):
                missing.append(f"{master}: {kind} {namespace or ''}/{name or '*'}")
    assert not missing, "missing objects:\n" + "\n".join(missing)
    # 4 static pods per master, 1 per other node, 2 component configs per node, and the
    # cluster objects on every master
    minimum = 4 * len(masters) + (len(nodes) - len(masters)) + 2 * len(nodes) + 5 * len(masters)
    assert len(objects) >= minimum, Counter(obj["kind"] for _, _, obj in objects)


# -- the validator itself rejects broken objects -------------------------------------------


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "probe", "namespace": "kube-system"},
    "spec": {"containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}]},
}


def broken(mutate) -> dict:
    obj = copy.deepcopy(POD)
    mutate(obj)
    return obj


def test_a_valid_pod_passes():
    assert kubernetes.validate(POD, "1.33.5") == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda o: o["spec"]["containers"][0].update(imagePullPolicy_="Always"),
         "spec.containers.0: Additional properties are not allowed ('imagePullPolicy_'"),
        (lambda o: o["spec"].update(hostNetwork="yes"),
         "spec.hostNetwork: 'yes' is not of type 'boolean'"),
        (lambda o: o["spec"]["containers"][0].update(ports=[{"containerPort": "6443"}]),
         "spec.containers.0.ports.0.containerPort: '6443' is not of type 'integer'"),
        (lambda o: o["spec"].pop("containers"),
         "spec: 'containers' is a required property"),
        (lambda o: o.update(apiVersion="v2"),
         "(object): no schema for Pod v2"),
        (lambda o: o.update(metadata={"name": "probe", "labels": {"tier": 1}}),
         "metadata.labels.tier: 1 is not of type 'string'"),
    ],
    ids=["unknown-field", "wrong-type", "string-port", "missing-required", "api-version",
         "label-type"],
)
def test_a_broken_pod_is_rejected(mutate, expected):
    errors = kubernetes.validate(broken(mutate), "1.33.5")
    assert any(expected in e for e in errors), errors


def test_a_rendered_object_with_an_unknown_field_is_rejected(lab_secrets):
    """The strict schema applies to what the formulas render, too."""
    minion, path, pod = next(
        (m, p, o) for m, p, o in collect.objects("lab") if p.endswith("/kube-apiserver.yaml"))
    assert kubernetes.validate(pod, "1.33.5") == []
    pod = copy.deepcopy(pod)
    pod["spec"]["containers"][0]["comand"] = pod["spec"]["containers"][0].pop("command")
    errors = kubernetes.validate(pod, "1.33.5")
    assert any("'comand' was unexpected" in e for e in errors), (minion, path, errors)


def test_collect_reads_both_state_forms():
    states = {
        "a-managed": {"file": [{"name": "/a.yaml"}, {"dataset": POD}, "serialize"],
                      "__sls__": "x"},
        "b-managed": {"file.serialize": [{"dataset": {**POD, "kind": "Pod"}}]},
        "c-not-an-object": {"file": [{"name": "/c.yaml"}, {"dataset": {"a": 1}}, "serialize"]},
        "d-managed": {"file": [{"name": "/d"}, {"source": "salt://x"}, "managed"]},
    }
    assert [(p, o["kind"]) for _, p, o in collect.objects_in({"n1": states})] == [
        ("/a.yaml", "Pod"), ("b-managed", "Pod")]
