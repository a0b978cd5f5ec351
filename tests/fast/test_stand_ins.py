"""The lab's recording stand-ins check what the real binaries would need: the kubelet
(tests/lab/kubelet_recorder.py) refuses swap with failSwapOn and a bad configuration;
kubectl and calicoctl in strict mode (tests/lab/cluster_recorder.py, strict.json) refuse
and record a call before etcd answers with quorum, without the apiserver's manifest or
a running kubelet, and an applied file that fails its schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stacksalt import paths

pytestmark = pytest.mark.fast

ROOT = paths.repo_root()
SWAP = ("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
        "/swapfile                               file\t\t1048572\t\t0\t\t-2\n")
NO_SWAP = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"


def install(src: Path, dest: Path) -> Path:
    dest.write_text(src.read_text().replace("#!/usr/bin/python3", f"#!{sys.executable}", 1))
    dest.chmod(0o755)
    return dest


@pytest.fixture
def kubelet(tmp_path):
    binary = install(ROOT / "tests/lab/kubelet_recorder.py", tmp_path / "kubelet")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    kubeconfig = tmp_path / "kubelet.conf"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    swaps = tmp_path / "swaps"

    def start(config: dict | None, swap: str = NO_SWAP):
        swaps.write_text(swap)
        cfg = tmp_path / "config.yaml"
        if config is not None:
            cfg.write_text(yaml.safe_dump(config))
        env = dict(os.environ, KUBELET_RECORDER_DIR=str(tmp_path / "log"),
                   KUBELET_RECORDER_SWAPS=str(swaps), KUBELET_RECORDER_ONCE="1")
        return subprocess.run([str(binary), f"--config={cfg}", f"--kubeconfig={kubeconfig}",
                               "--node-ip=10.0.0.11"], env=env, capture_output=True,
                              text=True, timeout=30, check=False)

    start.config = {"apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration", "staticPodPath": str(manifests)}
    start.log = tmp_path / "log" / "kubelet.jsonl"
    return start


def test_kubelet_refuses_active_swap_with_fail_swap_on(kubelet):
    for config in (kubelet.config, dict(kubelet.config, failSwapOn=True)):
        res = kubelet(config, SWAP)
        assert res.returncode == 1
        assert "running with swap on is not supported, please disable swap" in res.stderr
        assert "/swapfile" in res.stderr


def test_kubelet_runs_without_swap_and_records_its_args(kubelet):
    res = kubelet(kubelet.config, NO_SWAP)
    assert res.returncode == 0, res.stderr
    entry = json.loads(kubelet.log.read_text().splitlines()[-1])
    assert entry["result"] == "running" and "--node-ip=10.0.0.11" in entry["argv"]
    assert kubelet(dict(kubelet.config, failSwapOn=False), SWAP).returncode == 0


@pytest.mark.parametrize("config, error", [
    (None, "failed to load kubelet config file"),
    ({"apiVersion": "v1", "kind": "KubeletConfiguration"}, "not a KubeletConfiguration"),
    ({"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
      "staticPodPath": "/nonexistent"}, "staticPodPath"),
])
def test_kubelet_refuses_a_bad_configuration(kubelet, config, error):
    res = kubelet(config)
    assert res.returncode == 1 and error in res.stderr


@pytest.fixture
def strict(tmp_path):
    """kubectl from the recorder in strict mode with a fake etcdctl and systemctl whose
    answers the test sets (exit code files)."""
    rec = tmp_path / "recorder"
    rec.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    kubectl = install(ROOT / "tests/lab/cluster_recorder.py", bindir / "kubectl")
    for name in ("etcdctl", "systemctl"):
        fake = bindir / name
        fake.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/{name}.args\n"
                        f"cat {tmp_path}/{name}.out\nexit $(cat {tmp_path}/{name}.rc)\n")
        fake.chmod(0o755)
    manifest = tmp_path / "kube-apiserver.yaml"
    kubeconfig = tmp_path / "admin.conf"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    (rec / "strict.json").write_text(json.dumps({
        "etcdctl": str(bindir / "etcdctl"), "etcd_endpoints": "https://127.0.0.1:2379",
        "etcd_cacert": "/ca.crt", "etcd_cert": "/c.crt", "etcd_key": "/c.key",
        "apiserver_manifest": str(manifest), "kubelet_unit": "kubelet",
        "systemctl": str(bindir / "systemctl"), "kubernetes_version": "1.33.5",
        "python_path": [str(ROOT / "src")]}))

    def answer(etcd_down: int | None, kubelet_state: str, manifest_exists: bool):
        """etcd_down: how many of 3 members are unhealthy (None: etcdctl prints no JSON,
        as when the endpoint it asked for the member list is down)."""
        members = [{"endpoint": f"https://10.0.0.{i}:2379", "health": i > (etcd_down or 0),
                    "took": "3ms"} for i in range(1, 4)]
        for m in members:
            if not m["health"]:
                m["error"] = "context deadline exceeded"
        out = "Error: context deadline exceeded" if etcd_down is None else json.dumps(members)
        (tmp_path / "etcdctl.rc").write_text("1" if etcd_down is None or etcd_down else "0")
        (tmp_path / "etcdctl.out").write_text(out)
        (tmp_path / "systemctl.rc").write_text("0" if kubelet_state == "active" else "3")
        (tmp_path / "systemctl.out").write_text(kubelet_state)
        if manifest_exists:
            manifest.write_text("kind: Pod\n")
        elif manifest.exists():
            manifest.unlink()

    def call(*args: str):
        return subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", *args],
                              env=dict(os.environ, KUBECTL_RECORDER_DIR=str(rec)),
                              capture_output=True, text=True, timeout=60, check=False)

    def failures(log="precondition_failures.jsonl"):
        log = rec / log
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def configmap():
        path = tmp_path / "cm.yaml"
        path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "x", "namespace": "default"},
                                        "data": {"k": "v"}}))
        return str(path)

    call.answer, call.failures, call.tmp, call.configmap = answer, failures, tmp_path, configmap
    return call


def test_strict_kubectl_refuses_before_etcd_apiserver_and_kubelet(strict):
    strict.answer(2, "inactive", False)
    res = strict("apply", "--server-side", "-f", strict.configmap())
    assert res.returncode == 1 and "cannot work yet" in res.stderr
    (entry,) = strict.failures()
    assert entry["tool"] == "kubectl" and len(entry["failures"]) == 3
    text = " ".join(entry["failures"])
    assert "etcd: not healthy with quorum over TLS" in text
    assert "static pod manifest" in text and "kubelet: unit kubelet is not active" in text
    args = (strict.tmp / "etcdctl.args").read_text()
    assert "endpoint health --cluster -w json" in args and "--cert=/c.crt" in args
    assert "1 of 3 members healthy, 2 needed" in text


@pytest.mark.parametrize("down, refused", [(0, False), (1, False), (2, True), (3, True),
                                           (None, True)])
def test_strict_kubectl_needs_an_etcd_quorum_not_every_member(strict, down, refused):
    """A real kube-apiserver serves while a majority of etcd members commits (a member
    restarting during a rolling etcd update is normal); it cannot without a majority."""
    strict.answer(down, "active", True)
    res = strict("apply", "--server-side", "-f", strict.configmap())
    assert (res.returncode == 1) is refused, res.stderr
    text = " ".join(f for e in strict.failures() for f in e["failures"])
    assert ("etcd: not healthy with quorum over TLS" in text) is refused


def test_a_readiness_probe_may_find_the_apiserver_not_ready(strict):
    """Polling /readyz until `ok` is how the state waits: a probe that finds etcd without
    quorum gets a real apiserver's "not ready" and is not counted as a call made too early;
    the same unmet needs still refuse anything else."""
    strict.answer(2, "active", True)
    res = strict("get", "--raw", "/readyz")
    assert res.returncode == 1 and "readyz check failed" in res.stderr
    assert strict.failures() == []
    (probe,) = strict.failures("readyz_not_ready.jsonl")
    assert "1 of 3 members healthy" in probe["failures"][0]
    strict.answer(1, "active", True)
    res = strict("get", "--raw", "/readyz")
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_strict_kubectl_answers_once_everything_is_up(strict):
    strict.answer(0, "active", True)
    res = strict("get", "--raw", "/readyz")
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
    assert strict.failures() == []


def test_strict_kubectl_refuses_a_file_that_fails_its_schema(strict):
    strict.answer(0, "active", True)
    bad = strict.tmp / "bad.yaml"
    bad.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "x", "namespace": "default"},
                                   "data": {"k": "v"}, "spec": {"unknown": 1}}))
    good = strict.tmp / "good.yaml"
    good.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "x", "namespace": "default"},
                                    "data": {"k": "v"}}))
    assert strict("apply", "--server-side", "-f", str(good)).returncode == 0
    res = strict("apply", "--server-side", "-f", str(bad))
    assert res.returncode == 1
    (entry,) = strict.failures()
    assert entry["failures"][0].startswith(f"{bad}: ")
