"""The one builder of the Kubernetes and Calico objects Salt writes, and of their apply plan.

Pillar in, objects out. Every object a Kubernetes master writes for the cluster's API (and
for Calico's datastore) comes from here:

- admin.conf's ClusterRoleBinding (``kubeadm:cluster-admins`` -> cluster-admin), as
  kubeadm >= 1.29 creates it;
- Calico (``calico:node`` on a Kubernetes master): the IPPool, the BGPConfiguration, the
  BGPPeers (calicoctl), the RBAC of calico-node, the CNI plugin and calico-kube-controllers,
  the calico-node DaemonSet and the calico-kube-controllers Deployment (kubectl), and the
  route reflectors' Node changes (calicoctl patch, once calico-node registered the node);
- CoreDNS (``kubernetes:master:addons:coredns``), as kubeadm deploys it;
- the OpenStack service-roles (``kubernetes:control``): Namespace, Secret, PVCs,
  Services, PodDisruptionBudgets, per-release Jobs, Deployments and DaemonSets.

``build(pillar, defaults)`` returns the files (path relative to the plan's directory, the
object, whether it holds secret values) and the plan: one ordered list of steps, each
naming its tool (kubectl or calicoctl), its action (apply or patch), the object, its
file, what it waits for, and its timeout. The order is the plan's, not an accident of
class order: the ClusterRoleBinding of admin.conf's group (with super-admin.conf, the one
step that uses it), Calico's resources and networking, then CoreDNS, then OpenStack.

``defaults`` are the formulas' own defaults.yaml files (``DEFAULTS``), read by the caller:
the Salt wrapper below reads them from the file server, the stacksalt package from the
checkout; the schema's defaults are written there once.

Everything above the Salt wrapper is pure Python (no Salt): stacksalt.objects and the
fast tests import this file as it is.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re

__virtualname__ = "stacksalt_objects"

# The defaults files (relative to the file roots) the builder merges the pillar over.
DEFAULTS = {
    "kubernetes": "kubernetes/defaults.yaml",
    "calico": "calico/defaults.yaml",
    "control": "kubernetes/control/defaults.yaml",
}
CALICO_API = "projectcalico.org/v3"
CONFIG_HASH = "stacksalt.io/config-hash"
SECRET_HASH = "stacksalt.io/secret-hash"


class ObjectError(ValueError):
    """The pillar cannot be built into objects; the message names the pillar key."""


# =========================================================================== helpers


def merge(base, over):
    """``over`` merged into a copy of ``base``: mappings recursively, anything else
    (lists included) replaced, as Salt's slsutil.merge(strategy='recurse')."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return copy.deepcopy(over)
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(out.get(key), dict) and \
            isinstance(value, dict) else copy.deepcopy(value)
    return out


def get(data, path, default=None):
    """``data`` at a colon path (pillar.get)."""
    for part in path.split(":"):
        if not isinstance(data, dict) or part not in data:
            return default
        data = data[part]
    return data


def to_json(value) -> str:
    """What Salt's Jinja ``json`` filter makes of value (sorted keys), the hashes' input."""
    return json.dumps(value, sort_keys=True)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def file_name(kind: str, name: str) -> str:
    """``<kind lowercased>-<name>.yaml`` (a ``:`` in the name becomes ``-``)."""
    return f"{kind.lower()}-{name.replace(':', '-')}.yaml"


# =========================================================================== node labels


# What NodeRestriction lets a kubelet set on its own Node (k8s.io/kubelet's
# IsKubeletLabel: these keys, or a key in one of these namespaces or a subdomain of one);
# any other key in kubernetes.io / k8s.io (or a subdomain) is refused by the kubelet's
# --node-labels and by the admission plugin (plugin/pkg/admission/noderestriction).
KUBELET_LABELS = frozenset((
    "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch",
    "beta.kubernetes.io/os", "beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type", "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region"))
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")
RESTRICTED_NAMESPACES = ("kubernetes.io", "k8s.io")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _in_namespace(namespace: str, names) -> bool:
    return any(namespace == n or namespace.endswith("." + n) for n in names)


def restricted_label(key: str) -> bool:
    """Whether NodeRestriction (and the kubelet's --node-labels) refuse ``key`` for a
    kubelet's own Node: kubernetes.io / k8s.io (or a subdomain), unless a kubelet label."""
    prefix = key.rpartition("/")[0]
    if key in KUBELET_LABELS or _in_namespace(prefix, KUBELET_LABEL_NAMESPACES):
        return False
    return _in_namespace(prefix, RESTRICTED_NAMESPACES)


def label_problem(key, value) -> str:
    """Why a kubelet cannot give its node the label ``key: value`` ("" if it can)."""
    if not isinstance(key, str) or not isinstance(value, str):
        return (f"label {key!r}: {value!r} must be a string key and a string value (quote "
                "values such as \"true\")")
    prefix, _, name = key.rpartition("/")
    if not name or not LABEL_NAME.match(name) or (prefix and (
            len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix))):
        return f"label key {key!r} is not a valid [<dns subdomain>/]<name>"
    if len(value) > 63 or not LABEL_NAME.match(value):
        return f"label value {value!r} of {key!r} is not a valid label value"
    if restricted_label(key):
        return (f"label {key!r} is in a namespace kubelets may not set on their own node "
                "(NodeRestriction; allowed: node.kubernetes.io/, kubelet.kubernetes.io/ and "
                "the well-known kubelet labels): use your own prefix, e.g. stacksalt.io/")
    return ""


def taint_problem(taint) -> str:
    """Why ``taint`` is not a taint {key, value?, effect} ("" if it is)."""
    if not isinstance(taint, dict) or not isinstance(taint.get("key"), str):
        return f"taint {to_json(taint)} needs a key"
    if taint.get("effect") not in TAINT_EFFECTS:
        return (f"taint {taint['key']!r} has effect {taint.get('effect')!r}: use one of "
                f"{', '.join(TAINT_EFFECTS)}")
    unknown = sorted(set(taint) - {"key", "value", "effect"})
    if unknown:
        return f"taint {taint['key']!r} has unknown fields {', '.join(unknown)}"
    return ""


def check_node_placement(labels, taints, key: str) -> None:
    """ObjectError naming ``<key>:labels:<label>`` / ``<key>:taints:<i>`` on bad input."""
    if not isinstance(labels, dict):
        raise ObjectError(f"{key}:labels must be a mapping of label keys to strings")
    for label, value in labels.items():
        problem = label_problem(label, value)
        if problem:
            raise ObjectError(f"{key}:labels:{label}: {problem}")
    if not isinstance(taints, list):
        raise ObjectError(f"{key}:taints must be a list of {{key, value, effect}}")
    for i, taint in enumerate(taints):
        problem = taint_problem(taint)
        if problem:
            raise ObjectError(f"{key}:taints:{i}: {problem}")


def tolerations(taints: list) -> list[dict]:
    """The tolerations of a pod that may run on nodes with ``taints``."""
    out = []
    for t in taints:
        if t.get("value") is None:
            out.append({"key": t["key"], "operator": "Exists", "effect": t["effect"]})
        else:
            out.append({"key": t["key"], "operator": "Equal", "value": str(t["value"]),
                        "effect": t["effect"]})
    return out


def tolerated(taint: dict, tols: list[dict]) -> bool:
    """Whether a pod with tolerations ``tols`` can be on a node with ``taint``."""
    for t in tols:
        if t.get("effect") not in (None, "", taint["effect"]):
            continue
        if t.get("operator") == "Exists" and t.get("key") in (None, "", taint["key"]):
            return True
        if t.get("key") == taint["key"] and str(t.get("value", "")) == str(
                taint.get("value") or ""):
            return True
    return False


# =========================================================================== settings


