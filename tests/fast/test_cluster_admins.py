"""admin.conf as kubeadm (>= 1.29) makes it, and the ordering it brings.

admin.conf's certificate is O=kubeadm:cluster-admins: that group has no right until the
ClusterRoleBinding kubeadm:cluster-admins binds it to cluster-admin, and admin.conf cannot
create that binding itself. kubeadm's EnsureAdminClusterRoleBinding
(cmd/kubeadm/app/phases/kubeconfig) creates it with super-admin.conf (O=system:masters)
when admin.conf is forbidden. Here the apply plan's first step is that binding, applied
with super-admin.conf (``credentials: super-admin``, which the apply state allows for a
ClusterRoleBinding only); every other step uses admin.conf.

Proved against the recording kubectl (tests/lab/cluster_recorder.py), which refuses
admin.conf's user until the binding exists: production's whole plan goes through, and the
plan with the binding moved last, or applied with admin.conf, fails at once (Forbidden).
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from stacksalt import objects
from tests.fast.test_apply_logic import (
    APPLIER,
    Tools,
    prod_tools,
    production,  # noqa: F401 (the fixture)
    run,
    sk,
    written,
)

pytestmark = pytest.mark.fast

BINDING = "clusterrolebinding/kubeadm:cluster-admins"


def kubeconfigs(calls: list[dict]) -> list[tuple[str, str]]:
    """(kubeconfig basename, what) of every kubectl call but the /readyz polls."""
    out = []
    for c in calls:
        if c["tool"] != "kubectl" or "/readyz" in c["argv"]:
            continue
        conf = next(a for a in c["argv"] if a.startswith("--kubeconfig=")).rsplit("/", 1)[1]
        rest = [a for a in c["argv"] if not a.startswith("--")]
        out.append((conf, " ".join(rest[:2])))
    return out


def test_the_plan_binds_admin_confs_group_first_with_super_admin(production):  # noqa: F811
    steps = production["plan"]["steps"]
    first = steps[0]
    assert first["name"] == BINDING
    assert (first["component"], first["tool"], first["action"], first["wait"]) == (
        "kubernetes", "kubectl", "apply", "none")
    assert first["credentials"] == "super-admin"
    assert [s["name"] for s in steps if s.get("credentials")] == [BINDING]
    obj = next(f["object"] for f in production["files"] if f["file"] == first["file"])
    assert obj == {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "kubeadm:cluster-admins"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                      "name": "kubeadm:cluster-admins"}]}
    kubernetes_validate.validate(obj, "1.33", strict=True)
    assert production["plan"]["tools"]["kubectl"] == {
        "binary": "/usr/local/bin/kubectl", "kubeconfig": "/etc/kubernetes/admin.conf",
        "super_admin_kubeconfig": "/etc/kubernetes/super-admin.conf"}


def test_super_admin_conf_applies_the_binding_and_nothing_else(production, tmp_path,  # noqa: F811
                                                               monkeypatch):
    tools = prod_tools(tmp_path, monkeypatch)
    plan = written(production, tmp_path / "objects", tools)
    report = run(plan, tools, tmp_path / "state.json")
    assert report["failed"] is None, report["failed"]
    used = kubeconfigs(tools.calls())
    assert used[0] == ("super-admin.conf", "apply -f")
    assert len(used) > 10 and {conf for conf, _ in used[1:]} == {"admin.conf"}
    # the /readyz poll before the first step is admin.conf's too (public-info-viewer)
    readyz = [c for c in tools.calls() if "/readyz" in c["argv"]]
    assert readyz and all(f"--kubeconfig={tools.kubeconfig}" in c["argv"] for c in readyz)


def _without_binding_first(steps):
    return steps[1:] + steps[:1]


def _binding_with_admin_conf(steps):
    return [{k: v for k, v in s.items() if k != "credentials"} for s in steps]


@pytest.mark.parametrize("broken, failing", [
    # the binding after everything: admin.conf is forbidden at the first kubectl step
    (_without_binding_first, None),
    # the binding applied with admin.conf itself: forbidden
    (_binding_with_admin_conf, BINDING),
])
def test_admin_conf_is_forbidden_before_its_binding(production, tmp_path,  # noqa: F811
                                                    monkeypatch, broken, failing):
    """Negative controls: the recorder refuses admin.conf until the binding exists."""
    tools = prod_tools(tmp_path, monkeypatch)
    steps = broken(copy.deepcopy(production["plan"]["steps"]))
    plan = written(production, tmp_path / "objects", tools, steps)
    report = run(plan, tools, tmp_path / "state.json", timeout=1, grace=0.5)
    failed = report["failed"]
    assert failed is not None, "admin.conf applied before its group was bound"
    first_kubectl = next(s["name"] for s in steps if s["tool"] == "kubectl")
    assert failed["name"] == (failing or first_kubectl)
    assert "Forbidden" in failed["message"] and "kubeadm:cluster-admins" in failed["message"]


def _plan(tmp_path, step: dict, tools: dict):
    import yaml

    path = tmp_path / "apply-plan.yaml"
    path.write_text(yaml.safe_dump({"tools": tools, "steps": [step]}))
    return str(path)


STEP = {"name": BINDING, "tool": "kubectl", "action": "apply", "kind": "ClusterRoleBinding",
        "object": "kubeadm:cluster-admins", "file": "b.yaml", "wait": "none",
        "credentials": "super-admin"}
TOOLS = {"kubectl": {"binary": "/bin/kubectl", "kubeconfig": "/a.conf",
                     "super_admin_kubeconfig": "/s.conf"}}


@pytest.mark.parametrize("change, message", [
    ({"kind": "Deployment", "object": "x", "name": "deployment/x", "wait": "rollout"},
     "credentials: super-admin is for the ClusterRoleBinding of admin.conf's group only, "
     "not kubectl apply Deployment"),
    ({"credentials": "root"}, "credentials is 'root', expected super-admin"),
])
def test_the_plan_refuses_super_admin_for_anything_else(tmp_path, change, message):
    with pytest.raises(sk.PlanError) as err:
        sk.load_plan(_plan(tmp_path, dict(STEP, **change), TOOLS))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_plan_needs_the_super_admin_kubeconfig_named(tmp_path):
    tools = {"kubectl": {"binary": "/bin/kubectl", "kubeconfig": "/a.conf"}}
    with pytest.raises(sk.PlanError, match="names no super_admin_kubeconfig"):
        sk.load_plan(_plan(tmp_path, STEP, tools))


def test_a_missing_super_admin_conf_is_named(tmp_path, monkeypatch):
    tools = Tools(tmp_path, monkeypatch)
    tools.super_admin_kubeconfig.unlink()
    steps = [dict(STEP, file=str(tmp_path / "b.yaml"))]
    missing = sk.missing_tools(steps, tools.tools)
    assert missing == [f"{tools.super_admin_kubeconfig} does not exist: apply kubernetes.master "
                       "(kubeconfigs) first"]
    assert sk.missing_tools([dict(steps[0], credentials=None)], tools.tools) == []


@pytest.mark.parametrize("key, value, message", [
    ("admin", {"O": "system:masters"}, "kubernetes:master:admin:O is 'system:masters'"),
    ("super_admin", {"O": "kubeadm:cluster-admins"},
     "kubernetes:master:super_admin:O is 'kubeadm:cluster-admins'"),
])
def test_admin_conf_in_system_masters_is_one_error_naming_the_key(key, value, message):
    from stacksalt import secrets
    from stacksalt.deployment import Deployment

    secrets.generate("production")
    dep = Deployment.load("production")
    pillar = objects.pillar(dep, APPLIER, secrets.decrypt_all("production"))
    pillar["kubernetes"]["master"][key] = value
    with pytest.raises(objects.error_type()) as err:
        objects.builder().build(pillar, objects.defaults())
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
