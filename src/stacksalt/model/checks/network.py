"""Semantic checks of the Kubernetes underlay: networks, BGP and pinned binaries.

Every check reads the rendered pillar paths of the shared contract
(``kubernetes:common:...``, ``calico:node:...``) and is silent for nodes that lack
them; the node networks, which have no such path, are found by value (every CIDR of the
model that holds a node address, see ``node_networks``). An error is blamed on the
place the operator has to edit: when the pillar key holds a plain reference
(``pod_cidr: ${_param:kubernetes_pod_cidr}`` in a service class), the reference is
followed to the key and file that hold the value (the cluster class that sets
``_param:kubernetes_pod_cidr``). Equal errors from several nodes, or from several
pillar keys fed by the same value, are reported once.

Kinds: ``invalid-cidr``, ``cidr-overlap``, ``invalid-as-number``,
``unknown-route-reflector``, ``unknown-peer-node``, ``invalid-address``,
``bgp-address-vip``, ``bgp-mesh-with-route-reflectors``, ``missing-checksum``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Any

from stacksalt import objects
from stacksalt.keypath import MISSING, lookup
from stacksalt.model.errors import ModelError
from stacksalt.model.locate import raw_value, split_key
from stacksalt.model.render import RenderedDeployment, RenderedNode
from stacksalt.model.semantic import semantic_check

SERVICE_CIDR = "kubernetes:common:cluster:service_cidr"
POD_CIDR = "kubernetes:common:cluster:pod_cidr"
IPPOOL_CIDR = "calico:node:ippool:cidr"
API_VIP = "kubernetes:common:cluster:api:vip"
HOSTS = "linux:network:host"
NODE_ADDRESS = "linux:network:address"
BGP = "calico:node:bgp"
AUTODETECTION = "calico:node:ip_autodetection_method"
SHORT_NAME = "linux:system:name"

AS_MAX = 4294967295
AS_TRANS = 23456  # RFC 6793: a placeholder for 4-byte AS numbers, never a real AS

_MISSING = MISSING
_REFERENCE = re.compile(r"^\$\{([^{}]+)\}$")
_MAX_HOPS = 10

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- helpers ---------------------------------------------------------------------------


def get(node: RenderedNode, key: str) -> Any:
    """The rendered value at colon path ``key`` of the node's parameters, or _MISSING."""
    return lookup(node.parameters, key)


def source_key(deployment: RenderedDeployment, node: RenderedNode, key: str) -> str:
    """The key that holds ``key``'s value literally, following plain references.

    ``kubernetes:common:cluster:pod_cidr`` set to ``${_param:kubernetes_pod_cidr}`` in a
    service class becomes ``parameters:_param:kubernetes_pod_cidr`` (which
    ``deployment.error`` then blames on the cluster class that sets it).
    """
    section, parts = split_key(key)
    for _ in range(_MAX_HOPS):
        rel = node.locate(f"{section}:{':'.join(parts)}")
        if rel is None:
            break
        for depth in range(len(parts), 0, -1):
            found, raw = raw_value(deployment.index, rel, f"{section}:{':'.join(parts[:depth])}")
            if found:
                break
        else:
            break
        match = _REFERENCE.match(raw) if isinstance(raw, str) else None
        if match is None:
            break
        section, parts = "parameters", [*match.group(1).split(":"), *parts[depth:]]
    return f"{section}:{':'.join(parts)}"


def blame(
    deployment: RenderedDeployment, node: RenderedNode, key: str, kind: str, message: str
) -> ModelError:
    """An error about the value at ``key``, pinned to where that value is written."""
    return deployment.error(node, source_key(deployment, node, key), kind, message)


def parse_network(value: Any) -> tuple[Network | None, str]:
    """(network, "") for a well-formed CIDR (host bits zero), else (None, the problem)."""
    if not isinstance(value, str):
        return None, f"{value!r} is not a CIDR string"
    if "/" not in value:
        return None, f"{value!r} has no prefix length"
    try:
        return ipaddress.ip_network(value, strict=True), ""
    except ValueError as exc:
        return None, f"{value!r} is not a network: {exc}"