def kubernetes_settings(pillar: dict, defaults: dict) -> dict:
    """The kubernetes formula's roles merged over their defaults, and what follows from
    them: {common, master, pool, k8s: {minor, images, server, service_ip, fqdn,
    is_master}}."""
    d = defaults["kubernetes"]
    common = merge(d["common"], get(pillar, "kubernetes:common", {}) or {})
    master = merge(d["master"], get(pillar, "kubernetes:master", {}) or {})
    pool = merge(d["pool"], get(pillar, "kubernetes:pool", {}) or {})
    minor = ".".join(str(common["version"]).split(".")[:2])
    if minor not in common["images"]:
        raise ObjectError(
            f"kubernetes:common:images has no entry for Kubernetes {minor} (version "
            f"{common['version']}): add its pause and coredns tags to the formula's defaults")
    cluster = common["cluster"]
    net = (cluster["service_cidr"] or "0.0.0.0/0").split("/")[0].split(".")
    k8s = {
        "minor": minor,
        "images": common["images"][minor],
        "server": f"https://{cluster['api']['vip']}:{cluster['api']['port']}",
        "service_ip": ".".join(net[:3]) + "." + str(int(net[3]) + 1),
        "fqdn": f"{common['hostname']}.{get(pillar, 'linux:system:domain', '')}",
        "is_master": master["enabled"],
    }
    if pool["enabled"]:
        check_node_placement(pool["labels"], pool["taints"], "kubernetes:pool")
    # the kubelet's --node-labels (empty: no flag)
    k8s["node_labels"] = ",".join(f"{k}={v}" for k, v in sorted(pool["labels"].items()))
    k8s["kubelet_swap"] = kubelet_swap(common["swap"])
    if master["enabled"]:
        k8s["audit"] = audit_settings(master["audit"])
    return {"common": common, "master": master, "pool": pool, "k8s": k8s}


SWAP_BEHAVIORS = ("NoSwap", "LimitedSwap")


def kubelet_swap(swap: dict) -> dict:
    """The KubeletConfiguration fields that follow kubernetes:common:swap: failSwapOn
    where swap is turned off (the kubelet refuses to start on a node that has some), else
    the kubelet tolerates it and memorySwap says what pods get."""
    if not isinstance(swap.get("disabled"), bool):
        raise ObjectError(f"kubernetes:common:swap:disabled is {swap.get('disabled')!r}, "
                          "expected true or false")
    if swap["disabled"]:
        return {"failSwapOn": True}
    if swap.get("behavior") not in SWAP_BEHAVIORS:
        raise ObjectError(f"kubernetes:common:swap:behavior is {swap.get('behavior')!r}, "
                          f"expected one of {', '.join(SWAP_BEHAVIORS)}")
    return {"failSwapOn": False, "memorySwap": {"swapBehavior": swap["behavior"]}}


# =========================================================================== audit

AUDIT_KEY = "kubernetes:master:audit"
AUDIT_LEVELS = ("None", "Metadata", "Request", "RequestResponse")
# (group, resource) whose bodies hold credentials or secret values: Metadata at most
AUDIT_SENSITIVE = (("", "secrets"), ("", "configmaps"), ("", "serviceaccounts/token"),
                   ("authentication.k8s.io", "tokenreviews"))
# what narrows a rule to some requests: a rule without them matches every request it names
AUDIT_NARROWING = ("users", "userGroups", "verbs", "namespaces")


def _names_resource(entry: dict, resource: str) -> bool:
    """Whether a rule's resources entry (its group already matched) covers resource."""
    names = entry.get("resources") or []
    if not names or "*" in names or resource in names:
        return True
    parent, _, sub = resource.partition("/")
    return bool(sub) and (f"{parent}/*" in names or f"*/{sub}" in names)


def audit_rule_match(rule: dict, group: str, resource: str) -> str:
    """How an audit rule matches requests on group/resource: "all" (every such request
    reaches it and stops there), "some" (those of some users, verbs, namespaces or names),
    or "" (none)."""
    if "resources" not in rule:
        if rule.get("nonResourceURLs"):
            return ""
        entries = [{}]
    else:
        entries = [e for e in rule["resources"] or []
                   if str(e.get("group", "")) in (group, "*") and _names_resource(e, resource)]
    if not entries:
        return ""
    narrowed = any(rule.get(k) for k in AUDIT_NARROWING) or \
        all(e.get("resourceNames") for e in entries)
    return "some" if narrowed else "all"


def audit_policy(audit: dict) -> dict:
    """The audit.k8s.io/v1 Policy of kubernetes:master:audit:rules, checked: every rule a
    mapping with a known level, and no request on what holds credentials reaching a rule
    that logs its body (Request, RequestResponse) before one that logs Metadata at most."""
    rules = audit.get("rules")
    if not isinstance(rules, list) or not rules:
        raise ObjectError(f"{AUDIT_KEY}:rules must be a non-empty list of audit rules")
    for i, rule in enumerate(rules):
        where = f"{AUDIT_KEY}:rules:{i}"
        if not isinstance(rule, dict):
            raise ObjectError(f"{where} is {type(rule).__name__}, expected a mapping")
        if rule.get("level") not in AUDIT_LEVELS:
            raise ObjectError(f"{where}:level is {rule.get('level')!r}, expected one of "
                              f"{', '.join(AUDIT_LEVELS)}")
    for group, resource in AUDIT_SENSITIVE:
        for i, rule in enumerate(rules):
            match = audit_rule_match(rule, group, resource)
            if not match:
                continue
            if rule["level"] in ("Request", "RequestResponse"):
                raise ObjectError(
                    f"{AUDIT_KEY}:rules:{i}: level {rule['level']} would log the bodies of "
                    f"{resource} ({group or 'core'} group): put a rule at Metadata for them "
                    "before it")
            if match == "all":
                break
    return {"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
            "omitStages": ["RequestReceived"], "rules": copy.deepcopy(rules)}


def audit_settings(audit: dict) -> dict:
    """{enabled, policy, policy_path, log_path, flags, sha256} of the apiserver's audit
    log, or {enabled: False}."""
    if not audit.get("enabled"):
        return {"enabled": False}
    for key in ("max_age", "max_backup", "max_size"):
        value = audit.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ObjectError(f"{AUDIT_KEY}:{key} is {value!r}, expected a whole number >= 0")
    for key in ("dir", "log_dir"):
        if not str(audit.get(key) or "").startswith("/"):
            raise ObjectError(f"{AUDIT_KEY}:{key} is {audit.get(key)!r}, expected an "
                              "absolute path")
    policy = audit_policy(audit)
    policy_path = f"{audit['dir']}/{audit['policy_file']}"
    log_path = f"{audit['log_dir']}/{audit['log_file']}"
    return {
        "enabled": True, "policy": policy, "dir": audit["dir"], "log_dir": audit["log_dir"],
        "policy_path": policy_path, "log_path": log_path,
        "flags": {"audit-policy-file": policy_path, "audit-log-path": log_path,
                  "audit-log-maxage": str(audit["max_age"]),
                  "audit-log-maxbackup": str(audit["max_backup"]),
                  "audit-log-maxsize": str(audit["max_size"])},
        # in the apiserver pod's annotations: it reads the policy only when it starts, so a
        # changed policy changes the manifest and the kubelet restarts the pod
        "sha256": sha256(to_json(policy)),
    }


IPV4_LIKE = re.compile(r"^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$")


def calico_settings(pillar: dict, defaults: dict) -> dict:
    """calico:node merged over its defaults, what follows from it, and the model checks
    (an inconsistent BGP topology is an error naming the key, never a silent fix):
    {node, pki: {ca, cert, key}, etcd_endpoints, images, is_master, is_applier}."""
    node = merge(defaults["calico"]["node"], get(pillar, "calico:node", {}) or {})
    if not node["name"]:
        node["name"] = get(pillar, "linux:system:name")
    pki = {"ca": f"{node['pki_dir']}/ca.crt", "cert": f"{node['pki_dir']}/etcd-client.crt",
           "key": f"{node['pki_dir']}/etcd-client.key"}
    endpoints = ",".join(f"https://{m['host']}:{node['etcd']['port']}"
                         for m in node["etcd"]["members"])
    tag = f"v{node['version']}"
    image = node["image"]
    images = {part: f"{image['registry']}/{image[part]}:{tag}"
              for part in ("node", "cni", "kube_controllers")}
    is_master = bool(get(pillar, "kubernetes:master:enabled", False))
    masters = get(pillar, "kubernetes:common:masters", []) or []
    if node["enabled"]:
        check_calico(node, get(pillar, "linux:network:host", {}) or {})
        problem = autodetection_problem(node["ip_autodetection_method"],
                                        get(pillar, "kubernetes:common:cluster:api:vip"))
        if problem:
            raise ObjectError(f"calico:node:ip_autodetection_method: {problem}")
    return {"node": node, "pki": pki, "etcd_endpoints": endpoints, "images": images,
            "is_master": is_master,
            "is_applier": is_master and (not masters or masters[0]["name"] == node["name"])}


