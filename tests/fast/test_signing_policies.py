"""Signing policies pin what a node may be: one policy per node for its kubelet and etcd
certificates, expanded by the master's stacksalt_signing_policies ext_pillar.

The CA minion's pillar is compiled by Salt with the master's ext_pillar chain; every
node's certificate states are rendered with their real pillar. Checked for every node of
every deployment:
- every requested policy exists, and names that node alone when it pins a subject;
- what a pinned policy fixes (CN, O, SANs) is exactly what the node asks for (else the
  certificate would be reissued by every run);
- no policy open to a node that is not a Kubernetes master leaves the CN free, nor the
  SANs of a serving certificate (a compute node cannot get kubernetes.default.svc, the VIP,
  or system:node:<another node>).
"""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest

from stacksalt import saltmodules, saltrender, secrets
from stacksalt.deployment import Deployment
from stacksalt.validate import collect

pytestmark = pytest.mark.fast

DEPLOYMENTS = ("lab", "production")
RULE = saltmodules.load("_pillar/stacksalt_signing_policies.py")


def ca_minion(dep: Deployment) -> str:
    return next(n for n in dep.node_names
                if dep.parameters(n).get("salt", {}).get("minion", {}).get("ca", {})
                .get("enabled"))


@pytest.fixture(scope="module", params=DEPLOYMENTS)
def model(request):
    name = request.param
    secrets.generate(name)
    dep = Deployment.load(name)
    ca = ca_minion(dep)
    policies = saltrender.pillars(name, [ca])[ca]["x509_signing_policies"]
    return name, dep, policies, collect.rendered(name)


def requests(states: dict[str, Any]):
    for state_id, state in states.items():
        if not isinstance(state, dict):
            continue
        for call, kwargs in collect.state_calls(state):
            # (the CA minion's own self-signed CA certificates name no policy)
            if call == "x509.certificate_managed" and "signing_policy" in kwargs:
                yield state_id, kwargs


def masters(dep: Deployment) -> set[str]:
    return {n for n in dep.node_names if "master" in dep.parameters(n).get("kubernetes", {})}


def test_every_request_has_a_policy_that_pins_exactly_what_it_asks(model):
    name, dep, policies, rendered = model
    wrong = []
    for node in dep.node_names:
        for state_id, req in requests(rendered[node]):
            policy = policies.get(req["signing_policy"])
            if policy is None:
                wrong.append(f"{node}: {state_id}: no policy {req['signing_policy']!r}")
                continue
            assert fnmatch.fnmatchcase(node, policy["minions"]), (node, state_id)
            for field in RULE.FIELDS:
                if field in policy and str(policy[field]) != str(req.get(field, "")):
                    wrong.append(f"{node}: {state_id}: asks {field}={req.get(field)!r}, "
                                 f"policy pins {policy[field]!r}")
    assert not wrong, "\n".join(wrong)


def test_no_node_but_a_master_can_choose_its_subject(model):
    name, dep, policies, rendered = model
    trusted = masters(dep)
    open_ = []
    for pname, policy in sorted(policies.items()):
        users = {n for n in dep.node_names if fnmatch.fnmatchcase(n, policy["minions"])}
        if users <= trusted:
            continue
        pinned_cn = "CN" in policy or "CN=" in str(policy.get("subject", ""))
        serving = "serverAuth" in str(policy.get("extendedKeyUsage", ""))
        if not pinned_cn or (serving and "subjectAltName" not in policy):
            open_.append(f"{pname}: open to {sorted(users - trusted)}")
        pinned = " ".join(str(policy.get(f, "")) for f in RULE.FIELDS)
        named = {n for n in dep.node_names
                 if n in pinned or f"{dep.parameters(n)['_param']['linux_system_name']}," in
                 pinned.replace(" ", ",") + ","}
        # a subject that names a node is that node's: usable by that node only
        assert not named or users == named, (pname, sorted(users), sorted(named))
    assert not open_, "\n".join(open_)


def test_a_compute_node_has_policies_for_its_own_names_only(model):
    name, dep, policies, rendered = model
    node = next(n for n in dep.node_names if n.startswith("cmp"))
    short = dep.parameters(node)["_param"]["linux_system_name"]
    mine = {p: v for p, v in policies.items() if fnmatch.fnmatchcase(node, v["minions"])}
    assert mine[f"kubernetes_node_client_{short}"]["CN"] == f"system:node:{short}"
    san = mine[f"kubernetes_node_server_{short}"]["subjectAltName"]
    assert "kubernetes.default.svc" not in san and short in san
    vip = dep.parameters(node)["kubernetes"]["common"]["cluster"]["api"]["vip"]
    assert f"IP:{vip}," not in san + ","
    other = next(n for n in dep.node_names if n.startswith("cmp") and n != node)
    other_short = dep.parameters(other)["_param"]["linux_system_name"]
    assert not fnmatch.fnmatchcase(node, policies[f"kubernetes_node_client_{other_short}"]
                                   ["minions"])


def test_a_template_without_minions_is_a_one_line_error():
    pillar = {"salt": {"minion": {"ca": {"node_policies": {"x": {"CN": "{hostname}"}}}}},
              "linux": {"network": {"host": {}}}}
    with pytest.raises(RULE.PolicyError,
                       match=r"^pillar salt:minion:ca:node_policies:x: needs minions"):
        RULE.expand(pillar)


def test_an_unknown_placeholder_is_a_one_line_error():
    pillar = {"salt": {"minion": {"ca": {"node_policies": {
        "x": {"minions": "*", "CN": "{rack}"}}}}},
        "linux": {"network": {"host": {"a": {"address": "10.0.0.1", "names": ["a.d", "a"]}}}}}
    with pytest.raises(RULE.PolicyError, match=r"node_policies:x:CN: unknown placeholder"):
        RULE.expand(pillar)
