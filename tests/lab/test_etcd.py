"""etcd: three members healthy over TLS, certificates from the CA minion, rejoin."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.lab

PKI = "/etc/etcd/pki"


def etcdctl(host, *args: str, endpoints: str | None = None) -> str:
    ep = endpoints or "https://127.0.0.1:2379"
    return host.check_output(
        f"ETCDCTL_API=3 etcdctl --endpoints={ep} --cacert={PKI}/ca.crt "
        f"--cert={PKI}/healthcheck-client.crt --key={PKI}/healthcheck-client.key "
        + " ".join(args)
    )


def cluster_endpoints(lab) -> str:
    return ",".join(f"https://{n.address}:2379" for n in lab.plan.nodes
                    if n.minion_id in lab.etcd_members())


def wait_healthy(host, endpoints: str, want: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        out = host.run(
            f"ETCDCTL_API=3 etcdctl --endpoints={endpoints} --cacert={PKI}/ca.crt "
            f"--cert={PKI}/healthcheck-client.crt --key={PKI}/healthcheck-client.key "
            "endpoint health -w json")
        health = json.loads(out.stdout) if out.stdout.strip().startswith("[") else []
        if sum(1 for h in health if h.get("health")) == want or time.monotonic() > deadline:
            return health
        time.sleep(2)


def test_three_members_healthy_over_tls(lab):
    host = lab.host("mst01.lab.local")
    health = wait_healthy(host, cluster_endpoints(lab), 3)
    assert sorted(h["endpoint"] for h in health if h["health"]) == sorted(
        cluster_endpoints(lab).split(","))
    members = json.loads(etcdctl(host, "member list -w json"))["members"]
    assert sorted(m["name"] for m in members) == ["mst01", "mst02", "mst03"]
    for m in members:
        assert all(u.startswith("https://") for u in m["peerURLs"] + m["clientURLs"])


def test_plain_http_and_certless_clients_are_refused(lab):
    host = lab.host("mst02.lab.local")
    plain = host.run("curl -s --max-time 5 http://127.0.0.1:2379/health")
    assert plain.rc != 0 or "true" not in plain.stdout
    nocert = host.run(
        f"curl -s --max-time 5 --cacert {PKI}/ca.crt https://127.0.0.1:2379/health")
    assert nocert.rc != 0, "a client without a certificate must be refused"
    ok = host.run(
        f"curl -s --max-time 5 --cacert {PKI}/ca.crt --cert {PKI}/healthcheck-client.crt "
        f"--key {PKI}/healthcheck-client.key https://127.0.0.1:2379/health")
    assert ok.rc == 0 and '"health":"true"' in ok.stdout.replace(" ", "")


@pytest.mark.parametrize("member", ["mst01.lab.local", "mst02.lab.local", "mst03.lab.local"])
def test_certificates_subject_sans_chain_and_modes(lab, member):
    host = lab.host(member)
    node = next(n for n in lab.plan.nodes if n.minion_id == member)
    for name in ("server", "peer"):
        text = host.check_output(f"openssl x509 -in {PKI}/{name}.crt -noout -text")
        assert f"CN = {node.hostname}" in text
        assert "O = lab" in text
        for san in (f"DNS:{node.hostname}", f"DNS:{node.minion_id}",
                    f"IP Address:{node.address}", "IP Address:127.0.0.1"):
            assert san in text, f"{member} {name}.crt lacks {san}"
        assert "CA:FALSE" in text
        assert "TLS Web Server Authentication" in text
        verify = host.run(f"openssl verify -CAfile {PKI}/ca.crt {PKI}/{name}.crt")
        assert verify.rc == 0, verify.stdout + verify.stderr
    client = host.check_output(f"openssl x509 -in {PKI}/healthcheck-client.crt -noout -text")
    assert "TLS Web Client Authentication" in client
    assert "TLS Web Server Authentication" not in client
    for key in ("server", "peer", "healthcheck-client"):
        f = host.file(f"{PKI}/{key}.key")
        assert f.mode == 0o600 and f.user == "etcd", key
    # the CA's own key never leaves the CA minion
    assert not host.file("/etc/pki/ca").exists


def test_ca_lives_on_the_ca_minion_only(lab):
    cfg = lab.host(lab.plan.master.minion_id)
    key = cfg.file("/etc/pki/ca/etcd/ca.key")
    assert key.exists and key.mode == 0o600 and key.user == "root"
    ca = cfg.check_output("openssl x509 -in /etc/pki/ca/etcd/ca.crt -noout -text")
    assert "CA:TRUE" in ca and "Certificate Sign" in ca
    member_ca = lab.host("mst01.lab.local").file(f"{PKI}/ca.crt").content_string
    assert member_ca.strip() == cfg.file("/etc/pki/ca/etcd/ca.crt").content_string.strip()


def test_stopped_member_rejoins_after_apply(lab):
    member = "mst02.lab.local"
    host = lab.host(member)
    before = json.loads(etcdctl(host, "endpoint status -w json"))[0]["Status"]["header"][
        "member_id"]
    host.run_expect([0], "systemctl stop etcd")
    observer = lab.host("mst01.lab.local")
    health = wait_healthy(observer, cluster_endpoints(lab), 2)
    assert sum(1 for h in health if h["health"]) == 2
    results = lab.apply(member)
    assert results[member].failed == 0, results[member].failures
    assert "etcd-server-service-running" in results[member].changed_ids
    health = wait_healthy(observer, cluster_endpoints(lab), 3)
    assert sum(1 for h in health if h["health"]) == 3
    after = json.loads(etcdctl(host, "endpoint status -w json"))[0]["Status"]["header"][
        "member_id"]
    assert after == before, "the member must rejoin with its identity, not as a new member"
    # and the cluster is whole again: a write on one member is read on another
    etcdctl(host, "put", "/stacksalt/rejoin", "ok")
    assert etcdctl(lab.host("mst03.lab.local"), "get", "--print-value-only",
                   "/stacksalt/rejoin").strip() == "ok"