# calico-node's IP_AUTODETECTION_METHOD forms (node/pkg/lifecycle/startup/autodetection)
AUTODETECTION_PREFIXES = ("can-reach=", "interface=", "skip-interface=", "cidr=")
AUTODETECTION_WORDS = ("first-found", "kubernetes-internal-ip")


def autodetection_problem(method, vip) -> str:
    """Why calico-node's address detection ``method`` is wrong here, or "".

    The API's virtual IP moves between the masters (VRRP): a method that can pick it makes
    the VIP holder register the VIP as its BGP address, and calico-node on the next
    holder stops on the address conflict after a failover. ``can-reach=<VIP>`` and a
    ``cidr=`` that contains the VIP are refused; so is a form calico-node does not know
    (it exits on one)."""
    import ipaddress

    method = str(method or "")
    if method not in AUTODETECTION_WORDS and not method.startswith(AUTODETECTION_PREFIXES):
        return (f"'{method}' is not a method calico-node knows: use kubernetes-internal-ip "
                "(the kubelet's node IP), cidr=<networks>, interface=<regex>, "
                "skip-interface=<regex>, can-reach=<address> or first-found")
    value = method.split("=", 1)[1].strip() if "=" in method else ""
    try:
        ip = ipaddress.ip_address(str(vip)) if vip else None
    except ValueError:
        ip = None
    if method.startswith("can-reach=") and ip is not None and value == str(ip):
        return (f"'{method}' makes the VRRP master speak BGP from the API VIP {ip}: use "
                "kubernetes-internal-ip or a cidr= without the VIP")
    if method.startswith("cidr="):
        for part in (p.strip() for p in value.split(",")):
            try:
                net = ipaddress.ip_network(part, strict=False)
            except ValueError:
                return f"'{method}': {part!r} is not a network"
            if ip is not None and ip.version == net.version and ip in net:
                return (f"'{method}': {net} contains the API VIP {ip}, which the VRRP master "
                        "would register as its BGP address: use kubernetes-internal-ip or a "
                        "CIDR without the VIP")
    return ""


def bgp_mesh_problem(bgp: dict) -> str:
    """Why calico:node:bgp's topology is wrong (the full mesh together with route
    reflectors), or "". The model check (stacksalt model check) asks this very function.

    Every node peers with the route reflectors through one BGPPeer (selector
    ``<label> == 'true'``); with nodeToNodeMeshEnabled still on each node would also keep
    a session with every other node, so the reflectors buy nothing and the mesh's session
    count stays. Calico's route reflector guide has the mesh turned off first."""
    reflectors = [str(rr.get("node")) if isinstance(rr, dict) else str(rr)
                  for rr in bgp.get("route_reflectors") or []]
    if not reflectors or not bgp.get("node_to_node_mesh"):
        return ""
    return (f"node_to_node_mesh is true but route_reflectors are set "
            f"({', '.join(reflectors)}): with route reflectors the full mesh "
            "(nodeToNodeMeshEnabled) must be off; set it to false")


def check_calico(node: dict, hosts: dict) -> None:
    bgp = node["bgp"]
    if not node["version"]:
        raise ObjectError("calico:node:version is not set (_param:calico_version)")
    if not node["etcd"]["members"]:
        raise ObjectError("calico:node:etcd:members is empty (_param:etcd_members): Calico "
                          "needs its etcd datastore")
    if not node["ippool"]["cidr"]:
        raise ObjectError("calico:node:ippool:cidr is not set (_param:kubernetes_pod_cidr)")
    problem = bgp_mesh_problem(bgp)
    if problem:
        raise ObjectError(f"calico:node:bgp: {problem} (in the model: _param:calico_bgp_mesh)")
    names = []
    for peer in bgp["peers"]:
        for key in ("name", "peer_ip", "as_number"):
            if peer.get(key) is None:
                raise ObjectError(f"calico:node:bgp:peers: entry {to_json(peer)} has no {key}")
        if peer.get("node") and peer.get("node_selector"):
            raise ObjectError(
                f"calico:node:bgp:peers: {peer['name']} sets both node and node_selector: a "
                "peer is for one node (node) or for the nodes a selector picks (node_selector)")
        if peer.get("node") and hosts and peer["node"] not in hosts:
            raise ObjectError(
                f"calico:node:bgp:peers: {peer['name']} names node {peer['node']}, which is "
                "not in the host table (linux:network:host)")
        names.append(peer["name"])
    if "peer-with-route-reflectors" in names or len(set(names)) != len(names):
        raise ObjectError("calico:node:bgp:peers: names must be unique and not "
                          f"peer-with-route-reflectors: {to_json(names)}")
    for rr in bgp["route_reflectors"]:
        if not rr.get("node") or not IPV4_LIKE.match(str(rr.get("cluster_id"))):
            raise ObjectError(f"calico:node:bgp:route_reflectors: entry {to_json(rr)} needs "
                              "node and an IPv4-like cluster_id")
        if hosts and rr["node"] not in hosts:
            raise ObjectError(f"calico:node:bgp:route_reflectors: {rr['node']} is not in the "
                              "host table (linux:network:host)")


def control_settings(pillar: dict, defaults: dict) -> dict:
    """kubernetes:control merged over its defaults; the model's node_groups, when it
    names any, replace the default groups (each group's labels are the whole
    nodeSelector: merged over the defaults' they could only grow)."""
    control = merge(defaults["control"], get(pillar, "kubernetes:control", {}) or {})
    groups = get(pillar, "kubernetes:control:node_groups")
    if groups:
        control["node_groups"] = {name: merge({"labels": {}, "taints": []}, g or {})
                                  for name, g in groups.items()}
    return control


def placement(control: dict, name: str, r: dict) -> tuple[dict, list[dict]]:
    """(nodeSelector, tolerations) of role ``name``: the labels and taints of the node
    group its ``nodes`` names (kubernetes:control:node_groups)."""
    groups = control.get("node_groups") or {}
    group = r.get("nodes")
    if group not in groups:
        raise ObjectError(
            f"kubernetes:control:service:{name}:nodes is {group!r}, which is not a group of "
            f"kubernetes:control:node_groups ({', '.join(sorted(groups)) or 'none'})")
    g = groups[group]
    check_node_placement(g["labels"], g["taints"], f"kubernetes:control:node_groups:{group}")
    return dict(g["labels"]), tolerations(g["taints"])


def role_settings(control: dict, spec: dict | None) -> dict:
    """One kubernetes:control:service:<role> merged over the role defaults."""
    return merge(control["role"], spec if isinstance(spec, dict) else {})


def openstack_roles(control: dict) -> dict[str, dict]:
    """Every enabled kubernetes:control:service:<role>, merged over the role defaults
    (``control:role``), by (order, name). The model checks read these: no default of the
    role schema is written anywhere else."""
    roles = {}
    for name, spec in (control.get("service") or {}).items():
        merged = role_settings(control, spec)
        if not merged["enabled"]:
            continue
        if merged.get("order") is None:
            raise ObjectError(
                f"kubernetes:control:service:{name}:order is not set: give the role its place "
                "in the apply order (10 infrastructure, 20 keystone, 30/40 the rest)")
        roles[name] = merged
    return dict(sorted(roles.items(), key=lambda kv: (int(kv[1]["order"]), kv[0])))


