"""The apply logic of kubernetes.control.apply (formulas/_states/stacksalt_kubernetes.py),
run against the recording kubectl (tests/lab/kubectl_recorder.py) as real processes:
plan checks, order, nothing applied when nothing changed, stop at the first failure,
timeouts, the 0600 record, and no Secret value on a command line or in a message.

The Salt side (sync, pillar, event to the master) is the lab tier's
tests/lab/test_control_apply.py."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import stat
import time
from pathlib import Path

import pytest
import yaml

from stacksalt import paths

pytestmark = pytest.mark.fast

ROOT = paths.repo_root()
RECORDER = ROOT / "tests" / "lab" / "kubectl_recorder.py"
SECRET = "s3cret-Value-9f8e7d"
SECRET_B64 = "b64-only-secret-4242"


def _load_module():
    spec = importlib.util.spec_from_file_location(
        "stacksalt_kubernetes_state", ROOT / "formulas" / "_states" / "stacksalt_kubernetes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


sk = _load_module()

# A small plan in the shape kubernetes.control.manifests writes (README of the role).
STEPS = [
    ("namespace/openstack", "Namespace", "openstack", "00-namespace/namespace-openstack.yaml",
     "none"),
    ("secret/openstack-secrets", "Secret", "openstack-secrets",
     "00-secret/secret-openstack-secrets.yaml", "none"),
    ("service/mariadb", "Service", "mariadb", "10-mariadb/service-mariadb.yaml", "none"),
    ("deployment/mariadb", "Deployment", "mariadb", "10-mariadb/deployment-mariadb.yaml",
     "rollout"),
    ("job/keystone-bootstrap-flamingo", "Job", "keystone-bootstrap-flamingo",
     "20-keystone/job-keystone-bootstrap-flamingo.yaml", "complete"),
    ("deployment/keystone", "Deployment", "keystone", "20-keystone/deployment-keystone.yaml",
     "rollout"),
    ("job/keystone-contract-flamingo", "Job", "keystone-contract-flamingo",
     "20-keystone/job-keystone-contract-flamingo.yaml", "complete"),
    ("daemonset/nova-compute", "DaemonSet", "nova-compute",
     "40-nova-compute/daemonset-nova-compute.yaml", "rollout"),
]


def write_plan(root: Path) -> Path:
    steps = []
    for name, kind, obj, file, wait in STEPS:
        path = root / file
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"apiVersion": "v1", "kind": kind, "metadata": {"name": obj}}
        if kind == "Secret":
            doc["stringData"] = {"KEYSTONE_ADMIN_PASSWORD": SECRET}
            doc["data"] = {"OTHER": base64.b64encode(SECRET_B64.encode()).decode()}
        path.write_text(yaml.safe_dump(doc))
        if kind == "Secret":
            path.chmod(0o600)
        steps.append({"name": name, "kind": kind, "object": obj, "file": file, "wait": wait,
                      "role": ""})
    plan = root / "apply-plan.yaml"
    plan.write_text(yaml.safe_dump({"namespace": "openstack", "rollout_timeout": 300,
                                    "steps": steps}, sort_keys=False))
    return plan


class Kubectl:
    """The recorder, installed as kubectl under tmp, with its answers and call log."""

    def __init__(self, tmp: Path, monkeypatch):
        self.dir = tmp / "recorder"
        self.dir.mkdir()
        self.bin = tmp / "bin" / "kubectl"
        self.bin.parent.mkdir()
        self.bin.write_text(RECORDER.read_text())
        self.bin.chmod(0o755)
        monkeypatch.setenv("KUBECTL_RECORDER_DIR", str(self.dir))
        self.answer([])

    def answer(self, rules: list[dict]) -> None:
        (self.dir / "answers.json").write_text(json.dumps({"rules": rules}))

    def calls(self) -> list[list[str]]:
        log = self.dir / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line)["argv"] for line in log.read_text().splitlines()]

    def reset(self) -> None:
        (self.dir / "calls.jsonl").unlink(missing_ok=True)


@pytest.fixture
def env(tmp_path, monkeypatch):
    plan = write_plan(tmp_path / "manifests")
    kubectl = Kubectl(tmp_path, monkeypatch)
    state = tmp_path / "state" / "applied.json"
    return plan, kubectl, state


def run(plan: Path, kubectl: Kubectl, state: Path, timeout: int = 5, grace: float = 1.0):
    steps = sk.load_plan(str(plan))
    record = sk.read_record(str(state))
    sums = sk.digests(steps)
    return sk.execute(steps, record, sums,
                      base=sk.base_argv(str(kubectl.bin), "/etc/kubernetes/admin.conf",
                                        "openstack"),
                      field_manager="stacksalt", rollout_timeout=timeout, wait_grace=grace,
                      save=lambda r: sk.write_record(str(state), r))


def verbs(calls: list[list[str]]) -> list[str]:
    """Each call (argv after --kubeconfig and --namespace) as 'apply <file basename>',
    'rollout <ref>', 'wait <ref>' or 'delete <ref>'."""
    out = []
    for argv in calls:
        rest = argv[2:]
        if "--for=condition=failed" in rest:
            continue  # the watcher beside each Job's wait (test_job_wait_watches_failed)
        if rest[0] == "apply":
            out.append(f"apply {os.path.basename(rest[rest.index('-f') + 1])}")
        elif rest[0] == "rollout":
            out.append(f"rollout {rest[2]}")
        elif rest[0] == "wait":
            out.append(f"wait {[a for a in rest if a.startswith('job/')][0]}")
        elif rest[0] == "delete":
            out.append(f"delete {rest[1]}")
    return out


def test_first_run_applies_every_step_in_plan_order_and_waits(env):
    plan, kubectl, state = env
    report = run(plan, kubectl, state)
    assert report["failed"] is None
    assert report["changed"] == [s[0] for s in STEPS]
    assert verbs(kubectl.calls()) == [
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
    first = kubectl.calls()[0]
    assert first[:2] == ["--kubeconfig=/etc/kubernetes/admin.conf", "--namespace=openstack"]
    assert "--server-side" in first and "--field-manager=stacksalt" in first
    rollout = kubectl.calls()[4]
    assert rollout[-1] == "--timeout=5s"
    assert set(report["rollouts"]) == {"deployment/mariadb", "job/keystone-bootstrap-flamingo",
                                       "deployment/keystone", "job/keystone-contract-flamingo",
                                       "daemonset/nova-compute"}
    assert [s["name"] for s in report["steps"]] == [s[0] for s in STEPS]


def test_record_is_0600_and_second_run_applies_nothing(env):
    plan, kubectl, state = env
    run(plan, kubectl, state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    kubectl.reset()
    report = run(plan, kubectl, state)
    assert kubectl.calls() == []
    assert report["changed"] == [] and report["failed"] is None
    assert report["skipped"] == [s[0] for s in STEPS]


def test_only_the_changed_object_is_applied(env):
    plan, kubectl, state = env
    run(plan, kubectl, state)
    kubectl.reset()
    f = plan.parent / "20-keystone" / "deployment-keystone.yaml"
    doc = yaml.safe_load(f.read_text())
    doc["metadata"]["labels"] = {"changed": "yes"}
    f.write_text(yaml.safe_dump(doc))
    report = run(plan, kubectl, state)
    assert verbs(kubectl.calls()) == ["apply deployment-keystone.yaml",
                                      "rollout deployment/keystone"]
    assert report["changed"] == ["deployment/keystone"]


def test_failed_rollout_stops_the_run_and_is_retried_next_time(env):
    plan, kubectl, state = env
    kubectl.answer([{"match": ["rollout", "status", "deployment/keystone"], "rc": 1,
                     "out": 'error: deployment "keystone" exceeded its progress deadline'}])
    report = run(plan, kubectl, state)
    failed = report["failed"]
    assert failed["name"] == "deployment/keystone" and failed["phase"] == "wait"
    assert not failed["timed_out"]
    assert "Deployment/keystone" in failed["message"]
    assert "exceeded its progress deadline" in failed["message"]
    assert report["not_applied"] == ["job/keystone-contract-flamingo", "daemonset/nova-compute"]
    applied = [v for v in verbs(kubectl.calls()) if v.startswith("apply")]
    assert applied[-1] == "apply deployment-keystone.yaml"
    assert "deployment/keystone" not in json.loads(state.read_text())["applied"]
    # fixed: the next run starts at the failed step and goes on
    kubectl.answer([])
    kubectl.reset()
    report = run(plan, kubectl, state)
    assert report["failed"] is None
    assert report["changed"] == ["deployment/keystone", "job/keystone-contract-flamingo",
                                 "daemonset/nova-compute"]


def test_failed_apply_stops_before_its_wait(env):
    plan, kubectl, state = env
    kubectl.answer([{"match": ["apply", str(plan.parent / "10-mariadb/deployment-mariadb.yaml")],
                     "rc": 1, "out": "error: admission webhook denied"}])
    report = run(plan, kubectl, state)
    assert report["failed"]["phase"] == "apply"
    assert "kubectl apply failed (exit 1): error: admission webhook denied" in \
        report["failed"]["message"]
    assert verbs(kubectl.calls())[-1] == "apply deployment-mariadb.yaml"


def test_hanging_rollout_is_killed_and_named_a_timeout(env):
    plan, kubectl, state = env
    kubectl.answer([{"match": ["rollout", "status", "deployment/mariadb"], "sleep": 30}])
    t0 = time.monotonic()
    report = run(plan, kubectl, state, timeout=1, grace=0.5)
    took = time.monotonic() - t0
    assert took < 10, f"the hanging kubectl was not killed ({took:.1f}s)"
    failed = report["failed"]
    assert failed["name"] == "deployment/mariadb" and failed["timed_out"]
    assert "timed out: kubectl rollout status still running after 1.5s, killed" in \
        failed["message"]
    assert report["not_applied"][0] == "job/keystone-bootstrap-flamingo"


def test_kubectl_own_timeout_is_named_a_timeout(env):
    plan, kubectl, state = env
    kubectl.answer([{"match": ["--for=condition=complete", "job/keystone-bootstrap-flamingo"],
                     "rc": 1,
                     "out": "error: timed out waiting for the condition on "
                            "jobs/keystone-bootstrap-flamingo"}])
    report = run(plan, kubectl, state, timeout=2)
    failed = report["failed"]
    assert failed["timed_out"] and failed["phase"] == "wait"
    assert "timed out: Job did not complete within 2s" in failed["message"]


def test_job_wait_watches_failed_beside_complete(env):
    plan, kubectl, state = env
    run(plan, kubectl, state)
    watchers = [a for a in kubectl.calls() if "--for=condition=failed" in a]
    assert sorted(a[4] for a in watchers) == ["job/keystone-bootstrap-flamingo",
                                              "job/keystone-contract-flamingo"]


def test_failed_job_fails_the_step_at_once(env):
    plan, kubectl, state = env
    job = "job/keystone-bootstrap-flamingo"
    kubectl.answer([
        {"match": ["--for=condition=complete", job], "sleep": 30},
        {"match": ["--for=condition=failed", job], "out": f"{job} condition met"},
    ])
    t0 = time.monotonic()
    report = run(plan, kubectl, state, timeout=20)
    took = time.monotonic() - t0
    assert took < 10, f"the failed Job was noticed only after {took:.1f}s"
    failed = report["failed"]
    assert failed["name"] == job and failed["phase"] == "wait" and not failed["timed_out"]
    assert "Job/keystone-bootstrap-flamingo (step job/keystone-bootstrap-flamingo): " \
        "the Job failed (condition Failed)" in failed["message"]
    assert report["not_applied"][0] == "deployment/keystone"


def test_no_secret_on_a_command_line_nor_in_a_message(env):
    plan, kubectl, state = env
    secret_file = str(plan.parent / "00-secret" / "secret-openstack-secrets.yaml")
    # kubectl failing on the Secret and echoing the object it was given
    kubectl.answer([{"match": ["apply", secret_file], "rc": 1, "out": "error: invalid",
                     "echo_file": True}])
    report = run(plan, kubectl, state)
    raw = (kubectl.dir / "calls.jsonl").read_text()
    assert SECRET not in raw and SECRET_B64 not in raw
    message = report["failed"]["message"]
    assert "Secret/openstack-secrets" in message and sk.REDACTED in message
    encoded = base64.b64encode(SECRET_B64.encode()).decode()
    for value in (SECRET, SECRET_B64, encoded):
        assert value not in json.dumps(report)


@pytest.mark.parametrize("change, error", [
    (lambda s: s[0].pop("wait"), "step 0 (namespace/openstack): missing wait"),
    (lambda s: s[3].update(wait="ready"), "wait is 'ready', expected one of"),
    (lambda s: s[2].update(wait="complete"), "wait: complete is for Jobs, not Service"),
    (lambda s: s.append(dict(s[1])), "step name 'secret/openstack-secrets' appears twice"),
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
    with pytest.raises(sk.PlanError, match="apply kubernetes.control.manifests first"):
        sk.load_plan(str(tmp_path / "nowhere" / "apply-plan.yaml"))
    (plan.parent / "10-mariadb" / "service-mariadb.yaml").unlink()
    with pytest.raises(sk.PlanError, match="service-mariadb.yaml does not exist"):
        sk.digests(sk.load_plan(str(plan)))


# --------------------------------------------------------------------------- the real plan
# The plan and objects kubernetes.control.manifests renders for production's first master
# (the applier: apply is on there), written under tmp and applied with the recorder.

APPLIER, OTHER = "mst01.prod.local", "mst02.prod.local"


@pytest.fixture(scope="module")
def production():
    from stacksalt import secrets
    from stacksalt.validate import collect

    secrets.generate("production")
    return collect.rendered("production")


def state_args(states: dict, state_id: str) -> dict:
    from stacksalt.validate import collect

    assert state_id in states, f"{state_id} is not rendered"
    return next(kwargs for _, kwargs in collect.state_calls(states[state_id]))


def test_apply_renders_on_the_first_master_only(production, lab_secrets):
    from stacksalt.validate import collect

    args = state_args(production[APPLIER], "kubernetes-control-objects-applied")
    assert args["name"] == "/etc/kubernetes/openstack/apply-plan.yaml"
    assert args["kubectl"] == "/usr/local/bin/kubectl"
    assert args["kubeconfig"] == "/etc/kubernetes/admin.conf"
    assert args["namespace"] == "openstack"
    assert args["event_tag"] == "stacksalt/kubernetes/control/applied"
    assert {"saltutil": "kubernetes-control-apply-state-module-synced"} in args["require"]
    for other in (OTHER, "mst03.prod.local"):
        assert "kubernetes-control-objects-applied" not in production[other]
        assert "kubernetes-control-apply-plan-managed" in production[other]
    # the lab renders everything and applies nothing (kubernetes_binaries_install: false)
    assert not any("objects-applied" in s for states in collect.rendered("lab").values()
                   for s in states)


def test_real_plan_applies_in_dependency_order_without_secrets_on_argv(
        production, tmp_path, monkeypatch):
    from stacksalt.validate import collect

    states = production[APPLIER]
    manifest_dir = "/etc/kubernetes/openstack"
    root = tmp_path / "openstack"
    secret_values = set()
    for _, path, data in collect.serialized(states):
        if not path.startswith(manifest_dir + "/"):
            continue
        target = root / path[len(manifest_dir) + 1:]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(data))
        if isinstance(data, dict) and data.get("kind") == "Secret":
            secret_values |= {str(v) for v in (data.get("stringData") or {}).values()}
            secret_values |= {str(v) for v in (data.get("data") or {}).values()}
    assert secret_values, "the rendered plan has no Secret with values"
    kubectl = Kubectl(tmp_path, monkeypatch)
    report = run(root / "apply-plan.yaml", kubectl, tmp_path / "state" / "applied.json")
    assert report["failed"] is None
    steps = sk.load_plan(str(root / "apply-plan.yaml"))
    assert report["changed"] == [s["name"] for s in steps]

    calls = verbs(kubectl.calls())
    applied = [c.split()[1] for c in calls if c.startswith("apply ")]
    by_file = {os.path.basename(s["file"]): s for s in steps}
    order = [by_file[f] for f in applied]
    assert [s["kind"] for s in order[:2]] == ["Namespace", "Secret"]

    def position(pred) -> list[int]:
        return [i for i, s in enumerate(order) if pred(s)]

    def prefix(s) -> int:
        return int(s["file"].split("/")[-2].split("-")[0]) if s["role"] else 0

    workload = ("Deployment", "DaemonSet", "Job")
    # infrastructure (10), then keystone (20), then the rest: every workload of a lower
    # order is applied before any workload of a higher one (contract Jobs aside)
    runs = [s for s in order if s["kind"] in workload and "-contract-" not in s["object"]]
    assert [prefix(s) for s in runs] == sorted(prefix(s) for s in runs)
    assert {s["role"] for s in runs if prefix(s) == 10} == {"mariadb", "memcached", "rabbitmq"}
    assert {s["role"] for s in runs if prefix(s) == 20} == {"keystone"}
    # within a role: its Jobs (bootstrap, expand, migrate) before its Deployment/DaemonSet
    for role in {s["role"] for s in runs}:
        jobs = position(lambda s, r=role: s["role"] == r and s["kind"] == "Job"
                        and "-contract-" not in s["object"])
        work = position(lambda s, r=role: s["role"] == r and s["kind"] != "Job"
                        and s["kind"] in workload)
        assert work, f"role {role} has no Deployment/DaemonSet"
        assert all(j < w for j in jobs for w in work), f"{role}: a Job after the workload"
    # a contract Job after every workload of its service
    contracts = position(lambda s: s["kind"] == "Job" and "-contract-" in s["object"])
    assert contracts, "no contract Job in the plan"
    for c in contracts:
        service = order[c]["role"].split("-")[0]
        last = max(position(lambda s, v=service: s["role"].split("-")[0] == v
                            and s["kind"] in ("Deployment", "DaemonSet")))
        assert c > last, f"{order[c]['name']} before the last workload of {service}"
    # each apply of a waited step is followed at once by its wait
    for i, c in enumerate(calls):
        if c.startswith("apply "):
            step = by_file[c.split()[1]]
            if step["wait"] != "none":
                assert calls[i + 1].split()[0] in ("rollout", "wait"), f"{c}: no wait after"
                assert calls[i + 1].split()[1].endswith("/" + step["object"])
    raw = (kubectl.dir / "calls.jsonl").read_text()
    leaked = [v for v in secret_values if len(v) >= 4 and v in raw]
    assert not leaked, "a Secret value is on a kubectl command line"


def _bootstrap_unless_keystone_exists(plan: Path) -> None:
    data = yaml.safe_load(plan.read_text())
    for step in data["steps"]:
        if step["name"] == "job/keystone-bootstrap-flamingo":
            step["unless_exists"] = "deployment/keystone"
    plan.write_text(yaml.safe_dump(data, sort_keys=False))


def test_bootstrap_job_is_skipped_once_the_workload_exists(env):
    """An upgrade must not run a release's bootstrap Job (a full db_sync that contracts
    the schema under running pods): the plan marks it unless_exists."""
    plan, kubectl, state = env
    _bootstrap_unless_keystone_exists(plan)
    kubectl.answer([{"match": ["get", "deployment/keystone"], "out": "deployment.apps/keystone"}])
    report = run(plan, kubectl, state)
    assert report["failed"] is None
    gets = [c for c in kubectl.calls() if "get" in c]
    assert gets and gets[0][2:] == ["get", "deployment/keystone", "--ignore-not-found",
                                    "-o", "name"]
    assert not any("keystone-bootstrap" in arg for c in kubectl.calls() if "get" not in c
                   for arg in c)
    assert "job/keystone-bootstrap-flamingo" not in report["changed"]
    assert report["skipped_existing"] == ["job/keystone-bootstrap-flamingo"]
    assert "apply deployment-keystone.yaml" in verbs(kubectl.calls())
    assert "workload exists" in sk.summary(report)
    # recorded: a second run neither checks nor applies anything
    kubectl.reset()
    assert run(plan, kubectl, state)["changed"] == [] and kubectl.calls() == []


def test_bootstrap_job_runs_on_a_first_install(env):
    plan, kubectl, state = env
    _bootstrap_unless_keystone_exists(plan)
    report = run(plan, kubectl, state)  # the recorder's `get` prints nothing: not there
    assert "job/keystone-bootstrap-flamingo" in report["changed"]
    v = verbs(kubectl.calls())
    assert v.index("apply job-keystone-bootstrap-flamingo.yaml") < v.index(
        "apply deployment-keystone.yaml")


def test_failing_existence_check_stops_the_run(env):
    plan, kubectl, state = env
    _bootstrap_unless_keystone_exists(plan)
    kubectl.answer([{"match": ["get", "deployment/keystone"], "rc": 1,
                     "out": "error: the server doesn't have a resource type"}])
    report = run(plan, kubectl, state)
    assert report["failed"]["name"] == "job/keystone-bootstrap-flamingo"
    assert report["failed"]["phase"] == "check"
    assert "deployment/keystone exists failed" in report["failed"]["message"]
    assert "deployment/keystone" in report["not_applied"]
