"""kubernetes.master.apply run for real by Salt on mst01 (the applying master) against the
recording kubectl and calicoctl, whose answers the test controls (no API server or Calico
can run here).

The recorder (tests/lab/cluster_recorder.py) is installed at the paths the plan names in
production (/usr/local/bin/kubectl and /usr/local/bin/calicoctl; the lab installs
neither), run by the node's Salt interpreter, and removed afterwards; it needs what the
real tools need (the admin kubeconfig, calicoctl's etcd certificates the lab issued, the
namespaces and a pod network before pods can run). `kubernetes:master:objects:apply` is
switched on by a command-line pillar for these runs only. Asserted: the one plan's order
(Calico, then CoreDNS, then OpenStack), nothing applied twice, stop at a failing rollout,
a hanging rollout is a timeout, the report event reaches the master, no secret value on a
command line or in the state's output."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time

import pytest
import yaml

from stacksalt.lab import summary

pytestmark = pytest.mark.lab

APPLIER = "mst01.lab.local"
MASTERS = ["mst01.lab.local", "mst02.lab.local", "mst03.lab.local"]
TOOLS = ("/usr/local/bin/kubectl", "/usr/local/bin/calicoctl")
INTERPRETER = "/opt/salt/bin/python3"
REC_DIR = "/var/lib/kubectl-recorder"
STATE_FILE = "/var/lib/stacksalt/kubernetes/applied.json"
TOP = "/etc/kubernetes/objects"
PLAN = f"{TOP}/apply-plan.yaml"
STATE_KEY = ("stacksalt_kubernetes_|-kubernetes-master-objects-applied_|-"
             f"{PLAN}_|-applied")
TAG = "stacksalt/kubernetes/objects/applied"
ROLLOUT_TIMEOUT, WAIT_GRACE = 2, 1
PILLAR = {"kubernetes": {
    "master": {"objects": {"apply": True, "rollout_timeout": ROLLOUT_TIMEOUT,
                           "wait_grace": WAIT_GRACE}},
    "control": {"rollout_timeout": ROLLOUT_TIMEOUT}}}
MARKER = "A recording stand-in for kubectl and calicoctl"
NODES = ["mst01", "mst02", "mst03", "ctl01", "ctl02", "ctl03", "cmp01", "cmp02"]


def sh(container, cmd: str) -> str:
    res = container.exec_run(["sh", "-c", cmd])
    out = res.output.decode(errors="replace")
    assert res.exit_code == 0, f"{cmd}: exit {res.exit_code}: {out}"
    return out


@pytest.fixture(scope="module")
def recorder(lab):
    """The recorder as mst01's kubectl and calicoctl, with a fresh call log, cluster
    model and apply record."""
    mst = lab.container(APPLIER)
    for tool in TOOLS:
        existing = mst.exec_run(["cat", tool])
        if existing.exit_code == 0 and MARKER not in existing.output.decode(errors="replace"):
            pytest.fail(f"{APPLIER} has a real {tool}: these tests would drive it")
    with open(os.path.join(os.path.dirname(__file__), "cluster_recorder.py"), "rb") as fh:
        source = fh.read().replace(b"#!/usr/bin/python3", f"#!{INTERPRETER}".encode(), 1)
    for tool in TOOLS:
        _put(mst, tool, source, 0o755)
    sh(mst, f"mkdir -p {REC_DIR} && rm -f {STATE_FILE}")
    rec = Recorder(mst)
    rec.answer([])
    yield rec
    sh(mst, f"rm -rf {' '.join(TOOLS)} {REC_DIR} {STATE_FILE}")


@pytest.fixture(scope="module", autouse=True)
def model_objects_restored(lab):
    """The tests render mst01's plan with a test pillar (short rollout timeout): afterwards
    mst01 gets the model's rendering back, so the lab is as a plain state.apply leaves it."""
    yield
    res = lab.master.exec_run(["salt", "--out=json", "--static", "--timeout=240", APPLIER,
                               "state.apply", "kubernetes.master.objects"])
    raw = res.output.decode(errors="replace")
    states = summary.json_from(raw).get(APPLIER)
    assert isinstance(states, dict), f"no state return from {APPLIER}: {raw[-3000:]}"
    failed = [k for k, v in states.items() if v.get("result") is False]
    assert not failed, f"restoring the model's objects failed: {failed}"


def _put(container, path: str, data: bytes, mode: int) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(os.path.basename(path))
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))
    assert container.put_archive(os.path.dirname(path), buf.getvalue())