def address(value: Any, version: int | None = None) -> Address | None:
    """``value`` as an IP address (of that IP version, if given), or None."""
    try:
        ip = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return ip if ip is not None and version in (None, ip.version) else None


def items(node: RenderedNode, key: str) -> Iterator[tuple[str, dict]]:
    """(``key:<i>``, item) for each mapping of the list at ``key`` (none if absent)."""
    value = get(node, key)
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict):
                yield f"{key}:{i}", item


def short_names(deployment: RenderedDeployment, node: RenderedNode) -> set[str]:
    """Short hostnames of every node of ``node``'s deployment.

    Rendered nodes give ``linux:system:name``; nodes that did not render cleanly (their
    errors are reported by the other passes) count with the first label of their name.
    """
    names = set()
    for mf in deployment.index.nodes_of(node.deployment):
        other = deployment.nodes.get(mf.name)
        name = get(other, SHORT_NAME) if other is not None else _MISSING
        names.add(name if isinstance(name, str) else mf.name.split(".")[0])
    return names


# -- networks --------------------------------------------------------------------------


def _ranges(node: RenderedNode, keys: tuple[str, ...]) -> list[tuple[str, Network]]:
    """(key, network) for each of ``keys`` the node has with a well-formed value."""
    found = []
    for key in keys:
        net, _ = parse_network(get(node, key))
        if net is not None:
            found.append((key, net))
    return found


@semantic_check
def cidrs_are_networks(deployment: RenderedDeployment) -> Iterator[ModelError]:
    for node in deployment.nodes.values():
        for key in (SERVICE_CIDR, POD_CIDR, IPPOOL_CIDR):
            value = get(node, key)
            _, problem = (None, "") if value is _MISSING else parse_network(value)
            if problem:
                yield blame(deployment, node, key, "invalid-cidr", problem)


def node_addresses(node: RenderedNode) -> list[tuple[str, Address]]:
    """(what, address) for each address of the host table, the node's own address, and
    the API's virtual IP."""
    found = []
    hosts = get(node, HOSTS)
    for name, host in sorted(hosts.items()) if isinstance(hosts, dict) else ():
        ip = address(host.get("address")) if isinstance(host, dict) else None
        if ip is not None:
            found.append((name, ip))
    own = address(get(node, NODE_ADDRESS))
    if own is not None and own not in {ip for _, ip in found}:
        found.append((node.name, own))
    vip = address(get(node, API_VIP))
    if vip is not None:
        found.append(("the API VIP", vip))
    return found


def _overlaps(net: Network, other: Network) -> bool:
    return net.version == other.version and net.overlaps(other)


def cidr_values(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Network]]:
    """(key, network) for every string of ``value`` that is a CIDR, at any depth and under
    any name; an interface address such as ``172.30.70.11/24`` gives its network.
    reclass's own ``_reclass_`` parameters are left out."""
    if isinstance(value, dict):
        for key, sub in value.items():
            if not path and key == "_reclass_":
                continue
            yield from cidr_values(sub, (*path, str(key)))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from cidr_values(sub, (*path, str(i)))
    elif isinstance(value, str) and "/" in value:
        try:
            yield ":".join(path), ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            pass


def node_networks(node: RenderedNode, cluster: list[Network],
                  addresses: list[tuple[str, Address]]) -> list[Network]:
    """The node networks of the model, found by value: every CIDR of the node's
    parameters (whatever its key) that holds a node address (``addresses``), but for the
    cluster's own ranges (``cluster``: pods and services, and their copies) and ``/0``."""
    ips = [ip for _, ip in addresses]
    found: list[Network] = []
    for _, net in cidr_values(node.parameters):
        if net.prefixlen == 0 or net in cluster or net in found:
            continue
        if any(ip.version == net.version and ip in net for ip in ips):
            found.append(net)
    return sorted(found, key=lambda n: (n.version, n))


