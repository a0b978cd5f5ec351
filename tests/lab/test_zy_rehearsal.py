"""The production rehearsal: the lab's real minions converge with production's switches on
(`kubernetes_binaries_install`, `upstream_archives_install`), so every state that the lab
model leaves out runs: the binaries' download and pin check, the upstream archives of
containerd, runc, the CNI plugins and etcd with their own systemd units, the kubelet
service, calicoctl, and the apply of the cluster objects with its waits.

What cannot be had here is stood in for, served by a file server on cfg01 under the
upstream file names and pinned by sha256 in a test-only class:

- the archives are rebuilt from Debian's real binaries in upstream's layout
  (tests/lab/rehearsal_files.py), so containerd and the three-member etcd cluster that
  run afterwards are real;
- kubelet, kubectl and calicoctl are the recording stand-ins. The kubelet's checks what the
  real one checks at start (its configuration, its kubeconfig, swap against
  failSwapOn). kubectl and calicoctl run strict: every call is refused unless etcd answers
  over TLS with quorum, the apiserver's static pod manifest exists and the kubelet unit
  is active, i.e. what a real kubectl or calicoctl needs at that moment on a master.

The test-only class (written at test time: its checksums are those of this run's files)
is the last class of every node in a copy of the inventory on cfg01; the master is
pointed at the copy the way an operator moves it (salt.master with the new
inventory_base_uri), and back afterwards; the kubelet and the stand-ins are removed again
(the archives' containerd and etcd stay: the lab model's tests hold for either)."""

from __future__ import annotations

import json
import time
from functools import cached_property

import pytest
import yaml
from rich.console import Console

from stacksalt.deployment import Deployment
from stacksalt.lab import lab as lab_mod
from stacksalt.lab import summary
from stacksalt.validate import kubernetes as schemas
from stacksalt.validate.collect import redacted

from . import rehearsal_files

pytestmark = pytest.mark.lab

ROOT = "/srv/rehearsal"
INVENTORY = f"{ROOT}/reclass"
FILES = f"{ROOT}/files"
PORT = 8111
SERVER_UNIT = "stacksalt-rehearsal-files"
CLASS = "rehearsal.production_switches"
APPLIER = "mst01.lab.local"
MASTERS = ["mst01.lab.local", "mst02.lab.local", "mst03.lab.local"]
REC_DIR = "/var/lib/kubectl-recorder"
STATE_FILE = "/var/lib/stacksalt/kubernetes/applied.json"
OBJECTS_DIR = "/etc/kubernetes/objects"
KUBELET_LOG = "/var/lib/kubelet-recorder/kubelet.jsonl"
PKI = "/etc/kubernetes/pki"
INTERPRETER = rehearsal_files.NODE_INTERPRETER


def sh(container, cmd: str) -> str:
    res = container.exec_run(["sh", "-c", cmd])
    out = res.output.decode(errors="replace")
    assert res.exit_code == 0, f"{container.name}: {cmd}: exit {res.exit_code}: {out[-2000:]}"
    return out


def put(container, files: dict[str, bytes]) -> None:
    """Write files (absolute paths) into a container, their folders created."""
    for path, data in files.items():
        lab_mod._put_file(container, path, data)


def point_master_at(lab, inventory: str) -> None:
    """The operator's move: salt.master with the inventory's new place; the formula
    restarts the master after the job; then every minion answers again."""
    pillar = json.dumps({"salt": {"master": {"reclass": {"inventory_base_uri": inventory}}}})
    rc, out = lab.salt(lab.plan.master.minion_id, "state.apply", "salt.master",
                       f"pillar={pillar}", timeout=300)
    states = out.get(lab.plan.master.minion_id) if isinstance(out, dict) else None
    assert isinstance(states, dict), f"salt.master did not return: {out}"
    failed = {k: v.get("comment") for k, v in states.items() if v.get("result") is False}
    assert not failed, failed
    time.sleep(5)
    lab_mod.wait_salt_restarts(lab.client, lab.plan)
    expected = {n.minion_id for n in lab.plan.nodes}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        _, pong = lab.salt("*", "test.ping", timeout=10)
        if isinstance(pong, dict) and {m for m, v in pong.items() if v is True} >= expected:
            break
        time.sleep(3)
    else:
        pytest.fail(f"minions did not answer after the master moved to {inventory}")
    rc, out = lab.salt("*", "saltutil.refresh_pillar", "wait=True", timeout=120)
    assert rc == 0, out