class Recorder:
    def __init__(self, container):
        self.c = container

    def answer(self, rules: list[dict]) -> None:
        body = json.dumps({"rules": rules, "nodes": NODES}).encode()
        _put(self.c, f"{REC_DIR}/answers.json", body, 0o644)
        sh(self.c, f"rm -f {REC_DIR}/calls.jsonl")

    def raw(self) -> str:
        res = self.c.exec_run(["cat", f"{REC_DIR}/calls.jsonl"])
        return res.output.decode(errors="replace") if res.exit_code == 0 else ""

    def calls(self) -> list[dict]:
        return [json.loads(line) for line in self.raw().splitlines()]

    def forget_applied(self) -> None:
        """A cluster as new: no apply record, nothing in the recorder's cluster."""
        sh(self.c, f"rm -f {STATE_FILE} {REC_DIR}/cluster.json")


def verbs(calls: list[dict]) -> list[tuple[str, str]]:
    """(verb, what): ('apply', file relative to the objects dir), ('patch', node name),
    ('rollout'|'wait'|'delete', kind/object), ('get', ...), ('label', ...)."""
    out = []
    for call in calls:
        rest = [a for a in call["argv"]
                if not a.startswith(("--kubeconfig=", "--namespace=", "--config="))]
        if "--for=condition=failed" in rest:
            continue  # the watcher beside each Job's wait for Complete
        if rest[0] == "apply":
            out.append(("apply", rest[rest.index("-f") + 1][len(TOP) + 1:]))
        elif rest[0] == "rollout":
            out.append(("rollout", rest[2]))
        elif rest[0] == "wait":
            out.append(("wait", next(a for a in rest if a.startswith("job/"))))
        elif rest[0] == "delete":
            out.append(("delete", rest[1]))
        elif rest[0] == "patch":
            out.append(("patch", rest[2]))
        else:
            out.append((rest[0], " ".join(rest[1:])))
    return out


def acted(steps: list[dict]) -> list[tuple[str, str]]:
    """What each step of the plan does first: ('apply', file) or ('patch', node)."""
    return [("patch", s["object"]) if s["action"] == "patch" else ("apply", s["file"])
            for s in steps]


def apply(lab, pillar: dict | None = PILLAR, test: bool = False) -> tuple[dict, dict, str]:
    """state.apply kubernetes.master.apply on mst01: (the apply state's return, all
    states, the raw output)."""
    args = [APPLIER, "state.apply", "kubernetes.master.apply"]
    if pillar is not None:
        args.append(f"pillar={json.dumps(pillar)}")
    if test:
        args.append("test=True")
    res = lab.master.exec_run(["salt", "--out=json", "--static", "--timeout=240", *args])
    raw = res.output.decode(errors="replace")
    states = summary.json_from(raw).get(APPLIER)
    assert isinstance(states, dict), f"no state return from {APPLIER}: {raw[-3000:]}"
    others = {k: v for k, v in states.items()
              if not v.get("result") and v.get("result") is not None and k != STATE_KEY}
    assert not others, f"other states failed: {json.dumps(others, indent=1)[:3000]}"
    return states.get(STATE_KEY), states, raw


class EventListener:
    """`salt-run state.event` on the master, started before a run, read after it."""

    def __init__(self, lab, name: str):
        self.master, self.out = lab.master, f"/tmp/stacksalt-apply-test-{name}.events"
        sh(self.master, f"rm -f {self.out}")
        self.master.exec_run(
            ["sh", "-c", f"timeout 300 salt-run state.event 'tagmatch={TAG}' count=1 "
                         f"> {self.out} 2>&1"], detach=True)
        time.sleep(3)  # subscribed before the run fires anything

    def event(self, within: float = 30) -> dict:
        deadline = time.monotonic() + within
        text = ""
        while time.monotonic() < deadline:
            text = self.master.exec_run(["cat", self.out]).output.decode(errors="replace")
            if TAG in text:
                break
            time.sleep(1)
        sh(self.master, f"rm -f {self.out}")
        assert TAG in text, f"the master saw no {TAG} event: {text[-2000:]}"
        line = next(line for line in text.splitlines() if line.startswith(TAG))
        body = json.loads(line[len(TAG):].strip())
        # the master's wrapping of a minion's event.send: the sender's id, as the master
        # authenticated it, and the data as sent
        assert body["id"] == APPLIER and body["cmd"] == "_minion_event", body
        return body["data"]


def test_apply_is_off_in_the_lab(lab, recorder):
    ret, states, raw = apply(lab, pillar=None)
    assert ret is None, "the lab model applies (kubernetes:master:objects:apply should be false)"
    assert any("switched-off" in k and v["result"] for k, v in states.items()), raw[-2000:]
    assert recorder.calls() == []