@semantic_check
def networks_do_not_overlap(deployment: RenderedDeployment) -> Iterator[ModelError]:
    """The pod range and IP pool, the service range and the node networks: clear of each
    other, checked by value.

    A node network is any CIDR of the model that holds a node address (see
    ``node_networks``: no parameter name is assumed, ``_param:lab_network`` and
    ``_param:mgmt`` count alike). Pods (pod range, Calico's IP pool) are checked against
    the service range and the node networks, the service range against the node
    networks; a range that overlaps no node network but holds node addresses (host
    table, the node's own address, the API VIP) is reported with those addresses. The
    error is blamed on the pod or service range, in one error per pair.
    """
    for node in deployment.nodes.values():
        pods = _ranges(node, (POD_CIDR, IPPOOL_CIDR))
        services = _ranges(node, (SERVICE_CIDR,))
        if not pods and not services:
            continue
        addresses = node_addresses(node)
        nets = node_networks(node, [net for _, net in pods + services], addresses)
        nodes = [(f"the node network {net}", net) for net in nets]
        service_ranges = [(f"the service range {net}", net) for _, net in services]
        for group, others in ((pods, service_ranges + nodes), (services, nodes)):
            for key, net in group:
                problems = [what for what, other in others if _overlaps(net, other)]
                inside = [f"{ip} ({name})" for name, ip in addresses if ip in net]
                if inside and not any(_overlaps(net, other) for other in nets):
                    shown = ", ".join(inside[:4]) + (
                        f", +{len(inside) - 4} more" if inside[4:] else "")
                    problems.append(f"node addresses {shown}")
                for what in problems:
                    yield blame(deployment, node, key, "cidr-overlap", f"{net} overlaps {what}")


# -- BGP -------------------------------------------------------------------------------


def why_bad_as_number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{value!r} is not an integer"
    if value == AS_TRANS:
        return f"{value} is AS_TRANS (RFC 6793), not a usable AS number"
    if not 1 <= value <= AS_MAX:
        return f"{value} is out of range 1..{AS_MAX}"
    return ""


@semantic_check
def as_numbers_in_range(deployment: RenderedDeployment) -> Iterator[ModelError]:
    for node in deployment.nodes.values():
        keys = [f"{BGP}:as_number"] + [f"{k}:as_number" for k, _ in items(node, f"{BGP}:peers")]
        for key in keys:
            value = get(node, key)
            problem = "" if value is _MISSING else why_bad_as_number(value)
            if problem:
                yield blame(deployment, node, key, "invalid-as-number", problem)


@semantic_check
def bgp_nodes_exist(deployment: RenderedDeployment) -> Iterator[ModelError]:
    """Route reflectors and per-node peers name nodes of the deployment."""
    checks = (("route_reflectors", "unknown-route-reflector", "route reflector"),
              ("peers", "unknown-peer-node", "peer's node"))
    for node in deployment.nodes.values():
        names: set[str] | None = None
        for field, kind, what in checks:
            for key, item in items(node, f"{BGP}:{field}"):
                if "node" not in item:
                    continue
                names = short_names(deployment, node) if names is None else names
                if item["node"] not in names:
                    yield blame(
                        deployment, node, f"{key}:node", kind,
                        f"{what} {item['node']!r} is not a node of deployment "
                        f"{node.deployment} (its nodes: {', '.join(sorted(names))})",
                    )


@semantic_check
def bgp_mesh_is_off_with_route_reflectors(deployment: RenderedDeployment) -> Iterator[ModelError]:
    """Route reflectors need the full mesh off: the Salt render's rule
    (``stacksalt_objects.bgp_mesh_problem``), over ``calico:node`` merged with the
    formula's defaults as the builder merges it (the mesh is on by default)."""
    builder = objects.builder()
    defaults = objects.defaults()["calico"]["node"]
    for node in deployment.nodes.values():
        calico = get(node, "calico:node")
        if not isinstance(calico, dict):
            continue
        settings = builder.merge(defaults, calico)
        if settings.get("enabled") is not True or not isinstance(settings.get("bgp"), dict):
            continue
        problem = builder.bgp_mesh_problem(settings["bgp"])
        if problem:
            yield blame(deployment, node, f"{BGP}:node_to_node_mesh",
                        "bgp-mesh-with-route-reflectors", problem)