def objects_settings(k: dict) -> dict:
    """kubernetes:master:objects with the tool paths filled in."""
    objects = dict(k["master"]["objects"])
    common = k["common"]
    objects["kubectl"] = objects.get("kubectl") or f"{common['binaries']['bin_dir']}/kubectl"
    objects["kubeconfig"] = objects.get("kubeconfig") or f"{common['config_dir']}/admin.conf"
    objects["super_admin_kubeconfig"] = (objects.get("super_admin_kubeconfig")
                                         or f"{common['config_dir']}/super-admin.conf")
    masters = [m["name"] for m in common.get("masters") or []]
    objects["applier"] = objects.get("applier") or (masters[0] if masters else
                                                     common["hostname"])
    return objects


# =========================================================================== the plan


class Builder:
    """Collects files and steps, in order."""

    def __init__(self):
        self.files: list[dict] = []
        self.steps: list[dict] = []

    def add(self, component: str, path: str, obj: dict, *, tool: str = "kubectl",
            action: str = "apply", wait: str = "none", timeout: int | None = None,
            role: str = "", secret: bool = False, namespace: str | None = None,
            unless_exists: str | None = None, await_exists: bool = False,
            later: bool = False, credentials: str | None = None) -> dict:
        """The object's file, and its step: appended to the plan now, or (``later``)
        returned for the caller to place with ``self.steps.append``. ``credentials``
        "super-admin": kubectl uses the plan's super_admin_kubeconfig for this step (the
        apply state allows it for a ClusterRoleBinding only)."""
        self.files.append({"file": path, "object": obj, "secret": secret,
                           "mode": "0600" if secret else "0644"})
        meta = obj.get("metadata") or {}
        s = {"name": f"{obj['kind'].lower()}/{meta['name']}", "component": component,
             "tool": tool, "action": action, "kind": obj["kind"], "object": meta["name"],
             "namespace": meta.get("namespace", "") if namespace is None else namespace,
             "file": path, "wait": wait, "role": role}
        if timeout is not None:
            s["timeout"] = int(timeout)
        if unless_exists:
            s["unless_exists"] = unless_exists
        if await_exists:
            s["await"] = "exists"
        if credentials:
            s["credentials"] = credentials
        if not later:
            self.steps.append(s)
        return s

    def dirs(self) -> dict[str, str]:
        """{directory relative to the plan's: mode}: 0700 where a file with secret values
        lies, 0755 elsewhere (parents included)."""
        out: dict[str, str] = {}
        for f in self.files:
            parts = f["file"].split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.setdefault("/".join(parts[:i]), "0755")
        for f in self.files:
            if f["secret"]:
                out[f["file"].rsplit("/", 1)[0]] = "0700"
        return dict(sorted(out.items()))

    def plan(self, objects: dict, tools: dict, control: dict | None = None) -> dict:
        """The apply plan; with the OpenStack roles (``control``), the release they roll
        out and whether an older one may replace a newer (the apply state's downgrade
        refusal)."""
        seen = set()
        for s in self.steps:
            if s["name"] in seen:
                raise ObjectError(f"two objects are {s['name']}: every object of the plan needs "
                                  "its own kind and name")
            seen.add(s["name"])
        out = {"rollout_timeout": int(objects["rollout_timeout"]), "tools": tools}
        release = (control or {}).get("release")
        if release:
            series = (control.get("release_series") or {}).get(release)
            if not isinstance(series, str) or not series:
                raise ObjectError(
                    f"kubernetes:control:release_series has no series for release {release!r} "
                    f"(known: {', '.join(sorted(control.get('release_series') or {})) or 'none'})"
                    ": add it to _param:openstack_release_series (system.openstack.release)")
            out["release"] = {"name": str(release), "series": series}
            out["allow_downgrade"] = bool(control.get("allow_downgrade"))
        return {**out, "steps": self.steps}


def build(pillar: dict, defaults: dict) -> dict:
    """Every object this node writes for the cluster, and the plan that applies them.

    {dir, files: [{file, object, secret, mode}], dirs: {relative dir: mode}, plan: {...},
     apply, applier, components}; ``files`` and ``plan`` are empty where the node is not
    a Kubernetes master (nor renders the OpenStack roles)."""
    control = control_settings(pillar, defaults)
    if not get(pillar, "kubernetes:master:enabled") and not control["enabled"]:
        master = defaults["kubernetes"]["master"]["objects"]
        return {"dir": master["dir"], "plan_file": master["plan_file"], "files": [],
                "dirs": {}, "plan": {}, "apply": False, "applier": None, "components": []}
    k = kubernetes_settings(pillar, defaults)
    objects = objects_settings(k)
    b = Builder()
    components = []
    tools = {"kubectl": {"binary": objects["kubectl"], "kubeconfig": objects["kubeconfig"]}}
    if k["master"]["enabled"]:
        add_cluster_admins(b, k)
        tools["kubectl"]["super_admin_kubeconfig"] = objects["super_admin_kubeconfig"]
        components.append("kubernetes")
        calico = calico_settings(pillar, defaults)
        if calico["node"]["enabled"]:
            add_calico(b, calico, objects)
            ctl = calico["node"]["calicoctl"]
            tools["calicoctl"] = {"binary": f"{ctl['bin_dir']}/calicoctl",
                                  "config": f"{calico['node']['config_dir']}/calicoctl.cfg"}
            components.append("calico")
        if k["master"]["addons"]["coredns"]["enabled"]:
            add_coredns(b, k, objects)
            components.append("coredns")
    if control["enabled"]:
        add_openstack(b, control, get(pillar, "docker:build:image", {}) or {},
                      get(pillar, "secrets", {}) or {}, pillar)
        components.append("openstack")
    return {"dir": objects["dir"], "plan_file": objects["plan_file"], "files": b.files,
            "dirs": b.dirs(),
            "plan": b.plan(objects, tools, control if control["enabled"] else None)
            if b.steps else {},
            "apply": bool(objects["apply"]), "applier": objects["applier"],
            "components": components}


# =========================================================================== admin.conf

# system:masters passes every authorization check, RBAC cannot revoke it: kubeadm (>= 1.29)
# gives it to super-admin.conf only (break-glass), admin.conf a group bound by RBAC.
SUPERUSER_GROUP = "system:masters"
RBAC_API = "rbac.authorization.k8s.io"


def cluster_admins_binding(k: dict) -> dict:
    """The ClusterRoleBinding of admin.conf's group to cluster-admin, named after the
    group as kubeadm names it (kubeadm:cluster-admins)."""
    group = k["master"]["admin"]["O"]
    if not group or group == SUPERUSER_GROUP:
        raise ObjectError(
            f"kubernetes:master:admin:O is {group!r}: admin.conf needs a group RBAC binds "
            f"(kubeadm:cluster-admins); {SUPERUSER_GROUP} is super-admin.conf's "
            "(kubernetes:master:super_admin:O), break-glass only")
    if k["master"]["super_admin"]["O"] != SUPERUSER_GROUP:
        raise ObjectError(
            f"kubernetes:master:super_admin:O is {k['master']['super_admin']['O']!r}: "
            f"super-admin.conf creates admin.conf's binding, it must be {SUPERUSER_GROUP}")
    return {
        "apiVersion": f"{RBAC_API}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": group},
        "roleRef": {"apiGroup": RBAC_API, "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": RBAC_API, "kind": "Group", "name": group}],
    }


def add_cluster_admins(b: Builder, k: dict) -> None:
    """The plan's first step: admin.conf's group gets cluster-admin, applied with
    super-admin.conf (admin.conf can do nothing before it exists; kubeadm's
    EnsureAdminClusterRoleBinding falls back to super-admin.conf the same way). Every
    later step, and the /readyz poll before the first (system:public-info-viewer allows
    it to anyone authenticated), uses admin.conf."""
    obj = cluster_admins_binding(k)
    b.add("kubernetes", "kubernetes/" + file_name(obj["kind"], obj["metadata"]["name"]), obj,
          credentials="super-admin")


# =========================================================================== Calico


