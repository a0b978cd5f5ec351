"""The order of the first converge comes from requisites, not from class order.

A production master's full highstate (every application the model gives it, rendered
with its real pillar) is read as Salt orders it: a state runs after everything it
requires, watches or is changed by (``require``/``watch``/``onchanges``, their ``_any``
forms and ``_in`` inversions; ``sls:`` names the states written in that file). Asserted:
the one apply comes after etcd's service and its quorum, the kubelet, both binaries, the
kubeconfig, the apiserver manifest and the plan; the apiserver manifest after etcd's
quorum; every requisite names a state that exists (Salt fails a highstate otherwise); and
the same holds with the node's applications in reverse order."""

from __future__ import annotations

import copy

import pytest

from stacksalt import saltrender, secrets
from stacksalt.deployment import Deployment
from stacksalt.validate import collect

pytestmark = pytest.mark.fast

APPLY = "kubernetes-master-objects-applied"
MANIFEST = "kubernetes-master-kube-apiserver-manifest-managed"
QUORUM = "etcd-server-cluster-healthy-with-quorum"
BEFORE_APPLY = [
    "etcd-server-service-running", QUORUM,
    "kubernetes-pool-kubelet-service-running",
    "kubernetes-common-kubelet-binary-managed",
    "kubernetes-common-kubectl-binary-managed",
    "calico-node-calicoctl-binary-installed",
    "calico-node-calicoctl-config-managed",
    "calico-node-etcd-client-certificate-managed",
    "kubernetes-master-admin-kubeconfig-managed",
    MANIFEST,
    "kubernetes-master-objects-apply-plan-managed",
]
REQUISITES = ("require", "watch", "onchanges")


def _args(state: dict) -> list[tuple[str, dict]]:
    """(module, merged arguments) of one rendered state ID."""
    out = []
    for module, args in state.items():
        if module.startswith("__") or not isinstance(args, list):
            continue
        merged = {}
        for arg in args:
            if isinstance(arg, dict):
                merged.update(arg)
        out.append((module, merged))
    return out


def _targets(states: dict, req: dict) -> list[str]:
    (module, name), = req.items()
    if module == "sls":
        return [i for i, s in states.items() if s.get("__sls__") == name]
    return [i for i, s in states.items() if module in s and (
        i == name or any(a.get("name") == name for m, a in _args(s) if m == module))]


def graph(states: dict) -> tuple[dict[str, set[str]], list[str]]:
    """{state id: the ids it runs after}, and every requisite that names no state."""
    after = {i: set() for i in states}
    unresolved = []
    for sid, state in states.items():
        for _, args in _args(state):
            for key, reqs in args.items():
                base = key.removesuffix("_in").removesuffix("_any")
                if base not in REQUISITES or not isinstance(reqs, list):
                    continue
                for req in reqs:
                    if not isinstance(req, dict):
                        continue
                    found = _targets(states, req)
                    if not found:
                        unresolved.append(f"{sid}: {key} {req}")
                    for target in found:
                        if key.endswith("_in"):
                            after[target].add(sid)
                        else:
                            after[sid].add(target)
    return after, unresolved


def runs_after(after: dict[str, set[str]], sid: str) -> set[str]:
    seen, todo = set(), [sid]
    while todo:
        for dep in after.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def problems(states: dict) -> list[str]:
    """What the first converge of this master would do out of order."""
    after, unresolved = graph(states)
    out = [f"requisite of nothing: {u}" for u in unresolved]
    before_apply = runs_after(after, APPLY)
    out += [f"{APPLY} does not wait for {s}" for s in BEFORE_APPLY if s not in before_apply]
    if QUORUM not in runs_after(after, MANIFEST):
        out.append(f"{MANIFEST} does not wait for {QUORUM}")
    return out


def _applier(rendered: dict) -> str:
    appliers = [n for n, states in rendered.items()
                if "stacksalt_kubernetes" in states.get(APPLY, {})]
    assert len(appliers) == 1, appliers
    return appliers[0]


@pytest.fixture(scope="module")
def production():
    secrets.generate("production")
    return collect.rendered("production")


def test_apply_comes_after_etcd_kubelet_binaries_and_manifest(production):
    node = _applier(production)
    assert problems(production[node]) == []


def test_every_requisite_of_every_production_node_exists(production):
    for node, states in production.items():
        assert graph(states)[1] == [], node


def test_the_order_holds_with_the_classes_reversed(production):
    node = _applier(production)
    apps = Deployment.load("production").rendered[node]["applications"]
    reversed_states = saltrender.show_sls(node, "production", apps[::-1])
    assert problems(reversed_states) == []


def test_without_the_requisites_the_check_fails(production):
    """Negative control: the apply's requisites removed (what class order alone gives),
    the check names what the apply would no longer wait for."""
    states = copy.deepcopy(production[_applier(production)])
    for arg in states[APPLY]["stacksalt_kubernetes"]:
        if isinstance(arg, dict) and "require" in arg:
            arg["require"] = [r for r in arg["require"] if "saltutil" in r]
    found = problems(states)
    assert f"{APPLY} does not wait for {QUORUM}" in found
    assert f"{APPLY} does not wait for kubernetes-pool-kubelet-service-running" in found
    assert f"{APPLY} does not wait for calico-node-calicoctl-binary-installed" in found
    assert f"{APPLY} does not wait for {MANIFEST}" in found
