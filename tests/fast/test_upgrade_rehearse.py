"""The rehearsal's rules that need no Docker engine (stacksalt.upgrade.rehearse and
.balancer): the to-release root, the controllers' rolling order under each strategy, the
negative control's broken shape, and the haproxy configuration a Service becomes.

The Docker part (pods, probes, haproxy, the load) is proven by the lab tier
(tests/lab/test_upgrade_rehearsal_live.py)."""

from __future__ import annotations

import copy

import pytest
import yaml

from stacksalt.deployment import Deployment
from stacksalt.upgrade import balancer, rehearse
from stacksalt.upgrade import plan as upgrade_plan

pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def two_roots(lab_secrets, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rehearse")
    return rehearse.roots("lab", "gazpacho", tmp)


def test_the_to_root_is_the_same_model_on_the_next_release(two_roots):
    old, new, current = two_roots
    assert current == "flamingo"
    assert Deployment.load("lab", old / "reclass").first("_param:openstack_version") == \
        "flamingo"
    assert Deployment.load("lab", new / "reclass").first("_param:openstack_version") == \
        "gazpacho"
    a, b = upgrade_plan.render("lab", old), upgrade_plan.render("lab", new)
    assert (a.release["name"], b.release["name"]) == ("flamingo", "gazpacho")
    assert upgrade_plan.downgrade(a, b) is None
    assert upgrade_plan.downgrade(b, a)  # the other way is one (refused by rehearse)
    changes, _ = upgrade_plan.compare(a, b)
    kinds = {c.category for change in changes for c in change.fields} | \
        {change.category for change in changes if change.category}
    assert kinds <= {"image-tag", "release-job", "config-hash"}, kinds


def test_a_release_the_model_runs_already_is_refused(lab_secrets, tmp_path):
    with pytest.raises(rehearse.RehearsalError, match="already runs flamingo .*init.yml"):
        rehearse.roots("lab", "flamingo", tmp_path)


def test_break_recreate_changes_only_the_deployments_strategy(two_roots):
    _, new, _ = two_roots
    render = upgrade_plan.render("lab", new)
    before = copy.deepcopy(render.objects)
    rehearse.break_shape(render, "recreate")
    changed = [f for f in render.objects if render.objects[f] != before[f]]
    assert changed and all("/deployment-" in f for f in changed)
    for f in changed:
        assert render.objects[f]["spec"]["strategy"] == {"type": "Recreate"}
        assert {**render.objects[f]["spec"], "strategy": None} == \
            {**before[f]["spec"], "strategy": None}
    with pytest.raises(rehearse.RehearsalError, match="--break sideways: known ways"):
        rehearse.break_shape(render, "sideways")


@pytest.mark.parametrize("value, replicas, up, want", [
    (1, 3, True, 1), ("25%", 3, True, 1), ("25%", 3, False, 0), ("50%", 4, False, 2),
    (0, 1, False, 0), ("100%", 2, True, 2)])
def test_surge_rounds_up_and_unavailable_down(value, replicas, up, want):
    assert rehearse._amount(value, replicas, up) == want


class Recording(rehearse.Cluster):
    """The controllers' logic with pods as names: what a roll does, in order."""

    def __init__(self):
        super().__init__(client=None, console=None, prefix="t")
        self.calls: list[str] = []

    def start_pod(self, stack, obj):
        pod = rehearse.Pod(f"new{next(self._serial)}", "", obj["spec"]["template"], None, {})
        self.calls.append(f"start {pod.name}")
        return pod

    def wait_ready(self, pod, timeout=600):
        self.calls.append(f"ready {pod.name}")

    def terminate(self, pod):
        self.calls.append(f"stop {pod.name}")


def workload(kind="Deployment", replicas=1, **strategy):
    spec = {"template": {"metadata": {"labels": {}}, "spec": {"containers": []}}}
    if kind == "Deployment":
        spec.update(replicas=replicas, strategy=strategy)
    else:
        spec["updateStrategy"] = strategy
    return {"kind": kind, "metadata": {"name": "api"}, "spec": spec}


def roll(obj, old=1):
    cluster = Recording()
    step = f"{obj['kind'].lower()}/api"
    cluster.pods[step] = [rehearse.Pod(f"old{i}", step, {}, None, {}) for i in range(old)]
    cluster.roll(None, obj, obj)
    return cluster.calls, [p.name for p in cluster.pods[step]]


def test_surge_one_unavailable_zero_starts_the_new_pod_before_stopping_the_old():
    calls, pods = roll(workload(type="RollingUpdate",
                                rollingUpdate={"maxSurge": 1, "maxUnavailable": 0}))
    assert calls == ["start new1", "ready new1", "stop old0"]
    assert pods == ["new1"]


def test_recreate_stops_every_old_pod_first():
    """The negative control's shape: nothing serves between the stop and the ready."""
    calls, pods = roll(workload(replicas=2, type="Recreate"), old=2)
    assert calls == ["stop old0", "stop old1", "start new1", "start new2", "ready new1",
                     "ready new2"]
    assert pods == ["new1", "new2"]


def test_three_replicas_roll_one_at_a_time_and_keep_three_ready():
    calls, pods = roll(workload(replicas=3, type="RollingUpdate",
                                rollingUpdate={"maxSurge": 1, "maxUnavailable": 0}), old=3)
    assert calls == ["start new1", "ready new1", "stop old0", "start new2", "ready new2",
                     "stop old1", "start new3", "ready new3", "stop old2"]
    assert len(pods) == 3


def test_a_daemonset_with_surge_zero_stops_the_node_pod_first():
    calls, _ = roll(workload("DaemonSet", type="RollingUpdate",
                             rollingUpdate={"maxUnavailable": 1, "maxSurge": 0}))
    assert calls == ["stop old0", "start new1", "ready new1"]


def test_surge_and_unavailable_both_zero_is_refused():
    with pytest.raises(rehearse.RehearsalError, match="both 0"):
        roll(workload(type="RollingUpdate", rollingUpdate={"maxSurge": 0,
                                                           "maxUnavailable": 0}))


KEYSTONE_POD = yaml.safe_load("""
metadata: {labels: {app: keystone}}
spec:
  containers:
  - name: keystone-api
    ports: [{name: public, containerPort: 5000}]
    readinessProbe:
      httpGet: {path: /v3, port: public}
      periodSeconds: 10
      timeoutSeconds: 5
      failureThreshold: 3
""")
KEYSTONE_SVC = {"metadata": {"name": "keystone"}, "spec": {
    "selector": {"app": "keystone"},
    "ports": [{"name": "public", "port": 5000, "targetPort": "public"}]}}


def test_a_service_is_a_layer4_balancer_that_retries_nothing():
    cfg = balancer.Balancer._with_checks(balancer.config(KEYSTONE_SVC), KEYSTONE_SVC,
                                         KEYSTONE_POD)
    assert "mode tcp" in cfg and "retries 0" in cfg and "redispatch" not in cfg
    assert "bind 0.0.0.0:5000" in cfg
    assert "option httpchk GET /v3" in cfg and "expect status 200-399" in cfg
    assert "timeout check 5s" in cfg
    assert not [line for line in cfg.splitlines() if line.strip().startswith("server ")]


def test_the_readiness_probe_is_the_servers_check():
    spec = KEYSTONE_POD["spec"]["containers"][0]
    assert balancer.check_args(spec) == ["check", "inter", "10s", "fall", "3", "rise", "1",
                                         "port", "5000"]
    exec_probe = {**spec, "readinessProbe": {"exec": {"command": ["true"]}}}
    assert balancer.check_args(exec_probe) == []