def calico_resources(calico: dict) -> tuple[list[dict], list[dict]]:
    """Calico's own resources from the model: (resources for calicoctl apply, Node
    changes for the route reflectors)."""
    node = calico["node"]
    bgp, pool = node["bgp"], node["ippool"]
    resources = [
        {"apiVersion": CALICO_API, "kind": "IPPool", "metadata": {"name": pool["name"]},
         "spec": {"cidr": pool["cidr"], "blockSize": int(pool["block_size"]),
                  "ipipMode": pool["ipip_mode"], "vxlanMode": pool["vxlan_mode"],
                  "natOutgoing": pool["nat_outgoing"], "nodeSelector": pool["node_selector"]}},
        {"apiVersion": CALICO_API, "kind": "BGPConfiguration", "metadata": {"name": "default"},
         "spec": {"logSeverityScreen": node["log_severity"],
                  "nodeToNodeMeshEnabled": bgp["node_to_node_mesh"],
                  "asNumber": int(bgp["as_number"])}},
    ]
    for peer in bgp["peers"]:
        spec = {"peerIP": peer["peer_ip"], "asNumber": int(peer["as_number"])}
        if peer.get("node"):
            spec["node"] = peer["node"]
        elif peer.get("node_selector"):
            # the nodes that peer with it, by their labels (one ToR per rack: one entry)
            spec["nodeSelector"] = peer["node_selector"]
        resources.append({"apiVersion": CALICO_API, "kind": "BGPPeer",
                          "metadata": {"name": peer["name"]}, "spec": spec})
    patches = []
    if bgp["route_reflectors"]:
        label = bgp["route_reflector_label"]
        for rr in bgp["route_reflectors"]:
            patches.append({"apiVersion": CALICO_API, "kind": "Node",
                            "metadata": {"name": rr["node"], "labels": {label: "true"}},
                            "spec": {"bgp": {"routeReflectorClusterID": rr["cluster_id"]}}})
        resources.append({"apiVersion": CALICO_API, "kind": "BGPPeer",
                          "metadata": {"name": "peer-with-route-reflectors"},
                          "spec": {"nodeSelector": "all()",
                                   "peerSelector": f"{label} == 'true'"}})
    return resources, patches


