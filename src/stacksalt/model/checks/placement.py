"""Semantic checks of where pods run: node labels and taints, and the roles' selectors.

- ``restricted-node-label``: a ``kubernetes:pool:labels`` key that a kubelet may not set
  on its own Node: one in the ``kubernetes.io`` or ``k8s.io`` namespace (or a subdomain
  of one) that is neither a well-known kubelet label nor under ``node.kubernetes.io/`` or
  ``kubelet.kubernetes.io/`` (k8s.io/kubelet's ``IsKubeletLabel``; the kubelet refuses to
  start with one in ``--node-labels`` and NodeRestriction refuses it).
  ``invalid-node-label`` / ``invalid-node-taint``: a label that is no valid key and
  string value, a taint without key or with an effect other than NoSchedule,
  PreferNoSchedule, NoExecute.
- ``unschedulable-workload``: an OpenStack role (Deployment or DaemonSet, and its Jobs)
  whose nodeSelector (its node group's labels, ``kubernetes:control:node_groups``) no
  Kubernetes node of the deployment carries, or whose only such nodes have a
  NoSchedule/NoExecute taint the pods do not tolerate: its pods could never be
  scheduled. A node's labels are its ``kubernetes:pool:labels`` and those its kubelet
  always sets (``kubernetes.io/hostname``, ``kubernetes.io/os``,
  ``kubernetes.io/arch``). ``unknown-node-group``: a role's ``nodes`` that names no group;
  ``invalid-node-group``: a group label a kubelet may not set, or a bad group taint.
  A deployment without any Kubernetes pool node (a partial model) has nothing to
  schedule on, and is not checked for this.

The rules are the objects builder's (``stacksalt_objects``: ``label_problem``,
``taint_problem``, ``placement``, ``tolerated``), so the formulas and the check agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from stacksalt import objects
from stacksalt.model.checks.network import _MISSING, blame, get
from stacksalt.model.checks.openstack import SERVICES, control_nodes, roles
from stacksalt.model.errors import ModelError
from stacksalt.model.render import RenderedDeployment, RenderedNode
from stacksalt.model.semantic import semantic_check

LABELS = "kubernetes:pool:labels"
TAINTS = "kubernetes:pool:taints"
GROUPS = "kubernetes:control:node_groups"
BLOCKING = ("NoSchedule", "NoExecute")


def pool_nodes(deployment: RenderedDeployment) -> Iterator[RenderedNode]:
    for name in sorted(deployment.nodes):
        node = deployment.nodes[name]
        if get(node, "kubernetes:pool:enabled") is True:
            yield node


def node_labels(node: RenderedNode) -> dict[str, Any]:
    """The labels the node's kubelet registers it with."""
    labels = get(node, LABELS)
    out = dict(labels) if isinstance(labels, dict) else {}
    hostname = get(node, "kubernetes:common:hostname")
    if hostname is _MISSING or not hostname:
        hostname = node.name.split(".")[0]
    arch = get(node, "kubernetes:common:arch")
    out.update({"kubernetes.io/hostname": str(hostname), "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64" if arch is _MISSING else str(arch)})
    return out


def node_taints(node: RenderedNode) -> list[dict[str, Any]]:
    taints = get(node, TAINTS)
    return [t for t in taints if isinstance(t, dict)] if isinstance(taints, list) else []


def schedulable(selector: dict[str, Any], tolerations: list[dict[str, Any]],
                nodes: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]) -> list[str]:
    """The nodes ({name: (labels, taints)}) a pod with ``selector`` and ``tolerations``
    can be scheduled on."""
    tolerated = objects.builder().tolerated
    out = []
    for name, (labels, taints) in sorted(nodes.items()):
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        if all(t.get("effect") not in BLOCKING or tolerated(t, tolerations) for t in taints):
            out.append(name)
    return out


# -- restricted-node-label / invalid-node-label / invalid-node-taint ---------------------


@semantic_check
def node_labels_are_kubelet_labels(deployment: RenderedDeployment) -> Iterator[ModelError]:
    builder = objects.builder()
    for node in pool_nodes(deployment):
        labels = get(node, LABELS)
        for key, value in sorted(labels.items()) if isinstance(labels, dict) else ():
            problem = builder.label_problem(key, value)
            if problem:
                kind = ("restricted-node-label" if builder.restricted_label(key)
                        else "invalid-node-label")
                yield blame(deployment, node, f"{LABELS}:{key}", kind, problem)
        taints = get(node, TAINTS)
        for i, taint in enumerate(taints) if isinstance(taints, list) else ():
            problem = builder.taint_problem(taint)
            if problem:
                yield blame(deployment, node, f"{TAINTS}:{i}", "invalid-node-taint", problem)


# -- unschedulable-workload / unknown-node-group -----------------------------------------


@semantic_check
def workloads_have_nodes(deployment: RenderedDeployment) -> Iterator[ModelError]:
    nodes = {n.name: (node_labels(n), node_taints(n)) for n in pool_nodes(deployment)}
    if not nodes:
        return  # a partial model: no node to schedule on (module docstring)
    builder = objects.builder()
    for node in control_nodes(deployment):
        control = builder.control_settings(node.parameters, objects.defaults())
        groups: dict[str, list[str]] = {}
        for role, spec in roles(node):
            try:
                selector, tolerations = builder.placement(control, role, spec)
            except builder.ObjectError as exc:
                group = spec.get("nodes")
                if group not in (control.get("node_groups") or {}):
                    yield blame(deployment, node, f"{SERVICES}:{role}:nodes",
                                "unknown-node-group", str(exc))
                else:  # the group's own labels or taints: "<key>: <problem>"
                    key, _, problem = str(exc).partition(": ")
                    yield blame(deployment, node, key, "invalid-node-group", problem)
                continue
            if not schedulable(selector, tolerations, nodes):
                groups.setdefault(spec["nodes"], []).append(role)
        for group, names in sorted(groups.items()):
            g = control["node_groups"][group]
            labels = ", ".join(f"{k}={v}" for k, v in sorted(g["labels"].items())) or "none"
            carriers = [n for n, (lab, _) in sorted(nodes.items())
                        if all(lab.get(k) == v for k, v in g["labels"].items())]
            why = (f"the nodes with those labels ({', '.join(carriers)}) have taints the pods "
                   "do not tolerate (add them to the group's taints)" if carriers else
                   "no Kubernetes node of the deployment has those labels (kubernetes:pool:"
                   f"labels, e.g. the class system.kubernetes.pool.{group})")
            key = f"{GROUPS}:{group}:labels"
            if node.locate(key) is None:
                key = f"{SERVICES}:{names[0]}:nodes"
            yield blame(deployment, node, key, "unschedulable-workload",
                        f"the pods of {', '.join(names)} (node group {group!r}) select "
                        f"{labels}, but {why}: they could never be scheduled")
