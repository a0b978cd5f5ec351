"""Validate Calico objects (``projectcalico.org/v3``) against JSON schemas of their fields.

Calico publishes no JSON schema for its v3 API (calicoctl validates in Go), so the schemas
below are written from Calico's resource reference (docs.tigera.io, Calico 3.30:
``reference/resources/{ippool,bgpconfig,bgppeer,node}`` and calicoctl's etcd
configuration page) for the kinds the calico formula writes: IPPool, BGPConfiguration,
BGPPeer, Node, and calicoctl's own CalicoAPIConfig. Like the strict Kubernetes schemas,
they reject unknown fields, wrong types and values outside the documented enums; formats
(CIDRs, addresses, durations, AS numbers) are checked too, and the rules the reference
states between fields (ipipMode and vxlanMode not both on, the pool's block size within
its CIDR, a BGPPeer's node vs nodeSelector, peerSelector vs peerIP/asNumber).

``validate(obj)`` returns every problem as ``path: message`` strings ([] if valid).
"""

from __future__ import annotations

import ipaddress
import re
from functools import cache
from typing import Any

import jsonschema

API_VERSION = "projectcalico.org/v3"

# -- formats ---------------------------------------------------------------------------

_NAME = r"^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$"  # alphanumeric with . _ -
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")  # Go time.ParseDuration
_ASDOT = re.compile(r"^([0-9]+)\.([0-9]+)$")
_PORT = re.compile(r"^(?P<ip>.+):(?P<port>[0-9]{1,5})$")
_COMMUNITY = re.compile(r"^[0-9]+:[0-9]+(:[0-9]+)?$")

FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("cidr")
def _is_cidr(value: object) -> bool:
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return True


@FORMATS.checks("ip")
def _is_ip(value: object) -> bool:
    try:
        ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        return False
    return isinstance(value, str)


@FORMATS.checks("ipv4")
def _is_ipv4(value: object) -> bool:
    return _is_ip(value) and ipaddress.ip_address(str(value)).version == 4


@FORMATS.checks("ipv4-interface")
def _is_ipv4_interface(value: object) -> bool:
    try:
        return isinstance(value, str) and ipaddress.ip_interface(value).version == 4
    except ValueError:
        return False


@FORMATS.checks("ipv6-interface")
def _is_ipv6_interface(value: object) -> bool:
    try:
        return isinstance(value, str) and ipaddress.ip_interface(value).version == 6
    except ValueError:
        return False


@FORMATS.checks("peer-ip")
def _is_peer_ip(value: object) -> bool:
    """An IP address, or ``IPv4:port`` / ``[IPv6]:port``."""
    if not isinstance(value, str):
        return False
    if _is_ip(value):
        return True
    match = _PORT.match(value)
    if not match or not 0 < int(match["port"]) < 65536:
        return False
    ip = match["ip"]
    if ip.startswith("[") and ip.endswith("]"):
        return _is_ip(ip[1:-1]) and ipaddress.ip_address(ip[1:-1]).version == 6
    return _is_ipv4(ip)


@FORMATS.checks("duration")
def _is_duration(value: object) -> bool:
    return isinstance(value, str) and bool(_DURATION.match(value))


@FORMATS.checks("asdot")
def _is_asdot(value: object) -> bool:
    match = _ASDOT.match(value) if isinstance(value, str) else None
    return bool(match) and all(int(part) <= 65535 for part in match.groups())


@FORMATS.checks("community")
def _is_community(value: object) -> bool:
    return isinstance(value, str) and bool(_COMMUNITY.match(value))


# -- schema building blocks ------------------------------------------------------------


