"""containerd (with runc and the CNI plugins) and etcd: the upstream release archives in
production, pinned by sha256 per version and architecture; Debian's packages in the lab.

Rendered for every node of both deployments with its real pillar (``state.show_sls``),
plus the install state ``stacksalt_archive.installed`` run on archives built here.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import tarfile
from pathlib import Path

import jinja2
import pytest
import yaml

from stacksalt import paths, saltrender, secrets
from stacksalt.deployment import Deployment
from stacksalt.validate import collect

pytestmark = pytest.mark.fast

RUNTIME_ARCHIVE_STATES = (
    "kubernetes-common-containerd-archive-managed",
    "kubernetes-common-containerd-binaries-installed",
    "kubernetes-common-runc-binary-managed",
    "kubernetes-common-cni-plugins-archive-managed",
    "kubernetes-common-cni-plugins-installed",
    "kubernetes-common-containerd-unit-file-managed",
)
ETCD_ARCHIVE_STATES = (
    "etcd-server-archive-managed", "etcd-server-binaries-installed",
    "etcd-server-unit-file-managed", "etcd-server-user-present",
    "etcd-server-data-directory-managed",
)


def call(states: dict, state_id: str) -> tuple[str, dict]:
    assert state_id in states, f"state {state_id} is not rendered"
    return next(collect.state_calls(states[state_id]))


def defaults(formula: str) -> dict:
    return yaml.safe_load((paths.formulas_dir() / formula / "defaults.yaml").read_text())


def url(template: str, version: str, arch: str) -> str:
    return template.replace("{version}", version).replace("{arch}", arch)


def roles(dep: Deployment, node: str) -> tuple[bool, bool]:
    """(a Kubernetes node, an etcd member)."""
    p = dep.parameters(node)
    return (bool(p.get("kubernetes", {}).get("common", {}).get("enabled")),
            bool(p.get("etcd", {}).get("server", {}).get("enabled")))


@pytest.fixture(scope="module")
def production():
    secrets.generate("production")
    return Deployment.load("production"), collect.rendered("production")


@pytest.fixture(scope="module")
def lab(lab_secrets):
    return Deployment.load("lab"), collect.rendered("lab")


def test_production_installs_the_pinned_archives(production):
    dep, rendered = production
    k8s_defaults = defaults("kubernetes")["common"]["containerd"]["archive"]
    etcd_binaries = defaults("etcd")["server"]["archive"]["binaries"]
    seen = {"kubernetes": 0, "etcd": 0}
    for node in dep.node_names:
        states, p = rendered[node], dep.parameters(node)["_param"]
        is_k8s, is_etcd = roles(dep, node)
        if not is_k8s:
            assert not set(RUNTIME_ARCHIVE_STATES) & set(states), node
            continue
        assert p["upstream_archives_install"] is True
        seen["kubernetes"] += 1
        arch = dep.parameters(node)["kubernetes"]["common"]["arch"]
        assert "kubernetes-common-containerd-package-installed" not in states, node
        for part, template, state_id in (
                ("containerd", "containerd_archive_url",
                 "kubernetes-common-containerd-archive-managed"),
                ("runc", "runc_url", "kubernetes-common-runc-binary-managed"),
                ("cni_plugins", "cni_plugins_archive_url",
                 "kubernetes-common-cni-plugins-archive-managed")):
            version = p[f"{part}_version"]
            fn, a = call(states, state_id)
            assert fn == "file.managed"
            assert a["source"] == url(p[template], version, arch), f"{node}: {state_id}"
            assert a["source_hash"] == f"sha256={p[f'{part}_checksums'][version][arch]}"
        assert call(states, "kubernetes-common-runc-binary-managed")[1]["name"] == \
            "/usr/local/sbin/runc"
        assert call(states, "kubernetes-common-runc-binary-managed")[1]["mode"] == "0755"
        fn, a = call(states, "kubernetes-common-containerd-binaries-installed")
        assert fn == "stacksalt_archive.installed" and a["mode"] == "0755"
        assert a["members"] == {f"bin/{n}": f"/usr/local/bin/{n}"
                                for n in k8s_defaults["containerd"]["binaries"]}
        assert "containerd-shim-runc-v2" in k8s_defaults["containerd"]["binaries"]
        download = call(states, "kubernetes-common-containerd-archive-managed")[1]
        assert a["archive"] == download["name"]
        fn, a = call(states, "kubernetes-common-cni-plugins-installed")
        assert a["members"] == {f"./{n}": f"/opt/cni/bin/{n}"
                                for n in k8s_defaults["cni_plugins"]["plugins"]}
        unit = call(states, "kubernetes-common-containerd-unit-file-managed")[1]
        assert unit["name"] == "/etc/systemd/system/containerd.service"
        assert unit["context"]["containerd"] == "/usr/local/bin/containerd"
        # containerd restarts when any of its programs change
        watch = call(states, "kubernetes-common-containerd-service-running")[1]["watch"]
        assert {"sls": "kubernetes.common.runtime"} in watch
        if not is_etcd:
            continue
        seen["etcd"] += 1
        version = p["etcd_version"]
        assert "etcd-server-packages-installed" not in states, node
        fn, a = call(states, "etcd-server-archive-managed")
        assert a["source"] == url(p["etcd_archive_url"], version, arch)
        assert a["source"].endswith(f"/etcd-v{version}-linux-{arch}.tar.gz")
        assert a["source_hash"] == f"sha256={p['etcd_checksums'][version][arch]}"
        fn, a = call(states, "etcd-server-binaries-installed")
        top = f"etcd-v{version}-linux-{arch}"
        assert a["members"] == {f"{top}/{n}": f"/usr/local/bin/{n}" for n in etcd_binaries}
        assert set(etcd_binaries) == {"etcd", "etcdctl", "etcdutl"}
        watch = call(states, "etcd-server-service-running")[1]["watch"]
        assert {"sls": "etcd.server.package"} in watch
    assert seen["kubernetes"] >= 12 and seen["etcd"] == 3, seen


def test_production_versions_are_supported_by_kubernetes_1_33(production):
    """containerd 1.7/2.0, runc 1.2, CNI plugins 1.6, etcd 3.5 (kubeadm 1.33's)."""
    dep, _ = production
    p = dep.parameters("mst01.prod.local")["_param"]
    assert p["kubernetes_version"].startswith("1.33.")
    assert p["containerd_version"].startswith(("1.7.", "2.0."))
    assert p["runc_version"].startswith("1.2.")
    assert p["cni_plugins_version"].startswith("1.6.")
    assert p["etcd_version"].startswith("3.5.")
    for part in ("containerd", "runc", "cni_plugins", "etcd"):
        for arch in ("amd64", "arm64"):
            sha = p[f"{part}_checksums"][p[f"{part}_version"]][arch]
            assert len(sha) == 64 and int(sha, 16) >= 0, (part, arch)


def test_lab_installs_debian_packages(lab):
    dep, rendered = lab
    for node in dep.node_names:
        states = rendered[node]
        is_k8s, is_etcd = roles(dep, node)
        assert dep.parameters(node)["_param"].get("upstream_archives_install") in (False, None)
        assert not set(RUNTIME_ARCHIVE_STATES + ETCD_ARCHIVE_STATES) & set(states), node
        if is_k8s:
            fn, a = call(states, "kubernetes-common-containerd-package-installed")
            assert (fn, a["pkgs"]) == ("pkg.installed", ["containerd"])
        if is_etcd:
            fn, a = call(states, "etcd-server-packages-installed")
            assert (fn, a["pkgs"]) == ("pkg.installed", ["etcd-server", "etcd-client"])


def test_config_paths_and_runtime_endpoint_are_the_same_for_both(lab, production):
    found = set()
    for dep, rendered in (lab, production):
        for node in dep.node_names:
            states = rendered[node]
            is_k8s, is_etcd = roles(dep, node)
            if is_k8s:
                cfg = call(states, "kubernetes-common-containerd-config-file-managed")[1]
                kubelet = call(states, "kubernetes-pool-kubelet-config-file-managed")[1]
                found.add(("containerd", cfg["name"],
                           kubelet["dataset"]["containerRuntimeEndpoint"]))
            if is_etcd:
                found.add(("etcd", call(states, "etcd-server-config-file-managed")[1]["name"]))
    assert found == {("containerd", "/etc/containerd/config.toml",
                      "unix:///run/containerd/containerd.sock"),
                     ("etcd", "/etc/default/etcd")}


def _render(node: str, sls: str, pillar: dict):
    return saltrender.salt_call(node, "lab", "state.show_sls", sls,
                                f"pillar={json.dumps(pillar)}")


@pytest.mark.parametrize("part", ["containerd", "runc", "cni_plugins"])
def test_runtime_version_without_pin_is_refused(lab_secrets, part):
    pillar = {"kubernetes": {"common": {"containerd": {"archive": {
        "install": True, part: {"version": "9.9.9"}}}}}}
    with pytest.raises(saltrender.RenderError) as err:
        _render("cmp01.lab.local", "kubernetes.common.runtime", pillar)
    assert (f"kubernetes:common:containerd:archive:{part}:checksums has no sha256 for "
            f"9.9.9 amd64") in str(err.value)


def test_etcd_version_without_pin_is_refused(lab_secrets):
    pillar = {"etcd": {"server": {"archive": {"install": True, "version": "3.5.99"}}}}
    with pytest.raises(saltrender.RenderError) as err:
        _render("mst01.lab.local", "etcd.server.package", pillar)
    assert "etcd:server:archive:checksums has no sha256 for 3.5.99 amd64" in str(err.value)


def test_lab_with_the_switch_on_renders_the_archives(lab_secrets):
    """The switch alone turns the archives on (the rehearsal uses it), from the lab's
    own pins."""
    states = _render("mst01.lab.local", "kubernetes.common.runtime,etcd.server.package",
                     {"kubernetes": {"common": {"containerd": {"archive": {"install": True}}}},
                      "etcd": {"server": {"archive": {"install": True}}}})
    assert set(RUNTIME_ARCHIVE_STATES + ETCD_ARCHIVE_STATES) <= set(states)
    assert "kubernetes-common-containerd-package-installed" not in states
    assert "etcd-server-packages-installed" not in states


# -- the systemd units ----------------------------------------------------------------------


def unit(path: str, **context) -> dict[str, str]:
    text = jinja2.Template((paths.formulas_dir() / path).read_text()).render(**context)
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def test_containerd_unit_has_upstreams_settings():
    """As containerd/containerd's containerd.service: notify, its cgroup delegated, only
    the main process killed (containers survive a restart), unlimited tasks."""
    u = unit("kubernetes/files/containerd.service.jinja", containerd="/usr/local/bin/containerd")
    assert u["ExecStart"] == "/usr/local/bin/containerd"
    for key, value in {"Type": "notify", "Delegate": "yes", "KillMode": "process",
                       "Restart": "always", "TasksMax": "infinity", "LimitNPROC": "infinity",
                       "LimitCORE": "infinity", "OOMScoreAdjust": "-999",
                       "ExecStartPre": "-/sbin/modprobe overlay",
                       "WantedBy": "multi-user.target"}.items():
        assert u[key] == value, key


def test_etcd_unit_reads_the_same_config_as_debians():
    u = unit("etcd/files/etcd.service.jinja", etcd="/usr/local/bin/etcd",
             config_file="/etc/default/etcd", user="etcd")
    assert u["ExecStart"] == "/usr/local/bin/etcd"
    assert u["EnvironmentFile"] == "/etc/default/etcd" == defaults("etcd")["server"]["config_file"]
    assert (u["Type"], u["User"]) == ("notify", "etcd")


# -- the install state ----------------------------------------------------------------------


def archive_state():
    spec = importlib.util.spec_from_file_location(
        "stacksalt_archive_state", paths.formulas_dir() / "_states" / "stacksalt_archive.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__opts__ = {"test": False}
    return module


def make_archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return path


def test_install_state_extracts_only_the_members_and_is_idempotent(tmp_path):
    mod = archive_state()
    arc = make_archive(tmp_path / "containerd.tar.gz", {
        "bin/containerd": b"containerd v1", "bin/ctr": b"ctr v1", "bin/containerd-stress": b"x"})
    dest = tmp_path / "bin"
    members = {"bin/containerd": str(dest / "containerd"), "bin/ctr": str(dest / "ctr")}
    ret = mod.installed("containerd 1", str(arc), members)
    assert ret["result"] is True and set(ret["changes"]["installed"]) == set(members.values())
    assert sorted(os.listdir(dest)) == ["containerd", "ctr"]
    assert (dest / "ctr").read_bytes() == b"ctr v1"
    assert os.stat(dest / "ctr").st_mode & 0o7777 == 0o755
    again = mod.installed("containerd 1", str(arc), members)
    assert again["result"] is True and again["changes"] == {}, again
    # a changed mode is repaired, a new version replaces the content
    os.chmod(dest / "ctr", 0o777)
    make_archive(arc, {"bin/containerd": b"containerd v2", "bin/ctr": b"ctr v1"})
    ret = mod.installed("containerd 2", str(arc), members)
    assert ret["changes"]["installed"] == {str(dest / "containerd"): "bin/containerd (content)",
                                           str(dest / "ctr"): "bin/ctr (mode 0777)"}
    assert (dest / "containerd").read_bytes() == b"containerd v2"


def test_install_state_leading_dot_and_test_mode(tmp_path):
    mod = archive_state()
    arc = make_archive(tmp_path / "cni.tgz", {"./bridge": b"b", "./loopback": b"l"})
    members = {"./bridge": str(tmp_path / "cni" / "bridge")}
    mod.__opts__ = {"test": True}
    ret = mod.installed("cni", str(arc), members)
    assert ret["result"] is None and ret["changes"]["would install"]
    assert not (tmp_path / "cni").exists()
    mod.__opts__ = {"test": False}
    assert mod.installed("cni", str(arc), members)["result"] is True
    assert (tmp_path / "cni" / "bridge").read_bytes() == b"b"


def test_install_state_refuses_a_missing_member_and_writes_nothing(tmp_path):
    mod = archive_state()
    arc = make_archive(tmp_path / "etcd.tar.gz", {"etcd-v3.4.23-linux-amd64/etcd": b"e"})
    members = {"etcd-v3.4.23-linux-amd64/etcd": str(tmp_path / "out" / "etcd"),
               "etcd-v3.4.23-linux-amd64/etcdutl": str(tmp_path / "out" / "etcdutl")}
    ret = mod.installed("etcd 3.4.23", str(arc), members)
    assert ret["result"] is False
    assert ret["comment"] == (f"etcd 3.4.23: {arc} has no member "
                              "etcd-v3.4.23-linux-amd64/etcdutl")
    assert not (tmp_path / "out").exists()