def test_other_masters_render_and_leave_the_apply_to_mst01(lab, recorder):
    for member in MASTERS[1:]:
        res = lab.master.exec_run(
            ["salt", "--out=json", "--static", "--timeout=240", member, "state.apply",
             "kubernetes.master.apply", f"pillar={json.dumps(PILLAR)}", "test=True"])
        raw = res.output.decode(errors="replace")
        assert "mst01 applies them" in raw, raw[-2000:]
        assert "objects-applied" not in raw


def test_first_apply_follows_the_plan_and_reports_to_the_master(lab, recorder, lab_secrets):
    recorder.forget_applied()
    recorder.answer([])
    listener = EventListener(lab, "first")
    ret, _, raw = apply(lab)
    assert ret["result"] is True, ret["comment"]
    plan = lab.host(APPLIER).file(PLAN).content_string
    steps = yaml.safe_load(plan)["steps"]
    calls = verbs(recorder.calls())
    # (a) every object applied once, in the plan's order: admin.conf's binding, Calico,
    # CoreDNS, OpenStack
    assert [c for c in calls if c[0] in ("apply", "patch")] == acted(steps)
    components = [s["component"] for s in steps]
    order_of = ["kubernetes", "calico", "coredns", "openstack"]
    assert components == sorted(components, key=order_of.index)
    assert set(components) == set(order_of)
    assert steps[0]["kind"] == "ClusterRoleBinding" and components.count("kubernetes") == 1
    assert [s["tool"] for s in steps[1:3]] == ["calicoctl", "calicoctl"]  # IPPool, BGP
    kinds = {s["file"]: s for s in steps}
    order = [s for s in steps if s["component"] == "openstack"]
    assert [s["kind"] for s in order[:2]] == ["Namespace", "Secret"]
    roles = [s["role"] for s in order if s["kind"] in ("Deployment", "DaemonSet")]
    infra = {"mariadb", "memcached", "rabbitmq"}
    first_keystone = roles.index("keystone")
    assert set(roles[:first_keystone]) == infra, roles
    assert not infra & set(roles[first_keystone:]), roles
    # jobs before the workload of their role, contract Jobs after the service's last one
    for i, s in enumerate(order):
        if s["kind"] != "Job":
            continue
        workloads = [j for j, t in enumerate(order) if t["kind"] in ("Deployment", "DaemonSet")
                     and t["role"].split("-")[0] == s["role"].split("-")[0]]
        if "-contract-" in s["object"]:
            assert i > max(workloads), f"{s['name']} before its service's workload"
        else:
            own = [j for j in workloads if order[j]["role"] == s["role"]]
            assert i < min(own), f"{s['name']} after its role's workload"
    # every rollout / Job awaited right after its apply
    for i, (verb, what) in enumerate(calls):
        if verb == "apply" and kinds[what]["wait"] != "none":
            assert calls[i + 1][0] in ("rollout", "wait"), calls[i:i + 2]
            assert calls[i + 1][1].endswith("/" + kinds[what]["object"])
    for call in recorder.calls():
        argv = call["argv"]
        if call["tool"] == "calicoctl":
            assert argv[-1] == "--config=/etc/calico/calicoctl.cfg", argv
            continue
        # super-admin.conf for admin.conf's ClusterRoleBinding only (the plan's first step)
        binding = "-f" in argv and argv[argv.index("-f") + 1].endswith(
            "/clusterrolebinding-kubeadm-cluster-admins.yaml")
        conf = "super-admin.conf" if binding else "admin.conf"
        assert f"--kubeconfig=/etc/kubernetes/{conf}" in argv, argv
        if "-f" in argv:
            step = kinds[argv[argv.index("-f") + 1][len(TOP) + 1:]]
            want = [f"--namespace={step['namespace']}"] if step["namespace"] else []
            assert [a for a in argv if a.startswith("--namespace=")] == want, argv
    # the record: 0600, one sha256 per step
    record = lab.host(APPLIER).file(STATE_FILE)
    assert record.mode == 0o600 and record.user == "root"
    assert set(json.loads(record.content_string)["applied"]) == {s["name"] for s in steps}
    # (e) the master received the report
    event = listener.event()
    assert event["minion"] == APPLIER and event["result"] is True
    assert event["failed"] is None and event["not_applied"] == []
    assert event["changed"] == [s["name"] for s in steps]
    waited = {s["name"] for s in steps if s["wait"] != "none"}
    assert set(event["rollouts"]) == waited
    assert [s["name"] for s in event["steps"]] == [s["name"] for s in steps]
    assert all(s["apply_seconds"] >= 0 for s in event["steps"])
    # (f) no secret value on any command line, in the output or in the event
    values = [v for v in lab_secrets.values() if len(str(v)) >= 4]
    for text in (recorder.raw(), raw, json.dumps(event)):
        assert not [v for v in values if str(v) in text], "a secret value leaked"