def calico_kubernetes_objects(calico: dict) -> list[dict]:
    """calico-node DaemonSet, calico-kube-controllers Deployment, then for calico-node,
    calico-cni-plugin and calico-kube-controllers a ServiceAccount, ClusterRole and
    ClusterRoleBinding each. etcd TLS material is never put into an object: every pod
    mounts the node's own client certificate from the host (hostPath, read-only)."""
    node, pki = calico["node"], calico["pki"]
    ns, images, pull = node["namespace"], calico["images"], node["image"]["pull_policy"]
    mtu = str(node["mtu"])
    etcd_env = [
        {"name": "DATASTORE_TYPE", "value": "etcdv3"},
        {"name": "ETCD_ENDPOINTS", "value": calico["etcd_endpoints"]},
        {"name": "ETCD_CA_CERT_FILE", "value": pki["ca"]},
        {"name": "ETCD_CERT_FILE", "value": pki["cert"]},
        {"name": "ETCD_KEY_FILE", "value": pki["key"]},
    ]
    pki_volume = {"name": "etcd-pki", "hostPath": {"path": node["pki_dir"], "type": "Directory"}}
    pki_mount = {"name": "etcd-pki", "mountPath": node["pki_dir"], "readOnly": True}
    # The Calico node name is the Kubernetes node name (route reflectors and per-node
    # peers name nodes by it). CALICO_MANAGE_CNI: calico-node keeps the CNI plugin's
    # kubeconfig (calico-kubeconfig, next to Salt's conflist) supplied with a fresh token.
    node_ref = {"fieldRef": {"fieldPath": "spec.nodeName"}}
    env_node = etcd_env + [
        {"name": "NODENAME", "valueFrom": node_ref},
        {"name": "CALICO_K8S_NODE_REF", "valueFrom": node_ref},
        {"name": "CALICO_MANAGE_CNI", "value": "true"},
        {"name": "WAIT_FOR_DATASTORE", "value": "true"},
        {"name": "CALICO_NETWORKING_BACKEND", "value": "bird"},
        {"name": "CLUSTER_TYPE", "value": "k8s,bgp"},
        {"name": "IP", "value": "autodetect"},
        {"name": "IP_AUTODETECTION_METHOD", "value": node["ip_autodetection_method"]},
        {"name": "NO_DEFAULT_POOLS", "value": "true"},
        {"name": "CALICO_IPV4POOL_IPIP", "value": "Never"},
        {"name": "CALICO_IPV4POOL_VXLAN", "value": "Never"},
        {"name": "CALICO_IPV6POOL_VXLAN", "value": "Never"},
        {"name": "FELIX_IPINIPMTU", "value": mtu},
        {"name": "FELIX_VXLANMTU", "value": mtu},
        {"name": "FELIX_WIREGUARDMTU", "value": mtu},
        {"name": "CALICO_DISABLE_FILE_LOGGING", "value": "true"},
        {"name": "FELIX_LOGSEVERITYSCREEN", "value": node["log_severity"]},
        {"name": "FELIX_DEFAULTENDPOINTTOHOSTACTION", "value": "ACCEPT"},
        {"name": "FELIX_IPV6SUPPORT", "value": "false"},
        {"name": "FELIX_HEALTHENABLED", "value": "true"},
    ]
    cni = node["cni"]
    hostpath = {
        "lib-modules": {"path": "/lib/modules"},
        "var-run-calico": {"path": "/var/run/calico", "type": "DirectoryOrCreate"},
        "var-lib-calico": {"path": "/var/lib/calico", "type": "DirectoryOrCreate"},
        "xtables-lock": {"path": "/run/xtables.lock", "type": "FileOrCreate"},
        "cni-bin-dir": {"path": cni["bin_dir"], "type": "DirectoryOrCreate"},
        "cni-net-dir": {"path": cni["conf_dir"], "type": "DirectoryOrCreate"},
        "cni-log-dir": {"path": cni["log_dir"], "type": "DirectoryOrCreate"},
        "policysync": {"path": "/var/run/nodeagent", "type": "DirectoryOrCreate"},
    }
    volumes = [pki_volume] + [{"name": name, "hostPath": host}
                              for name, host in sorted(hostpath.items())]
    # install-cni only installs the CNI binaries on the host: the conflist it would write
    # goes to a scratch directory, so the one Salt writes from the model stays in force.
    volumes.append({"name": "cni-scratch", "emptyDir": {}})
    daemonset = {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "calico-node", "namespace": ns, "labels": {"k8s-app": "calico-node"}},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "calico-node"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"k8s-app": "calico-node"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "hostNetwork": True,
                    "tolerations": [
                        {"effect": "NoSchedule", "operator": "Exists"},
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"effect": "NoExecute", "operator": "Exists"},
                    ],
                    "serviceAccountName": "calico-node",
                    "terminationGracePeriodSeconds": 0,
                    "priorityClassName": "system-node-critical",
                    "initContainers": [{
                        "name": "install-cni", "image": images["cni"],
                        "imagePullPolicy": pull, "command": ["/opt/cni/bin/install"],
                        "env": [{"name": "CNI_CONF_NAME", "value": cni["conf_name"]},
                                {"name": "SLEEP", "value": "false"}],
                        "volumeMounts": [
                            {"name": "cni-bin-dir", "mountPath": "/host/opt/cni/bin"},
                            {"name": "cni-scratch", "mountPath": "/host/etc/cni/net.d"},
                        ],
                        "securityContext": {"privileged": True},
                    }],
                    "containers": [{
                        "name": "calico-node", "image": images["node"], "imagePullPolicy": pull,
                        "env": env_node,
                        "securityContext": {"privileged": True},
                        "resources": {"requests": {"cpu": "250m"}},
                        "lifecycle": {"preStop": {"exec": {
                            "command": ["/bin/calico-node", "-shutdown"]}}},
                        "livenessProbe": {
                            "exec": {"command": ["/bin/calico-node", "-felix-live", "-bird-live"]},
                            "periodSeconds": 10, "initialDelaySeconds": 10,
                            "failureThreshold": 6, "timeoutSeconds": 10},
                        "readinessProbe": {
                            "exec": {"command": ["/bin/calico-node", "-felix-ready",
                                                 "-bird-ready"]},
                            "periodSeconds": 10, "timeoutSeconds": 10},
                        "volumeMounts": [
                            pki_mount,
                            {"name": "cni-net-dir", "mountPath": "/host/etc/cni/net.d"},
                            {"name": "lib-modules", "mountPath": "/lib/modules", "readOnly": True},
                            {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
                            {"name": "var-run-calico", "mountPath": "/var/run/calico"},
                            {"name": "var-lib-calico", "mountPath": "/var/lib/calico"},
                            {"name": "policysync", "mountPath": "/var/run/nodeagent"},
                            {"name": "cni-log-dir", "mountPath": "/var/log/calico/cni",
                             "readOnly": True},
                        ],
                    }],
                    "volumes": volumes,
                },
            },
        },
    }
    # calico-kube-controllers reads the node's etcd client key, root's (0600) on the host,
    # so it runs as root (Calico's manifest runs it as non-root with the key in a Secret).
    kube_controllers = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "calico-kube-controllers", "namespace": ns,
                     "labels": {"k8s-app": "calico-kube-controllers"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"k8s-app": "calico-kube-controllers"}},
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": {"k8s-app": "calico-kube-controllers"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                    ],
                    "serviceAccountName": "calico-kube-controllers",
                    "priorityClassName": "system-cluster-critical",
                    "hostNetwork": True,
                    "containers": [{
                        "name": "calico-kube-controllers", "image": images["kube_controllers"],
                        "imagePullPolicy": pull,
                        "env": etcd_env + [{
                            "name": "ENABLED_CONTROLLERS",
                            "value": "policy,namespace,serviceaccount,workloadendpoint,node"}],
                        "volumeMounts": [pki_mount],
                        "livenessProbe": {
                            "exec": {"command": ["/usr/bin/check-status", "-l"]},
                            "periodSeconds": 10, "initialDelaySeconds": 10,
                            "failureThreshold": 6, "timeoutSeconds": 10},
                        "readinessProbe": {
                            "exec": {"command": ["/usr/bin/check-status", "-r"]},
                            "periodSeconds": 10},
                        "securityContext": {"runAsUser": 0, "runAsNonRoot": False},
                    }],
                    "volumes": [pki_volume],
                },
            },
        },
    }
    rules = {
        "calico-node": [
            {"apiGroups": [""], "resources": ["serviceaccounts/token"],
             "resourceNames": ["calico-cni-plugin"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["pods", "nodes", "namespaces"], "verbs": ["get"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
             "verbs": ["watch", "list"]},
            {"apiGroups": [""], "resources": ["endpoints", "services"], "verbs": ["watch", "list"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
        ],
        "calico-cni-plugin": [
            {"apiGroups": [""], "resources": ["pods", "nodes", "namespaces"], "verbs": ["get"]},
        ],
        "calico-kube-controllers": [
            {"apiGroups": [""], "resources": ["pods", "nodes", "namespaces", "serviceaccounts"],
             "verbs": ["watch", "list", "get"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
             "verbs": ["watch", "list"]},
        ],
    }
    out = [daemonset, kube_controllers]
    for name, rule in rules.items():
        out.append({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": name, "namespace": ns}})
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": name}, "rules": rule})
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": name},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": name},
                    "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]})
    return out


RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def add_calico(b: Builder, calico: dict, objects: dict) -> None:
    """Calico in the plan: its resources (calicoctl, straight to etcd: the IP pool before
    any calico-node starts, it makes no default pool), its RBAC, calico-node (awaited:
    until it rolls out no pod has a network), calico-kube-controllers, then the route
    reflectors' Node changes, each once calico-node has registered that node."""
    timeout = objects["rollout_timeout"]
    resources, patches = calico_resources(calico)
    for obj in resources:
        b.add("calico", "calico/resources/" + file_name(obj["kind"], obj["metadata"]["name"]),
              obj, tool="calicoctl", namespace="")
    kube = calico_kubernetes_objects(calico)
    for obj in sorted((o for o in kube if o["kind"] in RBAC_KINDS),
                      key=lambda o: RBAC_KINDS.index(o["kind"])):
        b.add("calico", "calico/" + file_name(obj["kind"], obj["metadata"]["name"]), obj)
    for obj in (o for o in kube if o["kind"] not in RBAC_KINDS):
        b.add("calico", "calico/" + file_name(obj["kind"], obj["metadata"]["name"]), obj,
              wait="rollout", timeout=timeout)
    for obj in patches:
        b.add("calico", "calico/nodes/" + file_name(obj["kind"], obj["metadata"]["name"]), obj,
              tool="calicoctl", action="patch", namespace="", await_exists=True,
              timeout=timeout)


# =========================================================================== CoreDNS


def coredns_objects(k: dict) -> list[dict]:
    """CoreDNS as kubeadm deploys it."""
    common, master = k["common"], k["master"]
    domain = common["cluster"]["domain"]
    corefile = "\n".join([
        ".:53 {",
        "    errors",
        "    health {",
        "       lameduck 5s",
        "    }",
        "    ready",
        f"    kubernetes {domain} in-addr.arpa ip6.arpa {{",
        "       pods insecure",
        "       fallthrough in-addr.arpa ip6.arpa",
        "       ttl 30",
        "    }",
        "    prometheus :9153",
        "    forward . /etc/resolv.conf {",
        "       max_concurrent 1000",
        "    }",
        "    cache 30 {",
        f"       disable success {domain}",
        f"       disable denial {domain}",
        "    }",
        "    loop",
        "    reload",
        "    loadbalance",
        "}",
    ]) + "\n"
    ns = "kube-system"
    labels = {"k8s-app": "kube-dns"}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "coredns", "namespace": ns}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "system:coredns"},
         "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                    "verbs": ["list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "system:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "system:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": ns},
         "data": {"Corefile": corefile}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": ns,
                      "labels": {**labels, "kubernetes.io/cluster-service": "true",
                                 "kubernetes.io/name": "CoreDNS"},
                      "annotations": {"prometheus.io/port": "9153",
                                      "prometheus.io/scrape": "true"}},
         "spec": {"selector": dict(labels), "clusterIP": common["cluster"]["dns_ip"],
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                            {"name": "metrics", "port": 9153, "protocol": "TCP"}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "coredns", "namespace": ns, "labels": dict(labels)},
         "spec": {
             "replicas": master["addons"]["coredns"]["replicas"],
             "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
             "selector": {"matchLabels": dict(labels)},
             "template": {
                 "metadata": {"labels": dict(labels)},
                 "spec": {
                     "priorityClassName": "system-cluster-critical",
                     "serviceAccountName": "coredns",
                     "affinity": {"podAntiAffinity": {
                         "preferredDuringSchedulingIgnoredDuringExecution": [{
                             "weight": 100, "podAffinityTerm": {
                                 "labelSelector": {"matchExpressions": [
                                     {"key": "k8s-app", "operator": "In",
                                      "values": ["kube-dns"]}]},
                                 "topologyKey": "kubernetes.io/hostname"}}]}},
                     "tolerations": [
                         {"key": "CriticalAddonsOnly", "operator": "Exists"},
                         {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                     ],
                     "nodeSelector": {"kubernetes.io/os": "linux"},
                     "containers": [{
                         "name": "coredns",
                         "image": f"{common['image_registry']}/coredns/coredns:"
                                  f"{k['k8s']['images']['coredns']}",
                         "imagePullPolicy": "IfNotPresent",
                         "resources": {"limits": {"memory": "170Mi"},
                                       "requests": {"cpu": "100m", "memory": "70Mi"}},
                         "args": ["-conf", "/etc/coredns/Corefile"],
                         "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns",
                                           "readOnly": True}],
                         "ports": [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
                                   {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                                   {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}],
                         "securityContext": {
                             "allowPrivilegeEscalation": False,
                             "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                             "readOnlyRootFilesystem": True},
                         "livenessProbe": {
                             "httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"},
                             "initialDelaySeconds": 60, "timeoutSeconds": 5,
                             "successThreshold": 1, "failureThreshold": 5},
                         "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181,
                                                        "scheme": "HTTP"}},
                     }],
                     "dnsPolicy": "Default",
                     "volumes": [{"name": "config-volume", "configMap": {
                         "name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}],
                 },
             },
         }},
    ]


def add_coredns(b: Builder, k: dict, objects: dict) -> None:
    """CoreDNS after Calico (its pods need a pod network) and before OpenStack (whose
    pods resolve each other's Service names)."""
    for obj in coredns_objects(k):
        kind = obj["kind"]
        b.add("coredns", "coredns/" + file_name(kind, obj["metadata"]["name"]), obj,
              wait="rollout" if kind == "Deployment" else "none",
              timeout=objects["rollout_timeout"] if kind == "Deployment" else None)


# =========================================================================== OpenStack


def _key(name: str) -> str:
    return f"kubernetes:control:service:{name}"


def role_derived(name: str, r: dict, control: dict, images: dict, secrets: dict,
                 pillar: dict) -> dict:
    """The values of one role that follow from the model: image, tag, hashes, PDB."""
    build = images.get(r.get("image")) if r.get("image") else None
    if not r.get("image") or not build:
        raise ObjectError(f"{_key(name)}:image is '{r.get('image')}', which has no build "
                          "definition under docker:build:image: add it to the role's service "
                          "class")
    version = str(build["version"])
    baked = {path: get(pillar, path, {}) for path in build.get("pillar", [])}
    pod_secrets = {s: str(secrets[s]) for s in r["secret_env"].values()}
    replicas = int(r["replicas"])
    pdb = replicas - 1 if r["pdb_min_available"] is None else int(r["pdb_min_available"])
    return {
        "image": f"{control['registry']}/{control['image_namespace']}/{r['image']}:{version}",
        "version": version,
        "tag": re.sub(r"[^a-z0-9-]", "-", version.lower()),
        "config_hash": sha256(to_json(baked)),
        "secret_hash": sha256(to_json(pod_secrets)),
        "dir": f"{int(r['order']):02d}-{name}",
        "group": r.get("service") or name.split("-")[0],
        "pdb_min": max(pdb, 0),
        "replicas": replicas,
        "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "server"},
    }


def _env(r: dict, control: dict) -> list[dict]:
    env = [{"name": var, "value": str(value)} for var, value in sorted(r["env"].items())]
    env += [{"name": var, "valueFrom": {"secretKeyRef": {"name": control["secret_name"],
                                                          "key": secret}}}
            for var, secret in sorted(r["secret_env"].items())]
    return env


def _volumes(name: str, r: dict) -> tuple[list[dict], list[dict]]:
    volumes, mounts = [], []
    for vol, v in sorted(r["volumes"].items()):
        if v["type"] == "pvc":
            volumes.append({"name": vol, "persistentVolumeClaim": {"claimName": f"{name}-{vol}"}})
        elif v["type"] == "emptyDir":
            volumes.append({"name": vol, "emptyDir": {}})
        elif v["type"] == "hostPath":
            volumes.append({"name": vol, "hostPath": {"path": v["path"],
                                                      "type": "DirectoryOrCreate"}})
        else:
            raise ObjectError(f"{_key(name)}:volumes:{vol}:type is '{v['type']}': use pvc, "
                              "emptyDir or hostPath")
        mounts.append({"name": vol, "mountPath": v["path"]})
    return volumes, mounts


def _handler(name: str, cname: str, c: dict) -> dict:
    """One probe handler from the model's probe: {http: path} | {tcp: port} | {process}."""
    p = c.get("probe") or {}
    if p.get("http"):
        return {"httpGet": {"path": p["http"], "port": c.get("port")}}
    if p.get("tcp"):
        return {"tcpSocket": {"port": p["tcp"]}}
    if p.get("process"):
        # the process is alive: its command line is in /proc ([x]yz: the probe's own shell
        # and grep do not match themselves)
        pattern = f"[{p['process'][0]}]{p['process'][1:]}"
        return {"exec": {"command": [
            "/bin/sh", "-c", f"grep -qs -- '{pattern}' /proc/[0-9]*/cmdline"]}}
    raise ObjectError(f"{_key(name)}:containers:{cname}:probe is missing: give every container "
                      "http: <path>, tcp: <port name> or process: <name>")


def _container(name: str, r: dict, d: dict, cname: str, c: dict, mounts: list,
               control: dict) -> dict:
    h = _handler(name, cname, c)
    pr = r["probe"]
    timing = {"periodSeconds": pr["period"], "timeoutSeconds": pr["timeout"]}
    out = {
        "name": cname, "image": d["image"], "imagePullPolicy": "Always",
        "command": [control["entrypoint"], c["command"]],
        "env": _env(r, control), "volumeMounts": mounts,
        "startupProbe": {**h, **timing, "initialDelaySeconds": pr["initial_delay"],
                         "failureThreshold": pr["startup_failure_threshold"]},
        "readinessProbe": {**h, **timing, "failureThreshold": pr["failure_threshold"]},
        "livenessProbe": {**h, **timing, "failureThreshold": pr["liveness_failure_threshold"]},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(r["pre_stop_sleep"])]}}},
    }
    if c.get("port"):
        if c["port"] not in r["ports"]:
            raise ObjectError(f"{_key(name)}:containers:{cname}:port is '{c['port']}', which is "
                              "not a key of the role's ports")
        out["ports"] = [{"name": c["port"], "containerPort": int(r["ports"][c["port"]]),
                         "protocol": "TCP"}]
    if r["resources"]:
        out["resources"] = r["resources"]
    return out


