"""The CA refuses what a node's own policy does not allow (per-node signing policies,
expanded by the master's stacksalt_signing_policies ext_pillar), through the real master."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.lab

NODE = "cmp01.lab.local"
KEY = "/root/stacksalt-policy-probe.key"


def request(lab, policy: str, **subject: str) -> tuple[int, str]:
    """x509.create_certificate from cmp01 through the master: (exit code, PEM or error)."""
    args = [f"{k}={v}" for k, v in subject.items()]
    res = lab.container(NODE).exec_run(
        ["salt-call", "--out=json", "x509.create_certificate", "ca_server=cfg01.lab.local",
         f"signing_policy={policy}", f"private_key={KEY}", *args])
    out = res.output.decode(errors="replace")
    try:
        return res.exit_code, json.loads(out[out.find("{"):])["local"]
    except (ValueError, KeyError):
        return res.exit_code, out


def text(lab, pem: str) -> str:
    res = lab.container(NODE).exec_run(
        ["sh", "-c", 'printf "%s\\n" "$PEM" | openssl x509 -noout -subject -ext subjectAltName'],
        environment={"PEM": pem})
    return res.output.decode()


@pytest.fixture(scope="module")
def probe_key(lab):
    lab.container(NODE).exec_run(["sh", "-c", f"umask 077; openssl genrsa -out {KEY} 2048"])
    yield KEY
    lab.container(NODE).exec_run(["rm", "-f", KEY])


def test_another_nodes_policy_is_refused(lab, probe_key):
    rc, out = request(lab, "kubernetes_node_client_cmp02", CN="system:node:cmp02")
    assert rc != 0 and "minion not permitted to use specified signing policy" in out, out


def test_the_masters_policies_are_refused(lab, probe_key):
    for policy in ("kubernetes_apiserver", "kubernetes_master_client", "etcd_root_client",
                   "etcd_server_mst01"):
        rc, out = request(lab, policy, CN="kube-apiserver")
        assert rc != 0 and "not permitted" in out, (policy, out)


def test_the_old_shared_policies_no_longer_exist(lab, probe_key):
    rc, out = request(lab, "kubernetes_node_client", CN="system:node:cmp02")
    assert rc != 0 and "signing_policy must be specified and defined" in out, out


def test_own_policy_pins_subject_and_sans_whatever_is_asked(lab, probe_key):
    rc, pem = request(lab, "kubernetes_node_client_cmp01", CN="system:node:cmp02",
                      O="system:masters")
    assert rc == 0, pem
    subject = text(lab, pem)
    assert "CN = system:node:cmp01" in subject and "O = system:nodes" in subject, subject
    assert "cmp02" not in subject and "system:masters" not in subject
    vip = "172.30.70.5"
    rc, pem = request(lab, "kubernetes_node_server_cmp01", CN="kubernetes",
                      subjectAltName=f"DNS:kubernetes.default.svc, IP:{vip}")
    assert rc == 0, pem
    served = text(lab, pem)
    assert "kubernetes.default.svc" not in served and vip not in served, served
    assert "DNS:cmp01, DNS:cmp01.lab.local, IP Address:172.30.70.31" in served, served
