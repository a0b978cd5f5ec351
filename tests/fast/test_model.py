"""The real model: every node of every deployment renders, and the level rules hold."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
import yaml

from stacksalt import engine, paths
from stacksalt.deployment import Deployment
from stacksalt.model import check
from tests.conftest import deployments

pytestmark = pytest.mark.fast

# the product's service and system classes; each shipped example's cluster classes
CLASSES = paths.package_checkout() / "reclass" / "classes"
REF = re.compile(r"\$\{([^}]*)\}")
IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")


@pytest.mark.parametrize("deployment", deployments())
def test_every_node_renders_with_applications(deployment):
    dep = Deployment.load(deployment)
    assert dep.node_names, f"deployment {deployment} has no nodes"
    for node, info in dep.rendered.items():
        assert info["applications"], f"{node} has no applications"
        assert info["parameters"]["linux"]["network"]["address"]


@pytest.mark.parametrize("deployment", deployments())
def test_model_check_is_clean(deployment):
    assert check.check(paths.reclass_dir(deployment), deployment) == []


def _yaml_files(level: str) -> list[Path]:
    if level == "cluster":
        return sorted(f for name in paths.examples()
                      for f in (paths.reclass_dir(name) / "classes" / level).rglob("*.yml"))
    return sorted((CLASSES / level).rglob("*.yml"))


def _rel(f: Path) -> str:
    """The class file's path under its inventory's classes/ (service/..., cluster/...)."""
    parts = f.parts
    return "/".join(parts[len(parts) - 1 - parts[::-1].index("classes") + 1:])


def test_service_classes_take_values_only_through_param():
    bad = []
    for f in _yaml_files("service"):
        for ref in REF.findall(f.read_text()):
            if not ref.startswith("_param:"):
                bad.append(f"{_rel(f)}: ${{{ref}}}")
    assert not bad, "service classes may only reference ${_param:...}:\n" + "\n".join(bad)


def test_addresses_are_defined_once_at_cluster_level():
    seen: dict[str, list[str]] = {}
    for level in ("service", "system", "cluster"):
        for f in _yaml_files(level):
            for ip in IPV4.findall(f.read_text()):
                if ipaddress.ip_address(ip).is_loopback or ip == "0.0.0.0":
                    continue
                seen.setdefault(ip, []).append(_rel(f))
    problems = [f"{ip}: {where}" for ip, where in seen.items()
                if len(where) > 1 or not where[0].startswith("cluster/")]
    assert not problems, "addresses must be defined once, in cluster classes:\n" + "\n".join(
        problems)


@pytest.mark.parametrize("deployment", deployments())
def test_one_release_parameter_drives_openstack_versions(deployment):
    dep = Deployment.load(deployment)
    for node in dep.node_names:
        p = dep.parameters(node)["_param"]
        release = p["openstack_version"]
        for svc in ("keystone", "glance", "placement", "nova", "neutron"):
            assert p[f"{svc}_version"] == release
    cluster_files = sorted((paths.reclass_dir(deployment) / "classes" / "cluster" / deployment)
                           .rglob("*.yml"))
    defs = [f for f in cluster_files
            if "openstack_version" in (yaml.safe_load(f.read_text()) or {})
            .get("parameters", {}).get("_param", {})]
    assert len(defs) == 1, f"openstack_version must be defined once, found in {defs}"


def test_master_reclass_options_match_the_engine():
    dep = Deployment.load("lab")
    masters = [n for n in dep.node_names if dep.parameters(n)["salt"].get("master")]
    opts = dict(dep.parameters(masters[0])["salt"]["master"]["reclass"])
    opts.pop("inventory_base_uri")
    assert opts == engine.ENGINE_OPTIONS


def test_lab_shape():
    """cfg01, three k8s masters forming etcd, three control and two compute nodes."""
    dep = Deployment.load("lab")
    apps = {n: set(dep.rendered[n]["applications"]) for n in dep.node_names}
    etcd = sorted(n for n, a in apps.items() if "etcd" in a)
    masters = [n for n in dep.node_names if dep.parameters(n)["salt"].get("master")]
    assert len(dep.node_names) == 9
    assert len(etcd) == 3 and len(masters) == 1 and masters[0] not in etcd
    members = dep.parameters(etcd[0])["etcd"]["server"]["members"]
    assert sorted(m["host"] for m in members) == sorted(
        dep.parameters(n)["linux"]["network"]["address"] for n in etcd)