def switches_class(lab, versions: dict[str, str], served: dict[str, tuple[bytes, str]],
                   arch: str) -> dict:
    url = f"http://{lab.plan.master.address}:{PORT}"
    pin = {path: sha for path, (_, sha) in served.items()}
    v = versions
    return {"parameters": {
        "_param": {
            "kubernetes_binaries_install": True,
            "upstream_archives_install": True,
            # swap off as in production (the lab keeps it: its containers share the host's)
            "kubernetes_swap_disabled": True,
            "kubernetes_checksums": {v["kubernetes"]: {arch: {
                name: pin[f"release/v{v['kubernetes']}/bin/linux/{arch}/{name}"]
                for name in ("kubelet", "kubectl")}}},
            "containerd_archive_url": f"{url}/containerd-{{version}}-linux-{{arch}}.tar.gz",
            "containerd_checksums": {v["containerd"]: {
                arch: pin[f"containerd-{v['containerd']}-linux-{arch}.tar.gz"]}},
            "runc_url": f"{url}/runc.{{arch}}",
            "runc_checksums": {v["runc"]: {arch: pin[f"runc.{arch}"]}},
            "cni_plugins_archive_url":
                f"{url}/cni-plugins-linux-{{arch}}-v{{version}}.tgz",
            "cni_plugins_checksums": {v["cni_plugins"]: {
                arch: pin[f"cni-plugins-linux-{arch}-v{v['cni_plugins']}.tgz"]}},
            "etcd_archive_url": f"{url}/etcd-v{{version}}-linux-{{arch}}.tar.gz",
            "etcd_checksums": {v["etcd"]: {
                arch: pin[f"etcd-v{v['etcd']}-linux-{arch}.tar.gz"]}},
        },
        "kubernetes": {"common": {"binaries": {"base_url": f"{url}/release"}}},
        "calico": {"node": {"calicoctl": {
            "base_url": f"{url}/calico",
            "checksums": {v["calico"]: {
                arch: pin[f"calico/v{v['calico']}/calicoctl-linux-{arch}"]}},
        }}},
        # Debian's etcd 3.4, from which the archive is rebuilt, has no etcdutl
        "etcd": {"server": {"archive": {"binaries": ["etcd", "etcdctl"]}}},
        "salt": {"master": {"reclass": {"inventory_base_uri": INVENTORY}}},
    }}


class Rehearsal:
    def __init__(self, lab, first: dict[str, summary.NodeResult]):
        self.lab, self.first = lab, first

    def _jsonl(self, minion: str, path: str) -> list[dict]:
        res = self.lab.container(minion).exec_run(["cat", path])
        text = res.output.decode(errors="replace") if res.exit_code == 0 else ""
        return [json.loads(line) for line in text.splitlines()]

    def calls(self) -> list[dict]:
        return self._jsonl(APPLIER, f"{REC_DIR}/calls.jsonl")

    def precondition_failures(self) -> list[dict]:
        return self._jsonl(APPLIER, f"{REC_DIR}/precondition_failures.jsonl")

    def kubelet_starts(self, minion: str) -> list[dict]:
        return self._jsonl(minion, KUBELET_LOG)

    @cached_property
    def applied(self) -> dict[str, list[dict]]:
        """{file: its documents} of every recorded `apply -f` of the first converge."""
        out = {}
        for call in self.calls():
            argv = call["argv"]
            if "apply" in argv and "-f" in argv:
                path = argv[argv.index("-f") + 1]
                text = sh(self.lab.container(APPLIER), f"cat {path}")
                out[path] = [d for d in yaml.safe_load_all(text) if d]
        return out


def minions(lab) -> list[str]:
    return [n.minion_id for n in lab.plan.nodes]


def kubelet_nodes(lab) -> list[str]:
    """Every node but the salt master runs a kubelet."""
    return [m for m in minions(lab) if m != lab.plan.master.minion_id]


def address(lab, minion: str) -> str:
    return next(n.address for n in lab.plan.nodes if n.minion_id == minion)