def test_second_apply_changes_nothing_and_calls_no_tool(lab, recorder):
    recorder.answer([])
    ret, _, _ = apply(lab)  # whatever ran before: everything applied now
    assert ret["result"] is True, ret["comment"]
    recorder.answer([])
    listener = EventListener(lab, "second")
    ret, _, _ = apply(lab)
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert "nothing changed" in ret["comment"]
    assert recorder.calls() == []
    event = listener.event()
    assert event["changed"] == [] and event["failed"] is None and event["skipped"]


def test_test_mode_lists_the_plan_and_runs_no_tool(lab, recorder):
    # the module is synced by now (the real runs above); forget what was applied
    recorder.forget_applied()
    recorder.answer([])
    ret, _, _ = apply(lab, test=True)
    assert ret["result"] is None, ret
    assert "would apply" in ret["comment"] and "no tool run" in ret["comment"]
    assert ret["changes"]["would_apply"][:3] == ["clusterrolebinding/kubeadm:cluster-admins",
                                                 "ippool/default-ipv4-ippool",
                                                 "bgpconfiguration/default"]
    assert recorder.calls() == []


def test_failing_rollout_stops_the_run_at_that_object(lab, recorder):
    recorder.forget_applied()
    recorder.answer([{"match": ["rollout", "status", "deployment/keystone"], "rc": 1,
                      "out": 'error: deployment "keystone" exceeded its progress deadline'}])
    listener = EventListener(lab, "failed")
    ret, _, _ = apply(lab)
    assert ret["result"] is False
    assert "FAILED at Deployment/keystone" in ret["comment"]
    assert "exceeded its progress deadline" in ret["comment"]
    calls = verbs(recorder.calls())
    assert calls[-1] == ("rollout", "deployment/keystone")
    steps = yaml.safe_load(lab.host(APPLIER).file(PLAN).content_string)["steps"]
    upto = [s["name"] for s in steps].index("deployment/keystone")
    # the plan up to the failing object, nothing after it
    assert [c for c in calls if c[0] in ("apply", "patch")] == acted(steps[:upto + 1])
    assert ret["changes"]["failed"]["name"] == "deployment/keystone"
    assert ret["changes"]["not_applied"] == [s["name"] for s in steps[upto + 1:]]
    event = listener.event()
    assert event["result"] is False and event["failed"]["name"] == "deployment/keystone"
    assert event["failed"]["phase"] == "wait" and not event["failed"]["timed_out"]
    assert event["not_applied"] == ret["changes"]["not_applied"]
    # fixed: the next run starts again at the failed object and finishes the plan
    recorder.answer([])
    ret, _, _ = apply(lab)
    assert ret["result"] is True, ret["comment"]
    applied = [what for verb, what in verbs(recorder.calls()) if verb == "apply"]
    assert applied[0] == "openstack/20-keystone/deployment-keystone.yaml"
    assert applied[-1].startswith(("openstack/30-", "openstack/40-"))


def test_hanging_rollout_is_a_timeout(lab, recorder):
    recorder.forget_applied()
    recorder.answer([{"match": ["rollout", "status", "deployment/mariadb"], "sleep": 60}])
    t0 = time.monotonic()
    ret, _, _ = apply(lab)
    took = time.monotonic() - t0
    assert ret["result"] is False
    assert "FAILED at Deployment/mariadb" in ret["comment"]
    limit = ROLLOUT_TIMEOUT + WAIT_GRACE
    assert f"timed out: kubectl rollout status still running after {limit}s, killed" in \
        ret["comment"]
    assert ret["changes"]["failed"]["timed_out"] is True
    assert took < 50, f"the run waited for the hanging kubectl ({took:.0f}s)"
    assert verbs(recorder.calls())[-1] == ("rollout", "deployment/mariadb")


def test_a_failing_secret_apply_leaks_no_value(lab, recorder, lab_secrets):
    recorder.forget_applied()
    # kubectl refuses the Secret and prints the object it was given, values and all
    recorder.answer([{"match": ["apply", f"{TOP}/openstack/00-secret/"
                      "secret-openstack-secrets.yaml"], "rc": 1,
                      "out": "error: invalid object", "echo_file": True}])
    ret, _, raw = apply(lab)
    assert ret["result"] is False
    assert "FAILED at Secret/openstack-secrets" in ret["comment"]
    assert "<redacted>" in ret["comment"]
    values = [str(v) for v in lab_secrets.values() if len(str(v)) >= 4]
    for text in (recorder.raw(), raw):
        assert not [v for v in values if v in text], "a secret value leaked"
