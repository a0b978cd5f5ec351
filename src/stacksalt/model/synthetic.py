"""A synthetic reclass model for benchmarks and tests.

``generate(dest)`` writes an inventory shaped like the real one: service classes
(formula defaults that reference ``_param``), system classes (which include service
classes and set ``_param`` defaults), cluster classes (one deployment, node groups that
pick system classes) and node files under ``nodes/<deployment>/``. Everything is
deterministic, and the result renders cleanly with ``stacksalt model check``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

SERVICES = (
    "linux", "openssh", "ntp", "salt", "etcd", "kubernetes", "calico", "haproxy",
    "keepalived", "nginx", "rabbitmq", "galera", "memcached", "keystone", "glance",
    "nova", "neutron", "cinder", "heat", "horizon",
)  # fmt: skip
ROLES = ("server", "client", "common")
SERVER_VARIANTS = ("single", "cluster", "tls")
SYSTEM_CLASSES = (
    ("server", "single"),
    ("server", "cluster"),
    ("server", "tls"),
    ("client", "single"),
)


@dataclass(frozen=True)
class SyntheticStats:
    """What ``generate`` wrote."""

    inventory: Path
    deployment: str
    nodes: int
    classes: int
    references: int


def _service_class(svc: str, role: str) -> dict:
    return {
        "parameters": {
            svc: {
                role: {
                    "enabled": True,
                    "version": f"${{_param:{svc}_version}}",
                    "bind": {"address": f"${{_param:{svc}_{role}_address}}", "port": 2000},
                    "members": [],
                    "tls": {"enabled": False, "ca_file": "/etc/ssl/ca.pem"},
                    "log": {"level": "info", "dir": f"/var/log/{svc}"},
                }
            }
        }
    }


def _system_class(svc: str, role: str, variant: str) -> dict:
    params: dict = {
        "_param": {
            f"{svc}_version": "1.0",
            f"{svc}_{role}_address": "${_param:single_address}",
            f"{svc}_common_address": "${_param:single_address}",
        },
        svc: {role: {"members": [{"host": "${_param:cluster_vip_address}", "port": 2000}]}},
    }
    if variant == "tls":
        params[svc][role]["tls"] = {"enabled": True, "cert": "${_param:tls_cert_dir}/cert.pem"}
    if role == "client":
        params[svc][role]["log"] = {"level": "debug", "target": "${_param:monitoring_address}"}
    return {"classes": [f"service.{svc}.{role}", f"service.{svc}.common"], "parameters": params}


def generate(
    dest: Path,
    nodes: int = 1000,
    deployment: str = "synth",
    groups: int = 20,
    aspects_per_group: int = 2,
) -> SyntheticStats:
    """Write a synthetic inventory into ``dest`` (``classes/``, ``nodes/<deployment>/``).

    About 60 service, 80 system and ``1 + groups * (1 + aspects_per_group)`` cluster
    classes; every node includes one group's class and sets its own addresses.
    """
    dest = Path(dest)
    files: dict[Path, dict] = {}
    for svc in SERVICES:
        for role in ROLES:
            files[Path("classes/service", svc, f"{role}.yml")] = _service_class(svc, role)
        for role, variant in SYSTEM_CLASSES:
            files[Path("classes/system", svc, role, f"{variant}.yml")] = _system_class(
                svc, role, variant
            )
    cluster = Path("classes/cluster", deployment)
    files[cluster / "init.yml"] = {
        "classes": ["system.linux.server.single", "system.openssh.server.single"],
        "parameters": {
            "_param": {
                "domain": f"{deployment}.local",
                "cluster_vip_address": "10.0.0.10",
                "tls_cert_dir": "/etc/ssl/${_param:domain}",
                "monitoring_address": "${_param:cluster_vip_address}",
            },
            "linux": {"system": {"domain": "${_param:domain}"}},
        },
    }
    for g in range(groups):
        group = f"g{g:02d}"
        picked = [SERVICES[(g * 3 + i) % len(SERVICES)] for i in range(4)]
        aspects = [f"aspect{a}" for a in range(aspects_per_group)]
        files[cluster / group / "init.yml"] = {
            "classes": [f"cluster.{deployment}"]
            + [
                f"system.{svc}.server.{SERVER_VARIANTS[(g + i) % 3]}"
                for i, svc in enumerate(picked)
            ]
            + [f"cluster.{deployment}.{group}.{aspect}" for aspect in aspects],
            "parameters": {
                "_param": {f"{group}_vip": f"10.{g}.0.10", "group": group},
                "linux": {"system": {"group": "${_param:group}"}},
            },
        }
        for a, aspect in enumerate(aspects):
            svc = picked[a % len(picked)]
            files[cluster / group / f"{aspect}.yml"] = {
                "classes": [f"system.{svc}.client.single"],
                "parameters": {
                    svc: {"client": {"endpoint": f"${{_param:{group}_vip}}:{2000 + a}"}},
                },
            }
    for n in range(nodes):
        g = n % groups
        name = f"n{n:04d}.g{g:02d}.{deployment}.local"
        node = {
            "classes": [f"cluster.{deployment}.g{g:02d}"],
            "parameters": {
                "_param": {
                    "single_address": f"10.{g}.{n // 250}.{n % 250 + 1}",
                    "hostname": name.split(".")[0],
                },
            },
        }
        node["parameters"]["linux"] = {"system": {"name": "${_param:hostname}"}}
        files[Path("nodes", deployment, f"{name}.yml")] = node

    references = 0
    for rel, data in files.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
        references += text.count("${")
        path.write_text(text)
    n_classes = sum(1 for rel in files if rel.parts[0] == "classes")
    return SyntheticStats(dest, deployment, nodes, n_classes, references)
