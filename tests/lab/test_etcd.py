"""etcd: three members healthy over TLS, certificates from the CA minion, rejoin."""

from __future__ import annotations

import json
import time

import pytest

from stacksalt.lab import lab as lab_mod

pytestmark = pytest.mark.lab

PKI = "/etc/etcd/pki"


def etcdctl(host, *args: str, endpoints: str | None = None,
            identity: str = f"{PKI}/root-client") -> str:
    """etcdctl as `identity` (a certificate path without .crt/.key; default: the root
    user's, since etcd's auth is on and reads and writes need a user)."""
    ep = endpoints or "https://127.0.0.1:2379"
    return host.check_output(
        f"ETCDCTL_API=3 etcdctl --endpoints={ep} --cacert={PKI}/ca.crt "
        f"--cert={identity}.crt --key={identity}.key " + " ".join(args)
    )


def etcdctl_as(host, identity: str, *args: str):
    """(exit code, stderr's last line) of etcdctl on `host` as `identity`."""
    res = host.run(
        f"ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert={PKI}/ca.crt "
        f"--cert={identity}.crt --key={identity}.key " + " ".join(args))
    return res.rc, (res.stderr.strip().splitlines() or [""])[-1]


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


def test_auth_limits_calico_to_its_prefix_and_the_apiserver_to_registry(lab, tmp_path):
    """etcd's auth is keyed on the client certificate's CN: cmp01's Calico certificate
    (the one every node holds) is refused on /registry and allowed on /calico; the
    apiserver's identity the other way round; an identity that is no user gets nothing."""
    cmp01, mst01 = lab.container("cmp01.lab.local"), lab.host("mst01.lab.local")
    # cmp01 has no etcdctl: its key and certificate go to a 0700 directory on mst01
    probe = "/root/stacksalt-calico-probe"
    mst01.run_expect([0], f"install -d -m 0700 {probe}")
    try:
        for name in ("etcd-client.crt", "etcd-client.key"):
            data = cmp01.exec_run(["cat", f"/etc/calico/pki/{name}"]).output
            lab_mod._put_file(lab.container("mst01.lab.local"), f"{probe}/{name}", data, 0o600)
        calico = f"{probe}/etcd-client"
        subject = mst01.check_output(f"openssl x509 -in {calico}.crt -noout -subject")
        assert subject.endswith("CN = calico"), subject
        rc, err = etcdctl_as(mst01, calico, "put", "/registry/secrets/default/stacksalt", "x")
        assert rc != 0 and "permission denied" in err, err
        rc, err = etcdctl_as(mst01, calico, "get", "--prefix", "/registry/")
        assert rc != 0 and "permission denied" in err, err
        rc, err = etcdctl_as(mst01, calico, "put", "/calico/stacksalt-probe", "x")
        assert rc == 0, err
        assert etcdctl_as(mst01, calico, "del", "/calico/stacksalt-probe")[0] == 0
    finally:
        mst01.run(f"rm -rf {probe}")
    apiserver = "/etc/kubernetes/pki/apiserver-etcd-client"
    rc, err = etcdctl_as(mst01, apiserver, "put", "/registry/stacksalt-probe", "x")
    assert rc == 0, err
    assert etcdctl_as(mst01, apiserver, "del", "/registry/stacksalt-probe")[0] == 0
    # what a real apiserver also needs: leases (event TTLs) and compaction
    assert etcdctl_as(mst01, apiserver, "lease", "grant", "30")[0] == 0
    rc, err = etcdctl_as(mst01, apiserver, "put", "/calico/stacksalt-probe", "x")
    assert rc != 0 and "permission denied" in err, err
    # the healthcheck identity is no user: health answers, data does not
    rc, err = etcdctl_as(mst01, f"{PKI}/healthcheck-client", "get", "/registry/x")
    assert rc != 0 and "permission denied" in err, err
    assert etcdctl_as(mst01, f"{PKI}/healthcheck-client", "endpoint", "health")[0] == 0


def test_auth_state_is_idempotent_and_roles_are_the_models(lab):
    mst01 = lab.host("mst01.lab.local")
    roles = json.loads(etcdctl(mst01, "user get calico -w json"))["roles"]
    assert roles == ["calico"]
    perms = json.loads(etcdctl(mst01, "role get calico -w json"))["perm"]
    assert len(perms) == 1 and perms[0]["permType"] == 2
    code, out = lab.salt("mst01.lab.local", "state.sls", "etcd.server.auth")
    state = next(v for k, v in out["mst01.lab.local"].items() if "etcd-server-auth-enabled" in k)
    assert state["result"] is True and state["changes"] == {}, state

