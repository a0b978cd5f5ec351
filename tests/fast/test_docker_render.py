"""The docker formula's registry role as rendered for every deployment's registry node:
certificate names and policy, the policy on the CA minion, the secret's handling."""

from __future__ import annotations

import pytest

from stacksalt import saltmodules, secrets
from stacksalt.deployment import Deployment
from stacksalt.validate import collect
from tests.conftest import deployments

pytestmark = pytest.mark.fast


def _registry_nodes(dep: Deployment) -> list[str]:
    return [n for n in dep.node_names
            if dep.parameters(n).get("docker", {}).get("registry", {}).get("enabled")]


def _call(states: dict, state_id: str) -> tuple[str, dict]:
    assert state_id in states, f"{state_id} not rendered"
    return next(collect.state_calls(states[state_id]))


@pytest.mark.parametrize("deployment", deployments())
def test_registry_certificate_and_policy(deployment):
    secrets.generate(deployment)
    dep = Deployment.load(deployment)
    nodes = _registry_nodes(dep)
    assert len(nodes) == 1, f"{deployment}: one registry node expected, found {nodes}"
    node = nodes[0]
    reg = dep.parameters(node)["docker"]["registry"]
    states = collect.rendered(deployment)[node]

    fun, cert = _call(states, "docker-registry-certificate-managed")
    assert fun == "x509.certificate_managed"
    short = reg["hostname"].split(".")[0]
    # the registry's own policy (per node: stacksalt_signing_policies ext_pillar)
    assert cert["signing_policy"] == f"docker_registry_{short}"
    assert cert["ca_server"] == reg["ssl"]["ca_server"]
    assert cert["CN"] == reg["hostname"]
    assert cert["subjectAltName"] == f"DNS:{reg['hostname']}, DNS:{short}, IP:{reg['address']}"
    # a current certificate skips the CA round trip, checked with exactly these names
    assert cert["subjectAltName"] in cert["unless"]

    # the CA minion's policy: the cluster CA, server auth, only the registry's minion
    expand = saltmodules.load("_pillar/stacksalt_signing_policies.py").expand
    ca = expand(dep.parameters(reg["ssl"]["ca_server"]))[f"docker_registry_{short}"]
    assert ca["minions"] == node
    assert (ca["CN"], ca["subjectAltName"]) == (cert["CN"], cert["subjectAltName"])
    assert ca["signing_cert"] == f"/etc/pki/ca/{reg['ssl']['authority']}/ca.crt"
    assert ca["extendedKeyUsage"] == "serverAuth"

    # the service restarts on a new certificate, configuration or password
    _, svc = _call(states, "docker-registry-service-running")
    assert {"x509": "docker-registry-certificate-managed"} in svc["watch"]
    assert {"cmd": "docker-registry-htpasswd-user-managed"} in svc["watch"]


def test_password_is_never_on_a_command_line(lab_secrets):
    dep = Deployment.load("lab")
    node = _registry_nodes(dep)[0]
    reg = dep.parameters(node)["docker"]["registry"]
    password = lab_secrets[reg["password_secret"]].strip()
    _, cmd = _call(collect.rendered("lab")[node], "docker-registry-htpasswd-user-managed")
    assert password not in cmd["name"] and password not in cmd["unless"]
    assert cmd["env"]["REGISTRY_PASSWORD"] == password
    assert cmd["hide_output"] is True
    assert "-B" in cmd["name"] and "-v" in cmd["unless"]
