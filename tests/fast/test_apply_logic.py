"""The apply logic of kubernetes.master.apply (formulas/_states/stacksalt_kubernetes.py),
run as real processes against the recording kubectl and calicoctl
(tests/lab/cluster_recorder.py, which refuses what the real tools could not do at that
moment: a pod without a network, a namespace not there yet, a Calico Node not yet
registered, a calicoctl without its etcd certificates). Asserted: plan checks, order,
nothing applied when nothing changed, stop at the first failure, timeouts, the 0600
record, no Secret value on a command line or in a message; and production's whole plan,
as the builder makes it, applied in its order (Calico, then CoreDNS, then OpenStack) with
a second run applying nothing, beside the broken orders the recorder must refuse.

The Salt side (sync, pillar, event to the master) is the lab tier's
tests/lab/test_control_apply.py."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest
import yaml

from stacksalt import objects, paths
from stacksalt.deployment import Deployment

pytestmark = pytest.mark.fast

ROOT = paths.repo_root()
RECORDER = ROOT / "tests" / "lab" / "cluster_recorder.py"
SECRET = "s3cret-Value-9f8e7d"
SECRET_B64 = "b64-only-secret-4242"


def _load_module():
    spec = importlib.util.spec_from_file_location(
        "stacksalt_kubernetes_state", ROOT / "formulas" / "_states" / "stacksalt_kubernetes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


sk = _load_module()


# --------------------------------------------------------------------------- the tools


class Tools:
    """The recorder installed as kubectl and calicoctl under tmp (with this interpreter,
    which has PyYAML), their answers and call log, a kubeconfig and a calicoctl
    configuration whose etcd certificate files exist."""

    def __init__(self, tmp: Path, monkeypatch, nodes: list[str] = (), rbac: bool = False):
        self.dir = tmp / "recorder"
        self.dir.mkdir()
        bindir = tmp / "bin"
        bindir.mkdir()
        source = RECORDER.read_text().replace("#!/usr/bin/python3", f"#!{sys.executable}", 1)
        for name in ("kubectl", "calicoctl"):
            (bindir / name).write_text(source)
            (bindir / name).chmod(0o755)
        pki = tmp / "calico-pki"
        pki.mkdir()
        for f in ("ca.crt", "etcd-client.crt", "etcd-client.key"):
            (pki / f).write_text("PEM")
        self.calico_config = tmp / "calicoctl.cfg"
        self.calico_config.write_text(yaml.safe_dump({
            "apiVersion": "projectcalico.org/v3", "kind": "CalicoAPIConfig",
            "spec": {"datastoreType": "etcdv3", "etcdCACertFile": str(pki / "ca.crt"),
                     "etcdCertFile": str(pki / "etcd-client.crt"),
                     "etcdKeyFile": str(pki / "etcd-client.key")}}))
        self.pki = pki
        # rbac: admin.conf and super-admin.conf name their users, so the recorder refuses
        # admin.conf until the ClusterRoleBinding of its group exists (else no user: no check)
        self.kubeconfig = tmp / "admin.conf"
        self.super_admin_kubeconfig = tmp / "super-admin.conf"
        for path, user in ((self.kubeconfig, "kubernetes-admin"),
                           (self.super_admin_kubeconfig, "kubernetes-super-admin")):
            users = f"users:\n- name: {user}\n  user: {{}}\n" if rbac else ""
            path.write_text(f"apiVersion: v1\nkind: Config\n{users}")
        self.tools = {
            "kubectl": {"binary": str(bindir / "kubectl"), "kubeconfig": str(self.kubeconfig),
                        "super_admin_kubeconfig": str(self.super_admin_kubeconfig)},
            "calicoctl": {"binary": str(bindir / "calicoctl"),
                          "config": str(self.calico_config)},
        }
        self.nodes = list(nodes)
        monkeypatch.setenv("KUBECTL_RECORDER_DIR", str(self.dir))
        self.answer([])

    def answer(self, rules: list[dict]) -> None:
        (self.dir / "answers.json").write_text(json.dumps({"rules": rules,
                                                           "nodes": self.nodes}))

    def calls(self) -> list[dict]:
        log = self.dir / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def reset(self) -> None:
        (self.dir / "calls.jsonl").unlink(missing_ok=True)

    def forget_cluster(self) -> None:
        (self.dir / "cluster.json").unlink(missing_ok=True)


def verbs(calls: list[dict]) -> list[str]:
    """Each call as '<verb> <file basename or kind/name>' (kubectl) or 'calicoctl <verb>
    <what>'; the watcher beside each Job's wait for Complete and the /readyz polls left
    out."""
    out = []
    for call in calls:
        rest = [a for a in call["argv"]
                if not a.startswith(("--kubeconfig=", "--namespace=", "--config="))]
        if "--for=condition=failed" in rest or "/readyz" in rest:
            continue
        prefix = "calicoctl " if call["tool"] == "calicoctl" else ""
        if rest[0] == "apply":
            out.append(f"{prefix}apply {os.path.basename(rest[rest.index('-f') + 1])}")
        elif rest[0] == "rollout":
            out.append(f"rollout {rest[2]}")
        elif rest[0] == "wait":
            out.append(f"wait {[a for a in rest if a.startswith('job/')][0]}")
        elif rest[0] in ("delete", "get"):
            out.append(f"{prefix}{rest[0]} {rest[1]}" + (f" {rest[2]}" if prefix else ""))
        else:
            out.append(f"{prefix}{rest[0]} {rest[1]} {rest[2]}")
    return out


# --------------------------------------------------------------------------- a small plan

POD = {"containers": [{"name": "c", "image": "i", "env": [
    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "openstack-secrets",
                                                        "key": "KEYSTONE_ADMIN_PASSWORD"}}}]}]}
# (name, tool, action, kind, object, namespace, file, wait, extra)
STEPS = [
    ("ippool/pool", "calicoctl", "apply", "IPPool", "pool", "", "calico/resources/ippool.yaml",
     "none", {}),
    ("daemonset/calico-node", "kubectl", "apply", "DaemonSet", "calico-node", "kube-system",
     "calico/daemonset-calico-node.yaml", "rollout", {}),
    ("node/mst01", "calicoctl", "patch", "Node", "mst01", "", "calico/nodes/node-mst01.yaml",
     "none", {"await": "exists"}),
    ("namespace/openstack", "kubectl", "apply", "Namespace", "openstack", "",
     "openstack/00-namespace/namespace-openstack.yaml", "none", {}),
    ("secret/openstack-secrets", "kubectl", "apply", "Secret", "openstack-secrets", "openstack",
     "openstack/00-secret/secret-openstack-secrets.yaml", "none", {}),
    ("service/mariadb", "kubectl", "apply", "Service", "mariadb", "openstack",
     "openstack/10-mariadb/service-mariadb.yaml", "none", {}),
    ("deployment/mariadb", "kubectl", "apply", "Deployment", "mariadb", "openstack",
     "openstack/10-mariadb/deployment-mariadb.yaml", "rollout", {}),
    ("job/keystone-bootstrap-flamingo", "kubectl", "apply", "Job", "keystone-bootstrap-flamingo",
     "openstack", "openstack/20-keystone/job-keystone-bootstrap-flamingo.yaml", "complete", {}),
    ("deployment/keystone", "kubectl", "apply", "Deployment", "keystone", "openstack",
     "openstack/20-keystone/deployment-keystone.yaml", "rollout", {}),
    ("job/keystone-contract-flamingo", "kubectl", "apply", "Job", "keystone-contract-flamingo",
     "openstack", "openstack/20-keystone/job-keystone-contract-flamingo.yaml", "complete", {}),
    ("daemonset/nova-compute", "kubectl", "apply", "DaemonSet", "nova-compute", "openstack",
     "openstack/40-nova-compute/daemonset-nova-compute.yaml", "rollout", {}),
]
NAMES = [s[0] for s in STEPS]


def document(kind: str, name: str, namespace: str) -> dict:
    api = "projectcalico.org/v3" if kind in ("IPPool", "Node") else "v1"
    doc = {"apiVersion": api, "kind": kind, "metadata": {"name": name}}
    if namespace:
        doc["metadata"]["namespace"] = namespace
    if kind == "Secret":
        doc["stringData"] = {"KEYSTONE_ADMIN_PASSWORD": SECRET}
        doc["data"] = {"OTHER": base64.b64encode(SECRET_B64.encode()).decode()}
    if kind in ("Deployment", "DaemonSet", "Job"):
        doc["spec"] = {"template": {"spec": json.loads(json.dumps(POD))}}
        if name == "calico-node":
            doc["spec"]["template"]["spec"] = {"hostNetwork": True,
                                               "containers": [{"name": "n", "image": "i"}]}
    if kind == "Node":
        doc["metadata"]["labels"] = {"route-reflector": "true"}
        doc["spec"] = {"bgp": {"routeReflectorClusterID": "244.0.0.1"}}
    return doc


def write_plan(root: Path, tools: dict, steps=STEPS) -> Path:
    out = []
    for name, tool, action, kind, obj, ns, file, wait, extra in steps:
        path = root / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document(kind, obj, ns)))
        if kind == "Secret":
            path.chmod(0o600)
        out.append({"name": name, "component": "test", "tool": tool, "action": action,
                    "kind": kind, "object": obj, "namespace": ns, "file": file, "wait": wait,
                    "role": "", **extra})
    plan = root / "apply-plan.yaml"
    plan.write_text(yaml.safe_dump({"rollout_timeout": 300, "tools": tools, "steps": out},
                                   sort_keys=False))
    return plan


@pytest.fixture
def env(tmp_path, monkeypatch):
    tools = Tools(tmp_path, monkeypatch, nodes=["mst01", "cmp01"])
    plan = write_plan(tmp_path / "objects", tools.tools)
    state = tmp_path / "state" / "applied.json"
    return plan, tools, state


def run(plan: Path, tools: Tools, state: Path, timeout: int = 5, grace: float = 1.0,
        api_timeout: float = 5):
    steps, settings = sk.load_plan(str(plan))
    record = sk.read_record(str(state))
    sums = sk.digests(steps)
    return sk.execute(steps, record, sums, tools=settings["tools"], field_manager="stacksalt",
                      rollout_timeout=timeout, wait_grace=grace, interval=0.2,
                      save=lambda r: sk.write_record(str(state), r), api_timeout=api_timeout)


def readyz_calls(calls: list[dict]) -> list[int]:
    """Indexes of the `kubectl get --raw /readyz` calls."""
    return [i for i, c in enumerate(calls) if c["argv"][-3:] == ["get", "--raw", "/readyz"]]


def test_readyz_is_awaited_before_the_first_step(env):
    """An apiserver that answers /readyz only at the third poll: the apply polls it
    (through the plan's kubectl and kubeconfig) and applies nothing before it is ok."""
    plan, tools, state = env
    (tools.dir / "answers.json").write_text(json.dumps({"rules": [], "nodes": tools.nodes,
                                                        "not_ready_calls": 2}))
    report = run(plan, tools, state)
    assert report["failed"] is None, report["failed"]
    calls = tools.calls()
    assert readyz_calls(calls) == [0, 1, 2]
    assert calls[0]["tool"] == "kubectl"
    assert f"--kubeconfig={tools.kubeconfig}" in calls[0]["argv"]
    assert len(calls) > 3 and 3 not in readyz_calls(calls)


def test_apiserver_never_ready_fails_in_one_line_and_applies_nothing(env):
    plan, tools, state = env
    (tools.dir / "answers.json").write_text(json.dumps({"rules": [], "nodes": tools.nodes,
                                                        "not_ready_calls": 1000}))
    report = run(plan, tools, state, api_timeout=1)
    calls = tools.calls()
    assert calls and len(readyz_calls(calls)) == len(calls)  # no other call
    failed = report["failed"]
    assert failed["phase"] == "ready" and failed["timed_out"]
    assert report["changed"] == [] and report["not_applied"] == [s[0] for s in STEPS]
    message = failed["message"]
    assert "\n" not in message
    assert message.startswith("the apiserver was not ready within 1s")
    assert f"--kubeconfig={tools.kubeconfig} get --raw /readyz" in message
    assert "readyz check failed" in message
    assert not state.exists()
    assert sk.summary(report).startswith("FAILED at the apiserver was not ready")


def test_nothing_pending_polls_no_readyz(env):
    plan, tools, state = env
    run(plan, tools, state)
    tools.reset()
    report = run(plan, tools, state)
    assert report["changed"] == [] and tools.calls() == []


def test_first_run_applies_every_step_in_plan_order_and_waits(env):
    plan, tools, state = env
    report = run(plan, tools, state)
    assert report["failed"] is None, report["failed"]
    assert report["changed"] == NAMES
    assert verbs(tools.calls()) == [
        "calicoctl apply ippool.yaml",
        "apply daemonset-calico-node.yaml", "rollout daemonset/calico-node",
        "calicoctl get node mst01", "calicoctl patch node mst01",
        "calicoctl label nodes mst01",
        "apply namespace-openstack.yaml",
        "apply secret-openstack-secrets.yaml",
        "apply service-mariadb.yaml",
        "apply deployment-mariadb.yaml", "rollout deployment/mariadb",
        "delete job/keystone-bootstrap-flamingo", "apply job-keystone-bootstrap-flamingo.yaml",
        "wait job/keystone-bootstrap-flamingo",
        "apply deployment-keystone.yaml", "rollout deployment/keystone",
        "delete job/keystone-contract-flamingo", "apply job-keystone-contract-flamingo.yaml",
        "wait job/keystone-contract-flamingo",
        "apply daemonset-nova-compute.yaml", "rollout daemonset/nova-compute",
    ]
    calls = [c["argv"] for c in tools.calls()]
    # the apiserver's /readyz first, then the plan's steps
    assert calls.pop(0) == [f"--kubeconfig={tools.kubeconfig}",
                            "--request-timeout=5s", "get", "--raw", "/readyz"]
    assert calls[0] == ["apply", "-f", str(plan.parent / "calico/resources/ippool.yaml"),
                        f"--config={tools.calico_config}"]
    ds = calls[1]
    assert ds[:2] == [f"--kubeconfig={tools.kubeconfig}", "--namespace=kube-system"]
    assert "--server-side" in ds and "--field-manager=stacksalt" in ds
    assert calls[2][-1] == "--timeout=5s"
    assert calls[4][:3] == ["patch", "node", "mst01"]
    assert json.loads(calls[4][3].split("=", 1)[1]) == {
        "spec": {"bgp": {"routeReflectorClusterID": "244.0.0.1"}}}
    assert calls[5] == ["label", "nodes", "mst01", "route-reflector=true", "--overwrite",
                        f"--config={tools.calico_config}"]
    # a cluster-scoped object gets no --namespace (kubectl refuses one that differs)
    namespace_call = calls[6]
    assert not [a for a in namespace_call if a.startswith("--namespace")]
    assert set(report["rollouts"]) == {"daemonset/calico-node", "node/mst01",
                                       "deployment/mariadb", "job/keystone-bootstrap-flamingo",
                                       "deployment/keystone", "job/keystone-contract-flamingo",
                                       "daemonset/nova-compute"}
    assert [s["name"] for s in report["steps"]] == NAMES
    cluster = json.loads((tools.dir / "cluster.json").read_text())
    assert cluster["calico"]["Node/mst01"]["spec"]["bgp"] == {
        "routeReflectorClusterID": "244.0.0.1"}
    assert cluster["calico"]["Node/mst01"]["metadata"]["labels"] == {"route-reflector": "true"}


def test_record_is_0600_and_second_run_applies_nothing(env):
    plan, tools, state = env
    run(plan, tools, state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    tools.reset()
    report = run(plan, tools, state)
    assert tools.calls() == []
    assert report["changed"] == [] and report["failed"] is None
    assert report["skipped"] == NAMES


def test_only_the_changed_object_is_applied(env):
    plan, tools, state = env
    run(plan, tools, state)
    tools.reset()
    f = plan.parent / "openstack" / "20-keystone" / "deployment-keystone.yaml"
    doc = yaml.safe_load(f.read_text())
    doc["metadata"]["labels"] = {"changed": "yes"}
    f.write_text(yaml.safe_dump(doc))
    report = run(plan, tools, state)
    assert verbs(tools.calls()) == ["apply deployment-keystone.yaml",
                                    "rollout deployment/keystone"]
    assert report["changed"] == ["deployment/keystone"]


def test_failed_rollout_stops_the_run_and_is_retried_next_time(env):
    plan, tools, state = env
    tools.answer([{"match": ["rollout", "status", "deployment/keystone"], "rc": 1,
                   "out": 'error: deployment "keystone" exceeded its progress deadline'}])
    report = run(plan, tools, state)
    failed = report["failed"]
    assert failed["name"] == "deployment/keystone" and failed["phase"] == "wait"
    assert not failed["timed_out"]
    assert "Deployment/keystone" in failed["message"]
    assert "exceeded its progress deadline" in failed["message"]
    assert report["not_applied"] == ["job/keystone-contract-flamingo", "daemonset/nova-compute"]
    applied = [v for v in verbs(tools.calls()) if v.startswith("apply")]
    assert applied[-1] == "apply deployment-keystone.yaml"
    assert "deployment/keystone" not in json.loads(state.read_text())["applied"]
    # fixed: the next run starts at the failed step and goes on
    tools.answer([])
    tools.reset()
    report = run(plan, tools, state)
    assert report["failed"] is None
    assert report["changed"] == ["deployment/keystone", "job/keystone-contract-flamingo",
                                 "daemonset/nova-compute"]


def test_failed_apply_stops_before_its_wait(env):
    plan, tools, state = env
    target = str(plan.parent / "openstack/10-mariadb/deployment-mariadb.yaml")
    tools.answer([{"match": ["apply", target], "rc": 1, "out": "error: admission webhook denied"}])
    report = run(plan, tools, state)
    assert report["failed"]["phase"] == "apply"
    assert "kubectl apply failed (exit 1): error: admission webhook denied" in \
        report["failed"]["message"]
    assert verbs(tools.calls())[-1] == "apply deployment-mariadb.yaml"


def test_hanging_rollout_is_killed_and_named_a_timeout(env):
    plan, tools, state = env
    tools.answer([{"match": ["rollout", "status", "deployment/mariadb"], "sleep": 30}])
    t0 = time.monotonic()
    report = run(plan, tools, state, timeout=1, grace=0.5)
    took = time.monotonic() - t0
    assert took < 10, f"the hanging kubectl was not killed ({took:.1f}s)"
    failed = report["failed"]
    assert failed["name"] == "deployment/mariadb" and failed["timed_out"]
    assert "timed out: kubectl rollout status still running after 1.5s, killed" in \
        failed["message"]
    assert report["not_applied"][0] == "job/keystone-bootstrap-flamingo"


def test_kubectl_own_timeout_is_named_a_timeout(env):
    plan, tools, state = env
    tools.answer([{"match": ["--for=condition=complete", "job/keystone-bootstrap-flamingo"],
                   "rc": 1,
                   "out": "error: timed out waiting for the condition on "
                          "jobs/keystone-bootstrap-flamingo"}])
    report = run(plan, tools, state, timeout=2)
    failed = report["failed"]
    assert failed["timed_out"] and failed["phase"] == "wait"
    assert "timed out: Job did not complete within 2s" in failed["message"]


def test_job_wait_watches_failed_beside_complete(env):
    plan, tools, state = env
    # the Jobs take a moment, so each watcher has started (and logged) before it is killed
    tools.answer([{"match": ["--for=condition=complete"], "sleep": 1, "out": "condition met"}])
    run(plan, tools, state)
    watchers = [c["argv"] for c in tools.calls() if "--for=condition=failed" in c["argv"]]
    assert sorted(a[4] for a in watchers) == ["job/keystone-bootstrap-flamingo",
                                              "job/keystone-contract-flamingo"]


def test_failed_job_fails_the_step_at_once(env):
    plan, tools, state = env
    job = "job/keystone-bootstrap-flamingo"
    tools.answer([
        {"match": ["--for=condition=complete", job], "sleep": 30},
        {"match": ["--for=condition=failed", job], "out": f"{job} condition met"},
    ])
    t0 = time.monotonic()
    report = run(plan, tools, state, timeout=20)
    took = time.monotonic() - t0
    assert took < 10, f"the failed Job was noticed only after {took:.1f}s"
    failed = report["failed"]
    assert failed["name"] == job and failed["phase"] == "wait" and not failed["timed_out"]
    assert "Job/keystone-bootstrap-flamingo (step job/keystone-bootstrap-flamingo): " \
        "the Job failed (condition Failed)" in failed["message"]
    assert report["not_applied"][0] == "deployment/keystone"


def test_no_secret_on_a_command_line_nor_in_a_message(env):
    plan, tools, state = env
    secret_file = str(plan.parent / "openstack" / "00-secret" / "secret-openstack-secrets.yaml")
    # kubectl failing on the Secret and echoing the object it was given
    tools.answer([{"match": ["apply", secret_file], "rc": 1, "out": "error: invalid",
                   "echo_file": True}])
    report = run(plan, tools, state)
    raw = (tools.dir / "calls.jsonl").read_text()
    assert SECRET not in raw and SECRET_B64 not in raw
    message = report["failed"]["message"]
    assert "Secret/openstack-secrets" in message and sk.REDACTED in message
    encoded = base64.b64encode(SECRET_B64.encode()).decode()
    for value in (SECRET, SECRET_B64, encoded):
        assert value not in json.dumps(report)


def test_node_not_registered_is_a_timeout_not_a_skip(env):
    """A route reflector's Node change waits for calico-node to register the node; a node
    that never appears fails the step (an `onlyif` used to skip it silently)."""
    plan, tools, state = env
    tools.nodes = ["cmp01"]  # mst01 never registers
    tools.answer([])
    t0 = time.monotonic()
    report = run(plan, tools, state, timeout=1, grace=0.5)
    assert time.monotonic() - t0 < 10
    failed = report["failed"]
    assert failed["name"] == "node/mst01" and failed["phase"] == "await" and failed["timed_out"]
    assert "Node/mst01 was not registered (calico-node creates it" in failed["message"]
    assert "resource does not exist: Node(mst01)" in failed["message"]
    assert report["not_applied"][0] == "namespace/openstack"
    assert not [v for v in verbs(tools.calls()) if v.startswith("calicoctl patch")]


def test_calicoctl_without_its_etcd_certificate_fails_naming_it(env):
    plan, tools, state = env
    (tools.pki / "etcd-client.key").unlink()
    report = run(plan, tools, state)
    failed = report["failed"]
    assert failed["name"] == "ippool/pool" and failed["phase"] == "apply"
    assert "etcdKeyFile" in failed["message"] and "etcd-client.key" in failed["message"]


@pytest.mark.parametrize("change, error", [
    (lambda s: s[3].pop("wait"), "step 3 (namespace/openstack): missing wait"),
    (lambda s: s[6].update(wait="ready"), "wait is 'ready', expected one of"),
    (lambda s: s[5].update(wait="complete"), "wait: complete is for Jobs, not Service"),
    (lambda s: s.append(dict(s[4])), "step name 'secret/openstack-secrets' appears twice"),
    (lambda s: s[0].update(tool="helm"), "tool is 'helm', expected one of kubectl, calicoctl"),
    (lambda s: s[0].update(wait="rollout"), "wait: rollout needs kubectl, not calicoctl"),
    (lambda s: s[1].update(action="patch"), "action: patch is for Calico Nodes"),
    (lambda s: s[6].update({"await": "exists"}), "await: exists is for calicoctl steps"),
])
def test_bad_plan_is_refused_naming_file_and_step(env, change, error):
    plan, _, _ = env
    data = yaml.safe_load(plan.read_text())
    change(data["steps"])
    plan.write_text(yaml.safe_dump(data))
    with pytest.raises(sk.PlanError) as exc:
        sk.load_plan(str(plan))
    assert str(plan) in str(exc.value) and error in str(exc.value)


def test_missing_plan_or_object_file_says_what_to_do(env, tmp_path):
    plan, _, _ = env
    with pytest.raises(sk.PlanError, match="apply kubernetes.master.objects first"):
        sk.load_plan(str(tmp_path / "nowhere" / "apply-plan.yaml"))
    (plan.parent / "openstack" / "10-mariadb" / "service-mariadb.yaml").unlink()
    with pytest.raises(sk.PlanError, match="service-mariadb.yaml does not exist"):
        sk.digests(sk.load_plan(str(plan))[0])


def test_missing_tools_are_named(env, tmp_path):
    plan, tools, _ = env
    steps, settings = sk.load_plan(str(plan))
    assert sk.missing_tools(steps, settings["tools"]) == []
    broken = {"kubectl": {"binary": str(tmp_path / "no-kubectl"),
                          "kubeconfig": str(tmp_path / "no.conf")},
              "calicoctl": {"binary": str(tmp_path / "no-calicoctl"),
                            "config": str(tmp_path / "no.cfg")}}
    missing = sk.missing_tools(steps, broken)
    assert len(missing) == 4
    assert "no-calicoctl is not an executable: install calicoctl" in missing[2]
    # only what the pending steps use is required
    kube_only = [s for s in steps if s["tool"] == "kubectl"]
    assert len(sk.missing_tools(kube_only, broken)) == 2


def _bootstrap_unless_keystone_exists(plan: Path) -> None:
    data = yaml.safe_load(plan.read_text())
    for step in data["steps"]:
        if step["name"] == "job/keystone-bootstrap-flamingo":
            step["unless_exists"] = "deployment/keystone"
    plan.write_text(yaml.safe_dump(data, sort_keys=False))


def test_bootstrap_job_is_skipped_once_the_workload_exists(env):
    """An upgrade must not run a release's bootstrap Job (a full db_sync that contracts
    the schema under running pods): the plan marks it unless_exists."""
    plan, tools, state = env
    _bootstrap_unless_keystone_exists(plan)
    tools.answer([{"match": ["get", "deployment/keystone"], "out": "deployment.apps/keystone"}])
    report = run(plan, tools, state)
    assert report["failed"] is None
    gets = [c["argv"] for c in tools.calls() if "get" in c["argv"] and c["tool"] == "kubectl"
            and "/readyz" not in c["argv"]]
    assert gets and gets[0][2:] == ["get", "deployment/keystone", "--ignore-not-found",
                                    "-o", "name"]
    assert not any("keystone-bootstrap" in arg for c in tools.calls()
                   if "get" not in c["argv"] for arg in c["argv"])
    assert "job/keystone-bootstrap-flamingo" not in report["changed"]
    assert report["skipped_existing"] == ["job/keystone-bootstrap-flamingo"]
    assert "apply deployment-keystone.yaml" in verbs(tools.calls())
    assert "workload exists" in sk.summary(report)
    # recorded: a second run neither checks nor applies anything
    tools.reset()
    assert run(plan, tools, state)["changed"] == [] and tools.calls() == []


def test_bootstrap_job_runs_on_a_first_install(env):
    plan, tools, state = env
    _bootstrap_unless_keystone_exists(plan)
    report = run(plan, tools, state)  # the recorder's cluster has no keystone yet
    assert "job/keystone-bootstrap-flamingo" in report["changed"]
    v = verbs(tools.calls())
    assert v.index("apply job-keystone-bootstrap-flamingo.yaml") < v.index(
        "apply deployment-keystone.yaml")


def test_failing_existence_check_stops_the_run(env):
    plan, tools, state = env
    _bootstrap_unless_keystone_exists(plan)
    tools.answer([{"match": ["get", "deployment/keystone"], "rc": 1,
                   "out": "error: the server doesn't have a resource type"}])
    report = run(plan, tools, state)
    assert report["failed"]["name"] == "job/keystone-bootstrap-flamingo"
    assert report["failed"]["phase"] == "check"
    assert "deployment/keystone exists failed" in report["failed"]["message"]
    assert "deployment/keystone" in report["not_applied"]


# --------------------------------------------------------------------------- the real plan
# Production's first master's plan and objects, as the builder makes them (the very data
# kubernetes.master.objects writes), under tmp, applied with the recorders.

APPLIER = "mst01.prod.local"


@pytest.fixture(scope="module")
def production() -> dict:
    from stacksalt import secrets

    secrets.generate("production")
    dep = Deployment.load("production")
    return objects.build(dep, APPLIER, secrets.decrypt_all("production"))


def written(built: dict, root: Path, tools: Tools, steps: list | None = None) -> Path:
    """The built files and plan under root, with the recorders as the plan's tools."""
    for f in built["files"]:
        path = root / f["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(f["object"]))
    plan = dict(built["plan"], tools=tools.tools)
    if steps is not None:
        plan["steps"] = steps
    (root / "apply-plan.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    return root / "apply-plan.yaml"


def prod_tools(tmp_path, monkeypatch) -> Tools:
    nodes = [n.split(".")[0] for n in Deployment.load("production").node_names
             if not n.startswith("cfg")]
    return Tools(tmp_path, monkeypatch, nodes=nodes, rbac=True)


def test_production_plan_applies_in_order_and_a_second_run_applies_nothing(
        production, tmp_path, monkeypatch):
    tools = prod_tools(tmp_path, monkeypatch)
    plan = written(production, tmp_path / "objects", tools)
    state = tmp_path / "state" / "applied.json"
    report = run(plan, tools, state)
    assert report["failed"] is None, report["failed"]
    steps, _ = sk.load_plan(str(plan))
    assert report["changed"] == [s["name"] for s in steps]
    components = [s["component"] for s in steps]
    # admin.conf's binding, then Calico before CoreDNS before OpenStack, each in one block
    order = ["kubernetes", "calico", "coredns", "openstack"]
    assert components == sorted(components, key=order.index)
    assert set(components) == set(order)
    calls = verbs(tools.calls())
    position = {c: i for i, c in reversed(list(enumerate(calls)))}
    assert position["calicoctl apply ippool-default-ipv4-ippool.yaml"] < \
        position["apply daemonset-calico-node.yaml"] < \
        position["rollout daemonset/calico-node"] < position["calicoctl patch node mst01"] < \
        position["apply deployment-coredns.yaml"] < position["rollout deployment/coredns"] < \
        position["apply namespace-openstack.yaml"]
    assert "calicoctl label nodes mst02" in calls
    cluster = json.loads((tools.dir / "cluster.json").read_text())
    rr = {k: v for k, v in cluster["calico"].items()
          if v.get("metadata", {}).get("labels", {}).get("route-reflector") == "true"}
    assert sorted(rr) == ["Node/mst01", "Node/mst02"]
    # no secret value on any command line
    secret = next(f["object"] for f in production["files"] if f["object"]["kind"] == "Secret")
    raw = (tools.dir / "calls.jsonl").read_text()
    leaked = [k for k, v in secret["data"].items()
              if v in raw or base64.b64decode(v).decode() in raw]
    assert not leaked, f"secrets {leaked} on a command line"
    # a second run applies nothing and calls no tool
    tools.reset()
    again = run(plan, tools, state)
    assert again["changed"] == [] and again["failed"] is None and tools.calls() == []


def _binding_first(steps: list[dict]) -> list[dict]:
    """admin.conf's ClusterRoleBinding stays first (tests/fast/test_cluster_admins.py
    breaks that order on purpose)."""
    return [s for s in steps if s["component"] == "kubernetes"] + \
        [s for s in steps if s["component"] != "kubernetes"]


def _order(steps: list[dict], first: str) -> list[dict]:
    return _binding_first([s for s in steps if s["component"] == first]
                          + [s for s in steps if s["component"] != first])


@pytest.mark.parametrize("broken, failing, why", [
    # today's main before the one plan: Calico's objects were never applied
    (lambda steps: [s for s in steps if s["component"] != "calico"], "deployment/coredns",
     "no pod network"),
    # CoreDNS before Calico
    (lambda steps: _order(steps, "coredns"), "deployment/coredns", "no pod network"),
    # OpenStack before CoreDNS and Calico
    (lambda steps: _order(steps, "openstack"), "deployment/mariadb", "no pod network"),
    # the route reflectors' Nodes before calico-node registered them
    (lambda steps: _binding_first(sorted(steps, key=lambda s: s["action"] != "patch")),
     "node/mst01", "was not registered"),
    # calico-node before its ServiceAccount
    (lambda steps: _binding_first(sorted(steps,
                                         key=lambda s: s["name"] != "daemonset/calico-node")),
     "daemonset/calico-node", "service account kube-system/calico-node"),
])
def test_the_recorders_refuse_a_broken_order(production, tmp_path, monkeypatch, broken, failing,
                                             why):
    """Negative controls: the recorders fail the orders a real cluster could not follow."""
    tools = prod_tools(tmp_path, monkeypatch)
    # the run's short timeout for every step (a step's own timeout would win)
    steps = broken([{k: v for k, v in s.items() if k != "timeout"}
                    for s in production["plan"]["steps"]])
    plan = written(production, tmp_path / "objects", tools, steps)
    report = run(plan, tools, tmp_path / "state.json", timeout=1, grace=0.5)
    assert report["failed"] is not None, "the broken order went through"
    assert report["failed"]["name"] == failing, report["failed"]
    assert why in report["failed"]["message"]


def test_apply_renders_on_the_first_master_only(lab_secrets):
    from stacksalt import secrets
    from stacksalt.validate import collect

    secrets.generate("production")
    rendered = collect.rendered("production")

    def state_args(states: dict, state_id: str) -> dict:
        assert state_id in states, f"{state_id} is not rendered"
        return next(kwargs for _, kwargs in collect.state_calls(states[state_id]))

    args = state_args(rendered[APPLIER], "kubernetes-master-objects-applied")
    assert args["name"] == "/etc/kubernetes/objects/apply-plan.yaml"
    assert args["event_tag"] == "stacksalt/kubernetes/objects/applied"
    assert {"saltutil": "kubernetes-master-apply-state-module-synced"} in args["require"]
    plan = state_args(rendered[APPLIER], "kubernetes-master-objects-apply-plan-managed")
    assert plan["dataset"]["tools"] == {
        "kubectl": {"binary": "/usr/local/bin/kubectl",
                    "kubeconfig": "/etc/kubernetes/admin.conf",
                    "super_admin_kubeconfig": "/etc/kubernetes/super-admin.conf"},
        "calicoctl": {"binary": "/usr/local/bin/calicoctl",
                      "config": "/etc/calico/calicoctl.cfg"}}
    for other in ("mst02.prod.local", "mst03.prod.local"):
        assert "kubernetes-master-objects-applied" not in rendered[other]
        assert "kubernetes-master-apply-other-master" in rendered[other]
        assert "kubernetes-master-objects-apply-plan-managed" in rendered[other]
    # the lab writes everything and applies nothing (kubernetes_binaries_install: false)
    assert not any("objects-applied" in s for states in collect.rendered("lab").values()
                   for s in states)


# --------------------------------------------------------------------------- downgrades

GAZPACHO = {"name": "gazpacho", "series": "2026.1"}
FLAMINGO = {"name": "flamingo", "series": "2025.2"}


def with_release(plan: Path, release: dict | None, allow: bool = False) -> Path:
    data = yaml.safe_load(plan.read_text())
    data.pop("release", None)
    if release:
        data["release"], data["allow_downgrade"] = release, allow
    plan.write_text(yaml.safe_dump(data, sort_keys=False))
    return plan


def apply_state(plan: Path, state: Path, monkeypatch, test: bool = False) -> dict:
    """The state function itself, as Salt calls it (its __opts__ and __salt__)."""
    events = []
    monkeypatch.setattr(sk, "__opts__", {"test": test, "id": "mst01"}, raising=False)
    monkeypatch.setattr(sk, "__salt__", {"event.send": lambda t, d: events.append(t) or True},
                        raising=False)
    return sk.applied(str(plan), state_file=str(state), rollout_timeout=5, wait_grace=1,
                      api_timeout=5)


def test_series_order_and_the_downgrade_rule():
    assert sk.series_key("2026.1") > sk.series_key("2025.2") > sk.series_key("2025.1")
    assert sk.series_key("2025") is None and sk.series_key("x.1") is None
    assert sk.downgrade(None, FLAMINGO) is None
    assert sk.downgrade(FLAMINGO, GAZPACHO) is None  # an upgrade
    assert sk.downgrade(GAZPACHO, GAZPACHO) is None  # a re-apply
    why = sk.downgrade(GAZPACHO, FLAMINGO)
    assert why.startswith("refusing to downgrade OpenStack from gazpacho (2026.1) to "
                          "flamingo (2025.2)") and "allow_downgrade" in why and "\n" not in why


def test_the_apply_refuses_a_downgrade_and_applies_nothing(env, monkeypatch):
    """The record keeps the release of the last finished run; a plan of an older series
    is refused before any tool runs (in test mode too), and applied when the plan allows
    it; the record then names the older release."""
    plan, tools, state = env
    ret = apply_state(with_release(plan, GAZPACHO), state, monkeypatch)
    assert ret["result"] is True, ret["comment"]
    assert sk.read_release(str(state)) == GAZPACHO
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    with_release(plan, FLAMINGO)
    (plan.parent / "openstack/20-keystone/deployment-keystone.yaml").write_text(
        yaml.safe_dump(document("Deployment", "keystone", "openstack") | {"x": 1}))
    before = sk.read_record(str(state))
    tools.reset()
    for test in (True, False):
        ret = apply_state(plan, state, monkeypatch, test=test)
        assert ret["result"] is False
        assert ret["comment"].startswith("refusing to downgrade OpenStack from gazpacho")
        assert "\n" not in ret["comment"] and ret["changes"] == {}
    assert tools.calls() == []  # not even /readyz
    assert sk.read_record(str(state)) == before and sk.read_release(str(state)) == GAZPACHO
    ret = apply_state(with_release(plan, FLAMINGO, allow=True), state, monkeypatch)
    assert ret["result"] is True, ret["comment"]
    assert "deployment/keystone" in ret["changes"]["changed"]
    assert sk.read_release(str(state)) == FLAMINGO


def test_a_failed_upgrade_before_its_contract_keeps_the_old_release(env, monkeypatch):
    """Expand and migrate are additive: a run that fails before any contract Job leaves
    the record on the old release, so going back to it is no downgrade."""
    plan, tools, state = env
    assert apply_state(with_release(plan, FLAMINGO), state, monkeypatch)["result"] is True
    with_release(plan, GAZPACHO)
    (plan.parent / "openstack/20-keystone/deployment-keystone.yaml").write_text(
        yaml.safe_dump(document("Deployment", "keystone", "openstack") | {"x": 2}))
    tools.answer([{"match": ["rollout", "status", "deployment/keystone"], "rc": 1,
                   "out": "deployment keystone exceeded its progress deadline"}])
    ret = apply_state(plan, state, monkeypatch)
    assert ret["result"] is False and "deployment/keystone" in ret["comment"]
    assert sk.read_release(str(state)) == FLAMINGO
    steps, _ = sk.load_plan(str(plan))
    contract = {"changed": ["job/keystone-contract-flamingo"], "failed": {"name": "x"}}
    assert sk.rolled_out(contract, steps) is True
    assert sk.rolled_out({"changed": ["deployment/keystone"], "failed": {"name": "x"}},
                         steps) is False


def test_a_plan_with_a_bad_release_is_refused(env):
    plan, _tools, _state = env
    with_release(plan, {"name": "flamingo", "series": "flamingo"})
    with pytest.raises(sk.PlanError) as err:
        sk.load_plan(str(plan))
    assert "release is" in str(err.value) and "kubernetes:control:release" in str(err.value)