def _obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A closed object: only the listed properties."""
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


STRING = {"type": "string"}
BOOL = {"type": "boolean"}
SELECTOR = {"type": "string"}  # Calico's selector expression language, e.g. all()
AS_NUMBER = {"oneOf": [
    {"type": "integer", "minimum": 0, "maximum": 4294967295},
    {"type": "string", "format": "asdot"},
]}
DURATION = {"type": "string", "format": "duration"}
CIDR_LIST = {"type": "array", "items": _obj({"cidr": {"type": "string", "format": "cidr"}},
                                            ("cidr",))}
PASSWORD = _obj({"secretKeyRef": _obj({"name": STRING, "key": STRING}, ("name", "key"))})
STRING_MAP = {"type": "object", "additionalProperties": STRING}
METADATA = _obj({
    "name": {"type": "string", "pattern": _NAME, "maxLength": 253},
    "labels": STRING_MAP,
    "annotations": STRING_MAP,
}, ("name",))


def _resource(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _obj({
        "apiVersion": {"const": API_VERSION},
        "kind": {"const": kind},
        "metadata": METADATA,
        "spec": spec,
    }, ("apiVersion", "kind", "metadata"))


IPPOOL_SPEC = _obj({
    "cidr": {"type": "string", "format": "cidr"},
    "blockSize": {"type": "integer", "minimum": 20, "maximum": 128},
    "ipipMode": {"enum": ["Always", "CrossSubnet", "Never"]},
    "vxlanMode": {"enum": ["Always", "CrossSubnet", "Never"]},
    "natOutgoing": BOOL,
    "disabled": BOOL,
    "disableBGPExport": BOOL,
    "nodeSelector": SELECTOR,
    "allowedUses": {"type": "array", "minItems": 1, "uniqueItems": True,
                    "items": {"enum": ["Workload", "Tunnel", "LoadBalancer"]}},
    "assignmentMode": {"enum": ["Automatic", "Manual"]},
}, ("cidr",))

BGPCONFIGURATION_SPEC = _obj({
    "logSeverityScreen": {"enum": ["Debug", "Info", "Warning", "Error", "Fatal"]},
    "nodeToNodeMeshEnabled": BOOL,
    "asNumber": AS_NUMBER,
    "serviceClusterIPs": CIDR_LIST,
    "serviceExternalIPs": CIDR_LIST,
    "serviceLoadBalancerIPs": CIDR_LIST,
    "listenPort": {"type": "integer", "minimum": 1, "maximum": 65535},
    "bindMode": {"enum": ["None", "NodeIP"]},
    "communities": {"type": "array", "items": _obj(
        {"name": STRING, "value": {"type": "string", "format": "community"}},
        ("name", "value"))},
    "prefixAdvertisements": {"type": "array", "items": _obj(
        {"cidr": {"type": "string", "format": "cidr"},
         "communities": {"type": "array", "items": STRING}},
        ("cidr",))},
    "nodeMeshPassword": PASSWORD,
    "nodeMeshMaxRestartTime": DURATION,
    "ignoredInterfaces": {"type": "array", "items": STRING},
    "localWorkloadPeeringIPV4": {"type": "string", "format": "ipv4"},
    "localWorkloadPeeringIPV6": {"type": "string", "format": "ip"},
})

BGPPEER_SPEC = _obj({
    "node": STRING,
    "peerIP": {"type": "string", "format": "peer-ip"},
    "asNumber": AS_NUMBER,
    "nodeSelector": SELECTOR,
    "peerSelector": SELECTOR,
    "localWorkloadSelector": SELECTOR,
    "keepOriginalNextHop": BOOL,
    "password": PASSWORD,
    "sourceAddress": {"enum": ["UseNodeIP", "None"]},
    "maxRestartTime": DURATION,
    "numAllowedLocalASNumbers": {"type": "integer", "minimum": 0},
    "ttlSecurity": {"type": "integer", "minimum": 0, "maximum": 255},
    "filters": {"type": "array", "items": STRING},
    "reachableBy": {"type": "string", "format": "ip"},
    "nextHopMode": {"enum": ["Auto", "Self", "Keep"]},
    "reversePeering": {"enum": ["Auto", "Manual"]},
})

NODE_SPEC = _obj({
    "bgp": _obj({
        "asNumber": AS_NUMBER,
        "ipv4Address": {"type": "string", "format": "ipv4-interface"},
        "ipv6Address": {"type": "string", "format": "ipv6-interface"},
        "ipv4IPIPTunnelAddr": {"type": "string", "format": "ipv4"},
        "routeReflectorClusterID": {"type": "string", "format": "ipv4"},
    }),
    "ipv4VXLANTunnelAddr": {"type": "string", "format": "ipv4"},
    "vxlanTunnelMACAddr": STRING,
    "ipv6VXLANTunnelAddr": {"type": "string", "format": "ip"},
    "vxlanTunnelMACAddrV6": STRING,
    "orchRefs": {"type": "array", "items": _obj(
        {"nodeName": STRING, "orchestrator": STRING}, ("orchestrator",))},
    "wireguard": _obj({
        "interfaceIPv4Address": {"type": "string", "format": "ipv4-interface"},
        "interfaceIPv6Address": {"type": "string", "format": "ipv6-interface"},
    }),
})

# calicoctl's configuration file (/etc/calico/calicoctl.cfg): not a datastore resource,
# but it has the same apiVersion; its metadata is empty.
CALICOAPICONFIG = _obj({
    "apiVersion": {"const": API_VERSION},
    "kind": {"const": "CalicoAPIConfig"},
    "metadata": {"oneOf": [{"type": "null"}, _obj({})]},
    "spec": _obj({
        "datastoreType": {"enum": ["kubernetes", "etcdv3"]},
        "etcdEndpoints": STRING,
        "etcdDiscoverySrv": STRING,
        "etcdUsername": STRING,
        "etcdPassword": STRING,
        "etcdKeyFile": STRING,
        "etcdCertFile": STRING,
        "etcdCACertFile": STRING,
        "etcdKey": STRING,
        "etcdCert": STRING,
        "etcdCACert": STRING,
        "kubeconfig": STRING,
        "k8sAPIEndpoint": STRING,
        "k8sCertFile": STRING,
        "k8sKeyFile": STRING,
        "k8sCAFile": STRING,
        "k8sToken": STRING,
    }),
}, ("apiVersion", "kind", "spec"))

SCHEMAS: dict[str, dict[str, Any]] = {
    "IPPool": _resource("IPPool", IPPOOL_SPEC),
    "BGPConfiguration": _resource("BGPConfiguration", BGPCONFIGURATION_SPEC),
    "BGPPeer": _resource("BGPPeer", BGPPEER_SPEC),
    "Node": _resource("Node", NODE_SPEC),
    "CalicoAPIConfig": CALICOAPICONFIG,
}


# -- rules between fields ----------------------------------------------------------------


def _ippool_rules(spec: dict[str, Any]) -> list[str]:
    problems = []
    tunnels = [f for f in ("ipipMode", "vxlanMode") if spec.get(f) in ("Always", "CrossSubnet")]
    if len(tunnels) == 2:
        problems.append("spec: ipipMode and vxlanMode cannot both be enabled")
    cidr, block = spec.get("cidr"), spec.get("blockSize")
    if _is_cidr(cidr):
        net = ipaddress.ip_network(cidr)
        low, high = (20, 32) if net.version == 4 else (116, 128)
        if isinstance(block, int) and not isinstance(block, bool):
            if not low <= block <= high:
                problems.append(f"spec.blockSize: {block} is not in {low}..{high} for an "
                                f"IPv{net.version} pool")
            elif net.prefixlen > block:
                problems.append(f"spec.cidr: {cidr} is smaller than one /{block} block")
        link_local = ipaddress.ip_network("169.254.0.0/16" if net.version == 4 else "fe80::/10")
        if net.overlaps(link_local):
            problems.append(f"spec.cidr: {cidr} overlaps the link-local range {link_local}")
    return problems


def _bgppeer_rules(spec: dict[str, Any]) -> list[str]:
    problems = []
    if spec.get("node") and spec.get("nodeSelector"):
        problems.append("spec: node and nodeSelector cannot both be set")
    if spec.get("peerSelector"):
        for field in ("peerIP", "asNumber", "localWorkloadSelector"):
            if field in spec:
                problems.append(f"spec.{field}: must be empty when peerSelector is set")
    elif not spec.get("peerIP") and not spec.get("localWorkloadSelector"):
        problems.append("spec: a BGPPeer needs peerIP (with asNumber) or peerSelector")
    elif spec.get("peerIP") and "asNumber" not in spec:
        problems.append("spec.asNumber: required with peerIP")
    return problems


RULES = {"IPPool": _ippool_rules, "BGPPeer": _bgppeer_rules}


# -- validation --------------------------------------------------------------------------


@cache
def _validator(kind: str) -> jsonschema.Validator:
    schema = SCHEMAS[kind]
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=FORMATS)


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(object)"


def validate(obj: Any) -> list[str]:
    """Every problem of one Calico object as ``path: message`` strings; [] if it is valid."""
    if not isinstance(obj, dict):
        return [f"(object): not a mapping but {type(obj).__name__}"]
    if obj.get("apiVersion") != API_VERSION:
        return [f"apiVersion: {obj.get('apiVersion')!r} is not {API_VERSION!r}"]
    kind = obj.get("kind")
    if kind not in SCHEMAS:
        return [f"kind: {kind!r} is not a Calico kind this validator knows "
                f"({', '.join(sorted(SCHEMAS))})"]
    errors = sorted(_validator(kind).iter_errors(obj),
                    key=lambda e: [str(p) for p in e.absolute_path])
    problems = [f"{_where(e)}: {e.message}" for e in errors]
    spec = obj.get("spec")
    if kind in RULES and isinstance(spec, dict):
        problems += RULES[kind](spec)
    return problems
