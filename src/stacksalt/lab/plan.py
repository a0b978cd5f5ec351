"""What the lab must run, read from the model: one container per node of the deployment."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from stacksalt.deployment import Deployment
from stacksalt.errors import StacksaltError

# Only network-namespaced kernel parameters can be set on a container (docker --sysctl).
NAMESPACED_SYSCTL_PREFIXES = ("net.",)


@dataclass(frozen=True)
class LabNode:
    minion_id: str
    hostname: str
    domain: str
    address: str
    is_master: bool
    sysctls: dict[str, str] = field(default_factory=dict)

    def container_name(self, deployment: str) -> str:
        return f"stacksalt-{deployment}-{self.hostname}"


@dataclass(frozen=True)
class LabPlan:
    deployment: str
    subnet: str
    gateway: str
    master_base_dir: str
    nodes: tuple[LabNode, ...]
    # the model the plan was read from, passed on to the steps of `lab up` after it
    model: Deployment | None = field(default=None, compare=False, repr=False)

    @property
    def network_name(self) -> str:
        return f"stacksalt-{self.deployment}"

    @property
    def master(self) -> LabNode:
        return next(n for n in self.nodes if n.is_master)

    @property
    def minions(self) -> tuple[LabNode, ...]:
        return tuple(n for n in self.nodes if not n.is_master)

    def labels(self) -> dict[str, str]:
        return {"io.stacksalt.lab": "true", "io.stacksalt.deployment": self.deployment}


def plan(dep: Deployment) -> LabPlan:
    """The lab for a deployment; refuses a model the lab cannot run."""
    nodes = []
    subnet = gateway = base_dir = None
    need = "the lab"
    for name in dep.node_names:
        sysctl = dep.get(name, "linux:system:kernel:sysctl", None) or {}
        is_master = bool(dep.get(name, "salt:master:enabled", False))
        nodes.append(
            LabNode(
                minion_id=name,
                hostname=dep.get(name, "linux:system:name", needed_by=need),
                domain=dep.get(name, "linux:system:domain", needed_by=need),
                address=dep.get(name, "linux:network:address", needed_by=need),
                is_master=is_master,
                sysctls={
                    k: str(v) for k, v in sysctl.items()
                    if k.startswith(NAMESPACED_SYSCTL_PREFIXES)
                },
            )
        )
        subnet = subnet or dep.get(name, "_param:lab_network", needed_by=need)
        gateway = gateway or dep.get(name, "_param:lab_gateway", needed_by=need)
        if is_master:
            base_dir = dep.get(name, "salt:master:base_dir", needed_by=need)
    masters = [n for n in nodes if n.is_master]
    if len(masters) != 1:
        raise StacksaltError(
            f"deployment {dep.name}: the lab needs exactly one node with salt:master:enabled, "
            f"found {len(masters)}"
        )
    net = ipaddress.ip_network(subnet)
    for n in nodes:
        if ipaddress.ip_address(n.address) not in net:
            raise StacksaltError(
                f"node {n.minion_id}: linux:network:address {n.address} is outside "
                f"_param:lab_network {subnet}"
            )
    return LabPlan(dep.name, subnet, gateway, base_dir, tuple(nodes), dep)
