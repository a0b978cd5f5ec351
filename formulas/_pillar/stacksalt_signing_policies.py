"""ext_pillar: one x509 signing policy per node, its subject and SANs pinned by the model.

A shared policy lets every minion it names ask for any subject: a compute node could get
a serving certificate for ``kubernetes.default.svc`` or the VIP, or a client certificate
for ``system:node:<another node>``. The CA minion's model therefore holds *node policy
templates* under ``salt:minion:ca:node_policies`` (not under ``x509_signing_policies``)::

    kubernetes_node_client:
      minions: "[cm][mst][lpt][0-9]*.lab.local"   # which hosts get one (a glob)
      CN: "system:node:{hostname}"
      O: system:nodes
      ...the other policy fields (signing key, usages, days_valid)

and this ext_pillar, run on the master for the CA minion, expands each template over the
deployment's host table (``linux:network:host``: every node's address and names) into
``x509_signing_policies:<template>_<hostname>``, with ``minions`` set to that one host's
id and ``{hostname}``, ``{fqdn}``, ``{address}`` filled in. Salt's x509_v2 lets a policy's
CN, O and subjectAltName override whatever the request asks for, and refuses a minion the
policy does not name: a node gets certificates for its own names only.

A node's state names its policy ``<template>_<its hostname>`` (the service classes:
``kubernetes_node_client_${_param:linux_system_name}``); a fast test checks that every
node's request has a policy and asks exactly for what the policy pins.
"""

from __future__ import annotations

import fnmatch
from typing import Any

TEMPLATES = ("salt", "minion", "ca", "node_policies")
HOSTS = ("linux", "network", "host")
FIELDS = ("CN", "O", "subjectAltName")


class PolicyError(Exception):
    """One line naming the pillar key."""


def _get(pillar: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = pillar
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def hosts(pillar: dict[str, Any]) -> list[dict[str, str]]:
    """[{hostname, fqdn, address}] of the host table, sorted by hostname."""
    table = _get(pillar, HOSTS) or {}
    out = []
    for hostname, entry in sorted(table.items()):
        names = (entry or {}).get("names") or []
        fqdn = next((n for n in names if "." in str(n)), None)
        if not fqdn or not entry.get("address"):
            raise PolicyError(f"pillar {':'.join(HOSTS)}:{hostname}: needs an address and a "
                              "fully qualified name in names")
        out.append({"hostname": str(hostname), "fqdn": str(fqdn),
                    "address": str(entry["address"])})
    return out


def expand(pillar: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{policy name: policy} of every node policy template over every matching host."""
    templates = _get(pillar, TEMPLATES) or {}
    if not isinstance(templates, dict):
        raise PolicyError(f"pillar {':'.join(TEMPLATES)}: must be a mapping of templates")
    table = hosts(pillar) if templates else []
    policies: dict[str, dict[str, Any]] = {}
    for name, template in sorted(templates.items()):
        key = f"{':'.join(TEMPLATES)}:{name}"
        if not isinstance(template, dict) or not isinstance(template.get("minions"), str):
            raise PolicyError(f"pillar {key}: needs minions (a glob of the hosts it covers)")
        matched = [h for h in table if fnmatch.fnmatchcase(h["fqdn"], template["minions"])]
        for host in matched:
            policy = {k: v for k, v in template.items() if k != "minions"}
            for field in FIELDS:
                if field in policy:
                    try:
                        policy[field] = str(policy[field]).format(**host)
                    except (KeyError, IndexError, ValueError) as exc:
                        raise PolicyError(
                            f"pillar {key}:{field}: unknown placeholder {exc} (use "
                            "{hostname}, {fqdn}, {address})") from None
            policy["minions"] = host["fqdn"]
            policies[f"{name}_{host['hostname']}"] = policy
    return policies


def ext_pillar(minion_id: str, pillar: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Salt's entry point: the expanded policies, for the minion whose model has templates."""
    policies = expand(pillar)
    return {"x509_signing_policies": policies} if policies else {}