@pytest.fixture(scope="module")
def rehearsal(lab):
    dep = Deployment.load(lab.plan.deployment)
    params = dep.parameters(APPLIER)["_param"]
    arch = dep.parameters(APPLIER)["kubernetes"]["common"]["arch"]
    versions = {"kubernetes": params["kubernetes_version"], "calico": params["calico_version"],
                "containerd": params["containerd_version"], "runc": params["runc_version"],
                "cni_plugins": params["cni_plugins_version"], "etcd": params["etcd_version"]}
    versions = {k: str(v) for k, v in versions.items()}
    with open("/proc/swaps", encoding="utf-8") as fh:
        if fh.read().splitlines()[1:]:
            pytest.fail("this host has active swap: the rehearsal turns swap off on the lab's "
                        "nodes, which share the host's kernel; run it on a host without swap")
    served = rehearsal_files.build(versions, arch)
    cfg = lab.master
    base = lab.plan.master_base_dir

    # the file server (a transient unit on cfg01) and the copy of the inventory
    sh(cfg, f"systemctl stop {SERVER_UNIT} 2>/dev/null; rm -rf {ROOT} && mkdir -p {FILES}"
            f" && cp -aL {base}/reclass {INVENTORY}")
    put(cfg, {f"{FILES}/{path}": data for path, (data, _) in served.items()})
    sh(cfg, f"systemd-run --unit={SERVER_UNIT} {INTERPRETER} -m http.server {PORT} "
            f"--bind {lab.plan.master.address} --directory {FILES}")
    klass = switches_class(lab, versions, served, arch)
    nodes = {}
    for path in sorted((dep.inventory / "nodes" / dep.name).rglob("*.yml")):
        node = yaml.safe_load(path.read_text())
        node["classes"] = [*node.get("classes", []), CLASS]
        rel = path.relative_to(dep.inventory)
        nodes[f"{INVENTORY}/{rel}"] = yaml.safe_dump(node, sort_keys=False).encode()
    put(cfg, {f"{INVENTORY}/classes/{CLASS.replace('.', '/')}.yml":
              yaml.safe_dump(klass, sort_keys=False).encode(), **nodes})

    # the applying master's kubectl and calicoctl refuse what real ones could not do
    ips = [address(lab, m) for m in MASTERS]
    strict = {
        "etcdctl": "/usr/local/bin/etcdctl",
        "etcd_endpoints": ",".join(f"https://{ip}:2379" for ip in ips),
        "etcd_cacert": f"{PKI}/etcd/ca.crt",
        "etcd_cert": f"{PKI}/apiserver-etcd-client.crt",
        "etcd_key": f"{PKI}/apiserver-etcd-client.key",
        "apiserver_manifest": "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "kubelet_unit": "kubelet", "systemctl": "systemctl",
    }
    mst = lab.container(APPLIER)
    sh(mst, f"rm -rf {REC_DIR} {STATE_FILE} && mkdir -p {REC_DIR}")
    put(mst, {f"{REC_DIR}/strict.json": json.dumps(strict).encode(),
              f"{REC_DIR}/answers.json": json.dumps(
                  {"rules": [], "nodes": [m.split(".")[0] for m in kubelet_nodes(lab)]}).encode()})

    point_master_at(lab, INVENTORY)
    try:
        rc, out = lab.salt(APPLIER, "pillar.get", "kubernetes:common:binaries:install",
                         "unmask=True")
        assert out.get(APPLIER) is True, f"the rehearsal class is not in {APPLIER}'s pillar: {out}"
        first = lab_mod.apply_retrying_salt_race(cfg, "*", minions(lab),
                                                 Console(stderr=True))
        yield Rehearsal(lab, first)
    finally:
        point_master_at(lab, f"{base}/reclass")
        cfg.exec_run(["systemctl", "stop", SERVER_UNIT])
        # what the lab model does not install goes again (the archives' containerd and etcd
        # stay: the lab's tests hold for either)
        for minion in kubelet_nodes(lab):
            lab.container(minion).exec_run(["sh", "-c", (
                "systemctl disable --now kubelet; rm -rf /usr/local/bin/kubelet "
                f"/usr/local/bin/kubectl /usr/local/bin/calicoctl {REC_DIR} "
                f"{KUBELET_LOG.rsplit('/', 1)[0]} {STATE_FILE}")])


def test_first_converge_succeeds_on_every_node(rehearsal):
    failures = {m: r.failures for m, r in rehearsal.first.items() if r.failed}
    assert not failures, json.dumps(failures, indent=1)[:6000]


def main_program(lab, minion: str, unit: str) -> str:
    """The program a unit's main process runs (its argv[0]: /proc/<pid>/exe of another
    user's process is not readable without CAP_SYS_PTRACE)."""
    return sh(lab.container(minion), f"pid=$(systemctl show -p MainPID --value {unit}) && "
                                     "test \"$pid\" != 0 && tr '\\0' '\\n' < /proc/$pid/cmdline"
              ).splitlines()[0]