def _job_container(r: dict, d: dict, job: str, mode: str, mounts: list, control: dict) -> dict:
    return {"name": f"{job}-{mode.replace('_', '-')}", "image": d["image"],
            "imagePullPolicy": "Always", "command": [control["entrypoint"], mode],
            "env": _env(r, control), "volumeMounts": mounts}


def _workload_spec(name: str, r: dict, d: dict, template: dict) -> dict:
    labels = d["labels"]
    if r["kind"] == "DaemonSet":
        # one pod per node: the old one goes before the new one starts (maxSurge 0)
        return {"selector": {"matchLabels": labels}, "template": template,
                "updateStrategy": {"type": "RollingUpdate",
                                   "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}}
    if r["kind"] != "Deployment":
        raise ObjectError(f"{_key(name)}:kind is '{r['kind']}': use Deployment or DaemonSet")
    if r["strategy"] == "Recreate":
        strategy = {"type": "Recreate"}
    elif r["strategy"] == "RollingUpdate":
        if int(r["max_surge"]) < 1:
            raise ObjectError(f"{_key(name)}:max_surge is {r['max_surge']}: a rolling update "
                              "with maxUnavailable 0 needs maxSurge >= 1")
        strategy = {"type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": int(r["max_surge"])}}
    else:
        raise ObjectError(f"{_key(name)}:strategy is '{r['strategy']}': use RollingUpdate or "
                          "Recreate")
    if d["replicas"] > 1:
        template["spec"]["affinity"] = {"podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                    "labelSelector": {"matchLabels": labels}}}]}}
    return {"replicas": d["replicas"], "selector": {"matchLabels": labels},
            "strategy": strategy, "revisionHistoryLimit": 5, "template": template}


def add_openstack(b: Builder, control: dict, images: dict, secrets: dict,
                  pillar: dict) -> None:
    """The OpenStack service-roles (formulas/kubernetes/control/README.md): the Namespace
    and the Secret, every PVC, then per role by order: Service, PDB, the bootstrap /
    expand / migrate Jobs, the workload; a service's contract Job after the workload of
    its last role."""
    ns = control["namespace"]
    part_of = {"app.kubernetes.io/part-of": "openstack", "app.kubernetes.io/managed-by": "salt"}
    timeout = int(control["rollout_timeout"])
    roles = openstack_roles(control)
    top = "openstack/"

    b.add("openstack", f"{top}00-namespace/namespace-{ns}.yaml",
          {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": part_of}})
    used = []
    for name, r in roles.items():
        for var, secret in r["secret_env"].items():
            if secret not in secrets:
                raise ObjectError(
                    f"{_key(name)}:secret_env:{var} names secret '{secret}', which the secrets "
                    "pillar (pillar/secrets/<deployment>.sls) lacks: add it (stacksalt secrets "
                    "generate <deployment> for a test deployment)")
            if secret not in used:
                used.append(secret)
    data = {s: base64.b64encode(str(secrets[s]).encode()).decode() for s in sorted(used)}
    b.add("openstack", f"{top}00-secret/secret-{control['secret_name']}.yaml",
          {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": control["secret_name"], "namespace": ns, "labels": part_of},
           "data": data}, secret=True)

    derived = {name: role_derived(name, r, control, images, secrets, pillar)
               for name, r in roles.items()}
    for name, r in roles.items():
        d = derived[name]
        for vol, v in sorted(r["volumes"].items()):
            if v["type"] != "pvc":
                continue
            claim = f"{name}-{vol}"
            # a rolling update starts the new pod before the old one stops, maybe on another
            # node: such a role's volume must be ReadWriteMany; Recreate roles write alone
            access = v.get("access_mode") or (
                "ReadWriteOnce" if r["strategy"] == "Recreate" else "ReadWriteMany")
            pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": claim, "namespace": ns,
                                "labels": {**part_of, "app.kubernetes.io/name": name}},
                   "spec": {"accessModes": [access],
                            "resources": {"requests": {"storage": str(v["size"])}}}}
            storage_class = v.get("storage_class", control["storage_class"])
            if storage_class:
                pvc["spec"]["storageClassName"] = storage_class
            b.add("openstack", f"{top}{d['dir']}/persistentvolumeclaim-{claim}.yaml", pvc,
                  role=name)

    last_of = {}
    for name in roles:
        last_of[derived[name]["group"]] = name
    contracts: dict[str, list] = {}
    for name, r in roles.items():
        d = derived[name]
        labels = {**part_of, **d["labels"]}
        volumes, mounts = _volumes(name, r)
        selector, tols = placement(control, name, r)
        where = f"{top}{d['dir']}/"
        if r["ports"]:
            ports = [{"name": p, "port": int(n), "targetPort": p, "protocol": "TCP"}
                     for p, n in sorted(r["ports"].items())]
            b.add("openstack", f"{where}service-{name}.yaml",
                  {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": name, "namespace": ns, "labels": labels},
                   "spec": {"type": r["service_type"], "selector": d["labels"], "ports": ports}},
                  role=name)
        if r["kind"] == "Deployment":
            b.add("openstack", f"{where}poddisruptionbudget-{name}.yaml",
                  {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                   "metadata": {"name": name, "namespace": ns, "labels": labels},
                   "spec": {"minAvailable": d["pdb_min"],
                            "selector": {"matchLabels": d["labels"]}}}, role=name)
        # Jobs: per release; no hash annotations (a Job's pod template is immutable)
        for job in ("bootstrap", "expand", "migrate", "contract"):
            if not r["jobs"].get(job):
                continue
            modes = [r["jobs"][job]] if isinstance(r["jobs"][job], str) else list(r["jobs"][job])
            jname = f"{name}-{job}-{d['tag']}"
            jlabels = {**part_of, "app.kubernetes.io/name": name,
                       "app.kubernetes.io/component": job, "app.kubernetes.io/version": d["tag"]}
            pod = {"restartPolicy": "Never", "enableServiceLinks": False,
                   "containers": [_job_container(r, d, job, modes[-1], mounts, control)]}
            init = [_job_container(r, d, job, m, mounts, control) for m in modes[:-1]]
            if init:
                pod["initContainers"] = init
            if volumes:
                pod["volumes"] = volumes
            if selector:
                pod["nodeSelector"] = selector
            if tols:
                pod["tolerations"] = tols
            obj = {"apiVersion": "batch/v1", "kind": "Job",
                   "metadata": {"name": jname, "namespace": ns, "labels": jlabels},
                   "spec": {"backoffLimit": int(control["job_backoff_limit"]),
                            "ttlSecondsAfterFinished": int(control["job_ttl"]),
                            "template": {"metadata": {"labels": jlabels}, "spec": pod}}}
            path = f"{where}job-{jname}.yaml"
            if job == "contract":
                # after the workload of the service's last role
                contracts.setdefault(d["group"], []).append(
                    b.add("openstack", path, obj, wait="complete", timeout=timeout, role=name,
                          later=True))
            else:
                # bootstrap is for a first install: once the role's workload exists, an
                # upgrade's expand/migrate/contract Jobs change the schema (a full db_sync
                # would contract it under the old pods)
                b.add("openstack", path, obj, wait="complete", timeout=timeout, role=name,
                      unless_exists=f"{r['kind'].lower()}/{name}" if job == "bootstrap" else None)
        containers = [_container(name, r, d, cname, c, mounts, control)
                      for cname, c in r["containers"].items()]
        if not containers:
            raise ObjectError(f"{_key(name)}:containers is empty: name at least one container "
                              "and its command (mode)")
        pod = {"containers": containers, "enableServiceLinks": False,
               "terminationGracePeriodSeconds": int(r["termination_grace_period"])}
        if volumes:
            pod["volumes"] = volumes
        if selector:
            pod["nodeSelector"] = selector
        if tols:
            pod["tolerations"] = tols
        if r["host_network"]:
            # on the host's network, cluster DNS still resolves the Service names of `env`
            pod.update({"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"})
        template = {"metadata": {"labels": labels, "annotations": {
            CONFIG_HASH: d["config_hash"], SECRET_HASH: d["secret_hash"]}}, "spec": pod}
        spec = _workload_spec(name, r, d, template)
        b.add("openstack", f"{where}{r['kind'].lower()}-{name}.yaml",
              {"apiVersion": "apps/v1", "kind": r["kind"],
               "metadata": {"name": name, "namespace": ns, "labels": labels}, "spec": spec},
              wait="rollout", timeout=timeout, role=name)
        if last_of[d["group"]] == name:
            b.steps.extend(contracts.get(d["group"], []))


# =========================================================================== Salt


def _defaults() -> dict:
    """The formulas' defaults files, read once per run from the file server."""
    import yaml  # Salt always ships PyYAML

    cache = __context__.setdefault("stacksalt_objects.defaults", {})  # noqa: F821
    if not cache:
        for key, rel in DEFAULTS.items():
            text = __salt__["cp.get_file_str"](f"salt://{rel}")  # noqa: F821
            if not text:
                raise ObjectError(f"salt://{rel} is not on the file server: the formulas "
                                  "kubernetes and calico must be in file_roots")
            cache[key] = yaml.safe_load(text)
    return cache


def _pillar() -> dict:
    """This minion's pillar as a plain dict (Salt's loader hands a context proxy)."""
    pillar = __pillar__  # noqa: F821
    return pillar.value() if hasattr(pillar, "value") else dict(pillar)


def _salt_error(exc: ObjectError):
    from salt.exceptions import CommandExecutionError

    return CommandExecutionError(str(exc))


def objects():
    """Every Kubernetes and Calico object this minion writes, and their apply plan (see
    ``build``). CLI: ``salt-call stacksalt_objects.objects``."""
    try:
        return build(_pillar(), _defaults())
    except ObjectError as exc:
        raise _salt_error(exc) from None


def kubernetes():
    """The kubernetes formula's settings: {common, master, pool, k8s} (its map.jinja)."""
    try:
        return kubernetes_settings(_pillar(), _defaults())
    except ObjectError as exc:
        raise _salt_error(exc) from None


def settings():
    """kubernetes:master:objects of this minion with its defaults and derived values
    (applier, tools), and whether it renders objects at all: what kubernetes.master.apply
    needs."""
    try:
        d, pillar = _defaults(), _pillar()
        control = control_settings(pillar, d)
        enabled = bool(get(pillar, "kubernetes:master:enabled")) or control["enabled"]
        out = objects_settings(kubernetes_settings(pillar, d)) if enabled else {}
    except ObjectError as exc:
        raise _salt_error(exc) from None
    return dict(out, enabled=enabled)


def calico():
    """The calico formula's settings: {node, pki, etcd_endpoints, images, is_master,
    is_applier} (its map.jinja); an inconsistent model is an error naming the key."""
    try:
        return calico_settings(_pillar(), _defaults())
    except ObjectError as exc:
        raise _salt_error(exc) from None


def __virtual__():
    return __virtualname__
