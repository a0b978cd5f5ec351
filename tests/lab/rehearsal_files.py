"""What the rehearsal's local file server serves in place of the upstream downloads (tests
only): nothing can be downloaded from dl.k8s.io or GitHub here.

- containerd, runc, the CNI plugins and etcd: upstream's release archives rebuilt, in
  upstream's layout and names, from the real binaries of Debian bookworm's packages
  (containerd 1.6, runc 1.1, containernetworking-plugins 1.1, etcd 3.4: the lab's
  substitute versions), so the install mechanism, the units and the etcd cluster they run
  are real. Debian's etcd 3.4 has no etcdutl: the rehearsal's archive holds etcd and
  etcdctl only (the rehearsal class says so to the formula).
- kubelet, kubectl, calicoctl: the recording stand-ins (tests/lab/kubelet_recorder.py,
  tests/lab/cluster_recorder.py) with the nodes' Salt interpreter as their interpreter.

``build(versions)`` returns {relative path: (bytes, sha256)}; archives are built with
fixed owners and times, so the same packages give the same checksums."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("STACKSALT_REHEARSAL_CACHE",
                            Path.home() / ".cache" / "stacksalt" / "rehearsal"))
NODE_INTERPRETER = "/opt/salt/bin/python3"
# package -> {path in the package: name in the archive}
PACKAGES = {
    "containerd": {"usr/bin/containerd": "containerd",
                   "usr/bin/containerd-shim-runc-v2": "containerd-shim-runc-v2",
                   "usr/bin/ctr": "ctr"},
    "runc": {"usr/sbin/runc": "runc"},
    "containernetworking-plugins": {f"usr/lib/cni/{p}": p for p in (
        "bandwidth", "bridge", "host-local", "loopback", "portmap", "tuning")},
    "etcd-server": {"usr/bin/etcd": "etcd"},
    "etcd-client": {"usr/bin/etcdctl": "etcdctl"},
}


def _debs() -> dict[str, Path]:
    """Each package's extracted tree (apt-get download + dpkg-deb -x, cached)."""
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in PACKAGES if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        cmd = ["apt-get", "download", "-q", *missing]
        if subprocess.run(cmd, cwd=debs, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
            subprocess.run(cmd, cwd=debs, check=True, capture_output=True)
    trees = {}
    for pkg in PACKAGES:
        deb = sorted(debs.glob(f"{pkg}_*.deb"))[-1]
        tree = CACHE / "trees" / deb.stem
        if not tree.exists():
            tmp = tree.parent / f"{tree.name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
            tmp.rename(tree)
        trees[pkg] = tree
    return trees


def _targz(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def _stand_in(name: str) -> bytes:
    source = (HERE / name).read_bytes()
    return source.replace(b"#!/usr/bin/python3", f"#!{NODE_INTERPRETER}".encode(), 1)


def build(versions: dict[str, str], arch: str = "amd64") -> dict[str, tuple[bytes, str]]:
    """{path under the server's root: (content, sha256)} for these versions
    (kubernetes, calico, containerd, runc, cni_plugins, etcd)."""
    trees = _debs()

    def binary(pkg: str, path: str) -> bytes:
        return (trees[pkg] / path).read_bytes()

    def pkg_members(pkg: str, prefix: str) -> dict[str, bytes]:
        return {prefix + name: binary(pkg, path) for path, name in PACKAGES[pkg].items()}

    v = versions
    etcd_top = f"etcd-v{v['etcd']}-linux-{arch}/"
    files = {
        f"containerd-{v['containerd']}-linux-{arch}.tar.gz":
            _targz(pkg_members("containerd", "bin/")),
        f"runc.{arch}": binary("runc", "usr/sbin/runc"),
        f"cni-plugins-linux-{arch}-v{v['cni_plugins']}.tgz":
            _targz(pkg_members("containernetworking-plugins", "./")),
        f"etcd-v{v['etcd']}-linux-{arch}.tar.gz":
            _targz({**pkg_members("etcd-server", etcd_top),
                    **pkg_members("etcd-client", etcd_top)}),
        f"release/v{v['kubernetes']}/bin/linux/{arch}/kubelet": _stand_in("kubelet_recorder.py"),
        f"release/v{v['kubernetes']}/bin/linux/{arch}/kubectl": _stand_in("cluster_recorder.py"),
        f"calico/v{v['calico']}/calicoctl-linux-{arch}": _stand_in("cluster_recorder.py"),
    }
    return {path: (data, hashlib.sha256(data).hexdigest()) for path, data in files.items()}


def debian_versions() -> dict[str, str]:
    """package -> the Debian version the archives were rebuilt from (for reports)."""
    return {pkg: sorted((CACHE / "debs").glob(f"{pkg}_*.deb"))[-1].name.split("_")[1]
            for pkg in PACKAGES}