def test_archives_run_containerd_and_a_three_member_etcd(rehearsal):
    lab = rehearsal.lab
    for minion in kubelet_nodes(lab):
        assert main_program(lab, minion, "containerd") == "/usr/local/bin/containerd"
    for minion in MASTERS:
        assert main_program(lab, minion, "etcd") == "/usr/local/bin/etcd", minion
    health = sh(lab.container(APPLIER),
                f"/usr/local/bin/etcdctl --cacert={PKI}/etcd/ca.crt "
                f"--cert={PKI}/apiserver-etcd-client.crt --key={PKI}/apiserver-etcd-client.key "
                "--endpoints=" + ",".join(f"https://{address(lab, m)}:2379" for m in MASTERS)
                + " endpoint health 2>&1")
    assert health.count("is healthy") == 3, health


def test_every_kubelet_started_with_the_rendered_configuration(rehearsal):
    lab = rehearsal.lab
    for minion in kubelet_nodes(lab):
        c = lab.container(minion)
        assert sh(c, "systemctl is-active kubelet").strip() == "active", minion
        starts = rehearsal.kubelet_starts(minion)
        assert starts, f"{minion}: the kubelet never started"
        last = starts[-1]
        assert last["result"] == "running", (minion, last["result"])
        config_file = next(a.split("=", 1)[1] for a in last["argv"]
                           if a.startswith("--config="))
        on_disk = yaml.safe_load(sh(c, f"cat {config_file}"))
        assert last["config"] == on_disk, minion
        swaps = sh(c, "tail -n +2 /proc/swaps").strip()
        assert on_disk.get("failSwapOn", True) is True and not swaps, (minion, swaps)


def test_kubectl_and_calicoctl_never_ran_before_what_they_need(rehearsal):
    failures = rehearsal.precondition_failures()
    assert not failures, json.dumps(failures, indent=1)[:6000]
    tools = {c["tool"] for c in rehearsal.calls()}
    assert tools == {"kubectl", "calicoctl"}, tools


def test_every_applied_file_is_valid_against_its_schema(rehearsal):
    lab = rehearsal.lab
    version = str(Deployment.load(lab.plan.deployment).parameters(APPLIER)
                  ["kubernetes"]["common"]["version"])
    assert any(f.endswith(".yaml") for f in rehearsal.applied), list(rehearsal.applied)
    problems = []
    for path, docs in rehearsal.applied.items():
        for doc in docs:
            # no Secret value in a message: validated with its data redacted
            problems += [f"{path}: {p}" for p in schemas.validate(redacted(doc), version)]
    assert not problems, "\n".join(problems[:40])


def test_every_workload_selects_nodes_that_exist(rehearsal):
    """A Deployment's or DaemonSet's nodeSelector must match the labels some kubelet
    registers with (--node-labels), or its pods never schedule."""
    lab = rehearsal.lab
    labels: dict[str, dict[str, str]] = {}
    for minion in kubelet_nodes(lab):
        argv = rehearsal.kubelet_starts(minion)[-1]["argv"]
        flag = next((a.split("=", 1)[1] for a in argv if a.startswith("--node-labels=")), "")
        node_labels = dict(kv.split("=", 1) for kv in flag.split(",") if kv)
        node_labels["kubernetes.io/hostname"] = minion.split(".")[0]
        node_labels["kubernetes.io/os"] = "linux"
        labels[minion] = node_labels
    unschedulable = []
    for docs in rehearsal.applied.values():
        for doc in docs:
            if doc.get("kind") not in ("Deployment", "DaemonSet", "StatefulSet"):
                continue
            selector = doc["spec"]["template"]["spec"].get("nodeSelector") or {}
            if not any(all(lab_.get(k) == v for k, v in selector.items())
                       for lab_ in labels.values()):
                unschedulable.append(f"{doc['kind']}/{doc['metadata']['name']}: {selector}")
    assert not unschedulable, unschedulable


def test_a_second_converge_changes_and_applies_nothing(rehearsal):
    lab = rehearsal.lab
    before = len(rehearsal.calls())
    again = lab_mod.apply(lab.master, "*", minions(lab))
    changed = {m: r.changed_ids for m, r in again.items() if r.changed}
    failed = {m: r.failures for m, r in again.items() if r.failed}
    assert not failed, failed
    assert not changed, changed
    assert rehearsal.calls()[before:] == []
