"""A certificate renewal reaches the static pods: every control-plane pod and kube-proxy
carries ``stacksalt.io/config-hash``, the fingerprint of the host files it reads, made by
the state ``stacksalt_static_pod.manifest`` when it runs (after the states that write
those files), so a renewal rewrites the manifest on the same run and the kubelet restarts
the pod; unchanged files change nothing.

The manifests are the ones the lab's masters render; the state runs here on a stand-in
host (the pods' host paths moved under a temporary directory)."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
import yaml

from stacksalt import saltmodules, secrets
from stacksalt.validate import collect

pytestmark = pytest.mark.fast

STATE = "stacksalt_static_pod.manifest"
HASH = "stacksalt.io/config-hash"
PODS = {
    "kube-apiserver": "kubernetes-master-kube-apiserver-manifest-managed",
    "kube-controller-manager": "kubernetes-master-kube-controller-manager-manifest-managed",
    "kube-scheduler": "kubernetes-master-kube-scheduler-manifest-managed",
    "kube-proxy": "kubernetes-pool-kube-proxy-manifest-managed",
}
PKI = "/etc/kubernetes/pki"
# what each pod reads from the host: its certificates, keys, kubeconfig and configuration
READS = {
    "kube-apiserver": {f"{PKI}/{f}" for f in (
        "ca.crt", "apiserver.crt", "apiserver.key", "apiserver-etcd-client.crt",
        "apiserver-etcd-client.key", "apiserver-kubelet-client.crt",
        "apiserver-kubelet-client.key", "front-proxy-ca.crt", "front-proxy-client.crt",
        "front-proxy-client.key", "etcd/ca.crt", "sa.pub", "sa.key",
        "secrets-encryption.yaml")} | {"/etc/kubernetes/audit/policy.yaml"},
    "kube-controller-manager": {f"{PKI}/ca.crt", f"{PKI}/front-proxy-ca.crt", f"{PKI}/sa.key",
                                "/etc/kubernetes/controller-manager.conf"},
    "kube-scheduler": {"/etc/kubernetes/scheduler.conf"},
    "kube-proxy": {"/etc/kubernetes/kube-proxy.conf", "/var/lib/kube-proxy/config.conf"},
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict]:
    secrets.generate("lab")
    return collect.rendered("lab")


@pytest.fixture(scope="module")
def master(rendered) -> dict:
    return next(s for n, s in sorted(rendered.items()) if n.startswith("mst01"))


@pytest.fixture()
def mod():
    module = saltmodules.load("_states/stacksalt_static_pod.py")
    module.__opts__ = {"test": False}
    yield module
    module.__opts__ = {"test": False}


def call(states: dict, sid: str) -> tuple[str, dict]:
    assert sid in states, f"state {sid} is not rendered"
    (fn, kwargs), = list(collect.state_calls(states[sid]))
    return fn, kwargs


def relocated(pod: dict, root: str) -> dict:
    """The pod with its host paths under ``root`` (the stand-in host)."""
    text = json.dumps(pod)
    for top in ("/etc/kubernetes", "/var/lib/kube-proxy", "/var/lib/kubelet"):
        text = text.replace(f'"{top}', f'"{root}{top}').replace(f"={top}", f"={root}{top}")
    return json.loads(text)


def host(tmp_path, files) -> None:
    for f in files:
        p = tmp_path / f.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"content of {f}\n")


def on_disk_hash(path) -> str:
    return yaml.safe_load(path.read_text())["metadata"]["annotations"][HASH]


def test_static_pods_are_written_by_the_hashing_state(master, rendered):
    for name, sid in PODS.items():
        fn, kw = call(master, sid)
        assert fn == STATE, f"{sid} is written by {fn}, not {STATE} (no fingerprint)"
        assert kw["name"] == f"/etc/kubernetes/manifests/{name}.yaml"
        assert kw["mode"] == "0600"
        # the hash is made when the state runs, never while Salt renders (it would lag a run)
        assert HASH not in (kw["dataset"]["metadata"].get("annotations") or {}), sid
    for node, states in rendered.items():
        if PODS["kube-proxy"] in states:
            assert call(states, PODS["kube-proxy"])[0] == STATE, node


def test_the_fingerprint_covers_every_file_the_pod_reads(master, mod):
    for name, sid in PODS.items():
        pod = call(master, sid)[1]["dataset"]
        assert set(mod.host_files(pod)) == READS[name], name


def test_the_manifest_runs_after_the_states_that_write_those_files(master, mod):
    writers: dict[str, str] = {}
    for sid, state in master.items():
        if not isinstance(state, dict):
            continue
        for fn, kw in collect.state_calls(state):
            if fn.startswith(("file.", "x509.")) and isinstance(kw.get("name"), str):
                writers[kw["name"]] = sid
    for name, sid in PODS.items():
        kw = call(master, sid)[1]
        required = {next(iter(r.values())) for r in kw["require"]}
        for path in mod.host_files(kw["dataset"]):
            assert path in writers, f"{name}: no state writes {path}"
            assert writers[path] in required, f"{sid} does not require {writers[path]} ({path})"


@pytest.mark.parametrize("name", sorted(PODS))
def test_renewal_changes_the_annotation_and_a_second_run_changes_nothing(
        name, master, mod, tmp_path):
    pod = relocated(call(master, PODS[name])[1]["dataset"], str(tmp_path))
    reads = sorted(mod.host_files(pod))
    host(tmp_path, [r[len(str(tmp_path)):] for r in reads])
    (tmp_path / "manifests").mkdir()
    target = tmp_path / "manifests" / f"{name}.yaml"

    first = mod.manifest(str(target), pod)
    assert first["result"] is True and first["changes"], first
    h1 = on_disk_hash(target)
    assert first["changes"][HASH] == h1
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    before = target.read_bytes()

    again = mod.manifest(str(target), pod)
    assert again["result"] is True and again["changes"] == {}, again
    assert target.read_bytes() == before

    # negative control: a file the pod does not read leaves the manifest alone
    other = tmp_path / "var/lib/kubelet/pki/kubelet.crt"
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_text("a renewed kubelet certificate\n")
    assert mod.manifest(str(target), pod)["changes"] == {}
    assert target.read_bytes() == before

    # every file it reads: a renewal (new content) changes the annotation, on this run
    seen = {h1}
    for path in reads:
        with open(path, "a", encoding="utf-8") as f:
            f.write("renewed\n")
        ret = mod.manifest(str(target), pod)
        assert ret["result"] is True and ret["changes"], (path, ret)
        h = on_disk_hash(target)
        assert h not in seen, path
        seen.add(h)
        assert mod.manifest(str(target), pod)["changes"] == {}
    # the pod itself is written as rendered, only the annotation added
    written = yaml.safe_load(target.read_text())
    del written["metadata"]["annotations"][HASH]
    if not written["metadata"]["annotations"]:
        del written["metadata"]["annotations"]
    assert written == pod


def test_salts_ordered_mappings_are_written_as_plain_yaml(master, mod, tmp_path):
    """Salt's SLS loader gives the dataset as (nested) OrderedDicts."""
    pod = relocated(call(master, PODS["kube-scheduler"])[1]["dataset"], str(tmp_path))

    def ordered(v):
        if isinstance(v, dict):
            return OrderedDict((k, ordered(x)) for k, x in v.items())
        return [ordered(x) for x in v] if isinstance(v, list) else v

    target = tmp_path / "kube-scheduler.yaml"
    ret = mod.manifest(str(target), ordered(pod))
    assert ret["result"] is True, ret
    assert mod.manifest(str(target), pod)["changes"] == {}
    assert "!!python" not in target.read_text()