@semantic_check
def bgp_addresses_are_addresses(deployment: RenderedDeployment) -> Iterator[ModelError]:
    """Peer addresses are IP addresses; route reflector cluster IDs are IPv4-like."""
    for node in deployment.nodes.values():
        fields = [(f"{k}:peer_ip", None, "an IP address")
                  for k, _ in items(node, f"{BGP}:peers")]
        fields += [(f"{k}:cluster_id", 4, "an IPv4-like cluster ID")
                   for k, _ in items(node, f"{BGP}:route_reflectors")]
        for key, version, what in fields:
            value = get(node, key)
            if value is not _MISSING and address(value, version) is None:
                yield blame(deployment, node, key, "invalid-address", f"{value!r} is not {what}")


@semantic_check
def bgp_address_is_never_the_vip(deployment: RenderedDeployment) -> Iterator[ModelError]:
    """calico-node's address detection cannot pick the API's virtual IP (the builder's
    rule: can-reach=<VIP> and a cidr= containing the VIP are refused)."""
    for node in deployment.nodes.values():
        method = get(node, AUTODETECTION)
        if method is _MISSING or get(node, "calico:node:enabled") is not True:
            continue
        vip = get(node, API_VIP)
        problem = objects.builder().autodetection_problem(
            method, None if vip is _MISSING else vip)
        if problem:
            yield blame(deployment, node, AUTODETECTION, "bgp-address-vip", problem)


# -- binaries --------------------------------------------------------------------------


# (what, version key, checksums key, architecture key): every pinned download. The
# checksums are {version: {arch: sha256}} or {version: {arch: {binary: sha256}}}.
PINNED = (
    ("kubernetes", "kubernetes:common:version", "kubernetes:common:binaries:checksums",
     "kubernetes:common:arch"),
    ("containerd", "kubernetes:common:containerd:archive:containerd:version",
     "kubernetes:common:containerd:archive:containerd:checksums", "kubernetes:common:arch"),
    ("runc", "kubernetes:common:containerd:archive:runc:version",
     "kubernetes:common:containerd:archive:runc:checksums", "kubernetes:common:arch"),
    ("CNI plugins", "kubernetes:common:containerd:archive:cni_plugins:version",
     "kubernetes:common:containerd:archive:cni_plugins:checksums", "kubernetes:common:arch"),
    ("etcd", "etcd:server:archive:version", "etcd:server:archive:checksums",
     "etcd:server:arch"),
)


@semantic_check
def versions_have_checksums(deployment: RenderedDeployment) -> Iterator[ModelError]:
    """Each pinned version (Kubernetes, containerd, runc, CNI plugins, etcd) has sha256
    sums for the node's architecture, whether or not this deployment downloads it (a
    switch must not reveal a missing pin later)."""
    for node in deployment.nodes.values():
        for what, version_key, checksums_key, arch_key in PINNED:
            version = get(node, version_key)
            checksums = get(node, checksums_key)
            if version is _MISSING or checksums is _MISSING or version is None:
                continue
            arch = get(node, arch_key)
            arch = "amd64" if arch is _MISSING else arch
            pinned = checksums.get(str(version)) if isinstance(checksums, dict) else None
            if not isinstance(pinned, dict) or not pinned.get(arch):
                known = sorted(checksums) if isinstance(checksums, dict) else []
                yield blame(
                    deployment, node, version_key, "missing-checksum",
                    f"{what} version {version} has no checksums for {arch} in "
                    f"{checksums_key} (pinned: {', '.join(map(str, known))})",
                )