def test_test_mode_writes_nothing(master, mod, tmp_path):
    pod = relocated(call(master, PODS["kube-scheduler"])[1]["dataset"], str(tmp_path))
    host(tmp_path, ["/etc/kubernetes/scheduler.conf"])
    target = tmp_path / "kube-scheduler.yaml"
    mod.__opts__ = {"test": True}
    ret = mod.manifest(str(target), pod)
    assert ret["result"] is None and ret["changes"] and not target.exists()


def test_a_missing_file_counts_as_absent_and_its_arrival_changes_the_hash(mod, tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    (tmp_path / "a").write_text("x")
    h = mod.fingerprint([a, b])
    assert h == mod.fingerprint([b, a, a])
    (tmp_path / "b").write_text("")
    assert mod.fingerprint([a, b]) != h


def test_kube_proxy_has_a_liveness_probe_on_its_health_port(rendered):
    for node, states in rendered.items():
        if PODS["kube-proxy"] not in states:
            continue
        pod = call(states, PODS["kube-proxy"])[1]["dataset"]
        (c,) = pod["spec"]["containers"]
        probe = c.get("livenessProbe")
        assert probe, f"{node}: kube-proxy has no livenessProbe"
        assert probe["httpGet"] == {"host": "127.0.0.1", "path": "/livez", "port": 10256,
                                    "scheme": "HTTP"}, node
        config = call(states, "kubernetes-pool-kube-proxy-config-file-managed")[1]["dataset"]
        assert config["healthzBindAddress"].rsplit(":", 1)[1] == "10256", node
