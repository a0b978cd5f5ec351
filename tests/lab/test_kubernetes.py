"""Kubernetes on the lab's nodes after state.apply: PKI, kubeconfigs, static pods, kubelet,
containerd, and the API's virtual IP (keepalived + haproxy), checked on the nodes."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest
import yaml

pytestmark = pytest.mark.lab

PKI = "/etc/kubernetes/pki"
CA_MINION = "cfg01.lab.local"
VIP = "172.30.70.5"
SERVICE_IP = "10.96.0.1"
DNS_IP = "10.96.0.10"
MASTERS = ["mst01.lab.local", "mst02.lab.local", "mst03.lab.local"]
POOL_ONLY = ["ctl01.lab.local", "ctl02.lab.local", "ctl03.lab.local",
             "cmp01.lab.local", "cmp02.lab.local"]
NODES = MASTERS + POOL_ONLY


def node(lab, minion_id: str):
    return next(n for n in lab.plan.nodes if n.minion_id == minion_id)


def cert_text(host, path: str) -> str:
    return host.check_output(f"openssl x509 -in {path} -noout -text")


def subject(host, path: str) -> str:
    return host.check_output(f"openssl x509 -in {path} -noout -subject -nameopt RFC2253")


def verify(host, ca: str, cert: str) -> None:
    res = host.run(f"openssl verify -CAfile {ca} {cert}")
    assert res.rc == 0, f"{cert} does not chain to {ca}: {res.stdout}{res.stderr}"


def pem_subject(host, pem: str) -> str:
    return host.check_output(
        f"echo {base64.b64encode(pem.encode()).decode()} | base64 -d | "
        "openssl x509 -noout -subject -nameopt RFC2253")


def pubkey_of_cert(host, pem: str) -> str:
    return host.check_output(
        f"echo {base64.b64encode(pem.encode()).decode()} | base64 -d | "
        "openssl x509 -noout -pubkey")


def pubkey_of_key(host, pem: str) -> str:
    return host.check_output(
        f"echo {base64.b64encode(pem.encode()).decode()} | base64 -d | openssl pkey -pubout")


@pytest.fixture(scope="module")
def cluster_ca(lab) -> str:
    return lab.host(CA_MINION).file("/etc/pki/ca/kubernetes/ca.crt").content_string


@pytest.mark.parametrize("member", MASTERS)
def test_apiserver_certificate(lab, member):
    host = lab.host(member)
    n = node(lab, member)
    text = cert_text(host, f"{PKI}/apiserver.crt")
    for san in ("DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local", f"DNS:{n.hostname}",
                f"DNS:{n.minion_id}", f"IP Address:{VIP}", f"IP Address:{SERVICE_IP}",
                f"IP Address:{n.address}", "IP Address:127.0.0.1"):
        assert san in text, f"{member}: apiserver.crt lacks {san}"
    assert "CA:FALSE" in text
    assert "Digital Signature, Key Encipherment" in text
    assert "TLS Web Server Authentication" in text
    assert "TLS Web Client Authentication" not in text
    verify(host, f"{PKI}/ca.crt", f"{PKI}/apiserver.crt")


def test_cluster_ca_is_the_ca_minions(lab, cluster_ca):
    for minion in NODES:
        ca = lab.host(minion).file(f"{PKI}/ca.crt").content_string
        assert ca.strip() == cluster_ca.strip(), minion
    # the CA keys never leave the CA minion
    cfg = lab.host(CA_MINION)
    for name in ("kubernetes", "front-proxy"):
        key = cfg.file(f"/etc/pki/ca/{name}/ca.key")
        assert key.exists and key.mode == 0o600
    for minion in NODES:
        assert not lab.host(minion).file("/etc/pki/ca").exists, minion


@pytest.mark.parametrize("member", MASTERS)
def test_control_plane_client_certificates(lab, member):
    host = lab.host(member)
    expected = {
        f"{PKI}/apiserver-kubelet-client.crt": ("CN=kube-apiserver-kubelet-client",
                                                "O=system:masters", f"{PKI}/ca.crt"),
        f"{PKI}/front-proxy-client.crt": ("CN=front-proxy-client", None,
                                          f"{PKI}/front-proxy-ca.crt"),
        f"{PKI}/apiserver-etcd-client.crt": ("CN=kube-apiserver-etcd-client", None,
                                             f"{PKI}/etcd/ca.crt"),
    }
    for path, (cn, org, ca) in expected.items():
        subj = subject(host, path)
        assert cn in subj, f"{path}: {subj}"
        if org:
            assert org in subj, f"{path}: {subj}"
        text = cert_text(host, path)
        assert "TLS Web Client Authentication" in text and "TLS Web Server" not in text
        verify(host, ca, path)
    # the front-proxy CA is its own CA, not the cluster CA
    assert (host.file(f"{PKI}/front-proxy-ca.crt").content_string
            != host.file(f"{PKI}/ca.crt").content_string)


@pytest.mark.parametrize("member", MASTERS)
def test_apiserver_etcd_client_is_accepted_by_etcd(lab, member):
    host = lab.host(member)
    n = node(lab, member)
    out = host.check_output(
        f"curl -s --max-time 5 --cacert {PKI}/etcd/ca.crt --cert {PKI}/apiserver-etcd-client.crt"
        f" --key {PKI}/apiserver-etcd-client.key https://{n.address}:2379/health")
    assert json.loads(out)["health"] == "true"


def test_service_account_key_pair_is_the_same_on_every_master(lab, lab_secrets):
    digests = set()
    for member in MASTERS:
        host = lab.host(member)
        key = host.file(f"{PKI}/sa.key")
        assert key.mode == 0o600 and key.user == "root"
        derived = host.check_output(f"openssl pkey -in {PKI}/sa.key -pubout")
        assert derived.strip() == host.file(f"{PKI}/sa.pub").content_string.strip()
        digests.add(hashlib.sha256(key.content.strip()).hexdigest())
    assert len(digests) == 1
    assert digests == {hashlib.sha256(
        lab_secrets["kubernetes_service_account_key"].strip().encode()).hexdigest()}


@pytest.mark.parametrize("minion", NODES)
def test_private_keys_are_0600(lab, minion):
    host = lab.host(minion)
    keys = host.check_output(
        f"find {PKI} /var/lib/kubelet/pki -name '*.key' -printf '%m %u %p\\n'").splitlines()
    # kubelet (serving, client) and kube-proxy; masters: 5 in pki/ (apiserver, its kubelet,
    # etcd and front-proxy clients, sa) and 4 kubeconfig clients (admin, super-admin,
    # controller-manager, scheduler)
    expected = 3 + (9 if minion in MASTERS else 0)
    assert len(keys) == expected, keys
    for line in keys:
        mode, user, path = line.split()
        assert (mode, user) == ("600", "root"), path


@pytest.mark.parametrize("minion", NODES)
def test_kubeconfigs_point_at_the_vip_with_their_own_certificate(lab, minion, cluster_ca):
    host = lab.host(minion)
    hostname = node(lab, minion).hostname
    confs = {
        "/etc/kubernetes/kubelet.conf": f"CN=system:node:{hostname},O=system:nodes",
        "/etc/kubernetes/kube-proxy.conf": "CN=system:kube-proxy",
    }
    if minion in MASTERS:
        confs.update({
            "/etc/kubernetes/admin.conf": "CN=kubernetes-admin,O=kubeadm:cluster-admins",
            "/etc/kubernetes/super-admin.conf": "CN=kubernetes-super-admin,O=system:masters",
            "/etc/kubernetes/controller-manager.conf": "CN=system:kube-controller-manager",
            "/etc/kubernetes/scheduler.conf": "CN=system:kube-scheduler",
        })
    for path, want in confs.items():
        f = host.file(path)
        assert f.mode == 0o600 and f.user == "root", path
        conf = yaml.safe_load(f.content_string)
        cluster = conf["clusters"][0]["cluster"]
        assert cluster["server"] == f"https://{VIP}:6443", path
        assert base64.b64decode(cluster["certificate-authority-data"]).decode().strip() == (
            cluster_ca.strip()), path
        user = conf["users"][0]["user"]
        cert = base64.b64decode(user["client-certificate-data"]).decode()
        key = base64.b64decode(user["client-key-data"]).decode()
        # RFC 2253 lists the RDNs last first: O=...,CN=...
        subj = pem_subject(host, cert).removeprefix("subject=")
        assert sorted(subj.split(",")) == sorted(want.split(",")), f"{path}: {subj}"
        assert pubkey_of_cert(host, cert) == pubkey_of_key(host, key), path
    if minion in MASTERS:
        assert host.file("/root/.kube/config").linked_to == "/etc/kubernetes/admin.conf"


@pytest.mark.parametrize("member", MASTERS)
def test_static_pods(lab, member):
    host = lab.host(member)
    n = node(lab, member)
    pod = yaml.safe_load(host.file("/etc/kubernetes/manifests/kube-apiserver.yaml").content_string)
    command = pod["spec"]["containers"][0]["command"]
    flags = dict(a[2:].split("=", 1) for a in command if a.startswith("--"))
    etcd = [f"https://{node(lab, m).address}:2379" for m in MASTERS]
    assert flags["etcd-servers"].split(",") == etcd
    assert flags["bind-address"] == n.address
    assert pod["spec"]["containers"][0]["image"] == "registry.k8s.io/kube-apiserver:v1.33.5"
    for name in ("kube-controller-manager", "kube-scheduler", "kube-proxy"):
        other = yaml.safe_load(host.file(f"/etc/kubernetes/manifests/{name}.yaml").content_string)
        assert other["metadata"]["name"] == name
    # the fingerprint of the files each pod reads, made by stacksalt_static_pod.manifest
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
        doc = yaml.safe_load(host.file(f"/etc/kubernetes/manifests/{name}.yaml").content_string)
        digest = doc["metadata"]["annotations"]["stacksalt.io/config-hash"]
        assert len(digest) == 64 and int(digest, 16) >= 0, (name, digest)
    addons = host.check_output("ls /etc/kubernetes/objects/coredns").split()
    assert "service-kube-dns.yaml" in addons and "deployment-coredns.yaml" in addons
    svc = yaml.safe_load(host.file("/etc/kubernetes/objects/coredns/service-kube-dns.yaml")
                         .content_string)
    assert svc["spec"]["clusterIP"] == DNS_IP


@pytest.mark.parametrize("minion", ["mst02.lab.local", "ctl01.lab.local", "cmp02.lab.local"])
def test_kubelet_and_kube_proxy_configuration(lab, minion):
    host = lab.host(minion)
    cfg = yaml.safe_load(host.file("/var/lib/kubelet/config.yaml").content_string)
    assert cfg["clusterDNS"] == [DNS_IP]
    assert cfg["cgroupDriver"] == "systemd"
    assert cfg["staticPodPath"] == "/etc/kubernetes/manifests"
    assert cfg["authentication"]["x509"]["clientCAFile"] == f"{PKI}/ca.crt"
    assert cfg["rotateCertificates"] is False
    # the kubelet's serving certificate names the node, signed by the cluster CA
    n = node(lab, minion)
    text = cert_text(host, "/var/lib/kubelet/pki/kubelet.crt")
    assert f"IP Address:{n.address}" in text and f"DNS:{n.hostname}" in text
    verify(host, f"{PKI}/ca.crt", "/var/lib/kubelet/pki/kubelet.crt")
    kp = yaml.safe_load(host.file("/var/lib/kube-proxy/config.conf").content_string)
    assert kp["clusterCIDR"] == "10.244.0.0/16"
    # the unit is installed; without binaries (the lab) it is neither enabled nor running
    unit = host.file("/etc/systemd/system/kubelet.service").content_string
    assert "--config=/var/lib/kubelet/config.yaml" in unit
    assert f"--node-ip={n.address}" in unit
    assert not host.service("kubelet").is_running
    assert not host.file("/usr/local/bin/kubelet").exists


@pytest.mark.parametrize("minion", ["mst01.lab.local", "cmp01.lab.local"])
def test_containerd(lab, minion, cluster_ca):
    host = lab.host(minion)
    conf = host.file("/etc/containerd/config.toml").content_string
    assert "SystemdCgroup = true" in conf
    assert 'sandbox_image = "registry.k8s.io/pause:3.10"' in conf
    assert 'config_path = "/etc/containerd/certs.d"' in conf
    reg = "/etc/containerd/certs.d/cfg01.lab.local:5000"
    hosts = host.file(f"{reg}/hosts.toml").content_string
    assert 'server = "https://cfg01.lab.local:5000"' in hosts
    assert f'ca = "{reg}/ca.crt"' in hosts
    assert host.file(f"{reg}/ca.crt").content_string.strip() == cluster_ca.strip()
    assert host.service("containerd").is_running and host.service("containerd").is_enabled
    # containerd answers on its socket, with its CRI plugin loaded
    assert "Server:" in host.check_output("ctr version")
    plugins = host.check_output("ctr plugins ls")
    assert any(line.split()[:2] == ["io.containerd.grpc.v1", "cri"] and line.split()[-1] == "ok"
               for line in plugins.splitlines()), plugins


@pytest.mark.parametrize("minion", ["mst03.lab.local", "ctl02.lab.local"])
def test_kernel_settings(lab, minion):
    host = lab.host(minion)
    modules = host.file("/etc/modules-load.d/kubernetes.conf").content_string.split()
    assert {"overlay", "br_netfilter"} <= set(modules)
    for key in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables",
                "net.bridge.bridge-nf-call-ip6tables"):
        assert host.check_output(f"cat /proc/sys/{key.replace('.', '/')}") == "1", key
    nonlocal_bind = host.check_output("cat /proc/sys/net/ipv4/ip_nonlocal_bind")
    assert nonlocal_bind == ("1" if minion in MASTERS else "0")


def vip_holders(lab) -> list[str]:
    return [m for m in MASTERS
            if f"inet {VIP}/" in lab.host(m).check_output("ip -4 -o addr show")]


def wait_vip_holder(lab, want: str | None = None, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        holders = vip_holders(lab)
        if (len(holders) == 1 and (want is None or holders == [want])) or (
                time.monotonic() > deadline):
            return holders
        time.sleep(1)


def test_keepalived_and_haproxy_serve_the_vip(lab):
    for member in MASTERS:
        host = lab.host(member)
        ka = host.file("/etc/keepalived/keepalived.conf").content_string
        assert f"{VIP}/32" in ka
        hp = host.file("/etc/haproxy/haproxy.cfg").content_string
        assert f"bind {VIP}:6443" in hp
        for m in MASTERS:
            assert f"server {node(lab, m).hostname} {node(lab, m).address}:6443" in hp
        assert host.service("keepalived").is_running and host.service("keepalived").is_enabled
        assert host.service("haproxy").is_running and host.service("haproxy").is_enabled
        # haproxy listens on the VIP on every master (ip_nonlocal_bind)
        assert f"{VIP}:6443" in host.check_output("ss -Htln")
    # exactly one master holds the VIP: the first one (highest priority)
    assert wait_vip_holder(lab, "mst01.lab.local") == ["mst01.lab.local"]
    # another node reaches haproxy through the VIP (no apiserver behind it in the lab)
    probe = lab.host("cmp01.lab.local").run(
        f"timeout 5 bash -c 'exec 3<>/dev/tcp/{VIP}/6443' && echo open")
    assert probe.stdout.strip() == "open", probe.stderr


def test_vip_fails_over_when_haproxy_stops_and_returns_after_apply(lab):
    assert wait_vip_holder(lab, "mst01.lab.local") == ["mst01.lab.local"]
    holder = lab.host("mst01.lab.local")
    holder.run_expect([0], "systemctl stop haproxy")
    try:
        assert wait_vip_holder(lab, "mst02.lab.local") == ["mst02.lab.local"]
    finally:
        results = lab.apply("mst01.lab.local")
    r = results["mst01.lab.local"]
    assert r.failed == 0, r.failures
    assert "kubernetes-master-haproxy-service-running" in r.changed_ids
    assert wait_vip_holder(lab, "mst01.lab.local") == ["mst01.lab.local"]


def _request_certificate(lab, minion: str, policy: str, cn: str, org: str) -> tuple[int, str]:
    host = lab.host(minion)
    host.run_expect([0], "openssl genrsa -out /tmp/policy-test.key 2048 2>/dev/null")
    res = host.run(
        "salt-call --out=json x509.create_certificate "
        f"ca_server={CA_MINION} signing_policy={policy} private_key=/tmp/policy-test.key "
        f"CN='{cn}' O='{org}'")
    host.run("rm -f /tmp/policy-test.key")
    out = res.stdout[res.stdout.find("{"):] if "{" in res.stdout else "{}"
    return res.rc, json.loads(out).get("local", "") if out.strip() else ""


def test_signing_policies_restrict_identities(lab):
    # a pool node cannot use the masters' client policy
    rc, out = _request_certificate(lab, "ctl01.lab.local", "kubernetes_master_client",
                                   "kubernetes-admin", "system:masters")
    assert rc != 0 or "BEGIN CERTIFICATE" not in str(out), out
    # under its own node policy it asks for system:masters and gets system:nodes
    rc, pem = _request_certificate(lab, "ctl01.lab.local", "kubernetes_node_client_ctl01",
                                   "system:node:ctl01", "system:masters")
    assert rc == 0 and "BEGIN CERTIFICATE" in pem, pem
    subj = pem_subject(lab.host("ctl01.lab.local"), pem)
    assert "O=system:nodes" in subj and "system:masters" not in subj
    # kube-proxy's subject is fixed, whatever is asked for
    rc, pem = _request_certificate(lab, "cmp01.lab.local", "kubernetes_proxy_client",
                                   "kubernetes-admin", "system:masters")
    assert rc == 0 and "BEGIN CERTIFICATE" in pem, pem
    subj = pem_subject(lab.host("cmp01.lab.local"), pem).removeprefix("subject=")
    assert subj == "CN=system:kube-proxy"


def test_lost_certificate_is_reissued_and_its_kubeconfig_follows(lab):
    """A certificate that is not current is issued again by the next state.apply, and the
    kubeconfig embedding it is rewritten with the new one."""
    minion = "cmp02.lab.local"
    host = lab.host(minion)
    crt = f"{PKI}/kubeconfig/kube-proxy.crt"
    before = host.file(crt).content_string
    host.run_expect([0], f"rm -f {crt}")
    results = lab.apply(minion)
    r = results[minion]
    assert r.failed == 0, r.failures
    assert {"kubernetes-pool-kube-proxy-client-certificate-managed",
            "kubernetes-pool-kube-proxy-kubeconfig-managed"} <= set(r.changed_ids), r.changed_ids
    after = host.file(crt).content_string
    assert after != before
    conf = yaml.safe_load(host.file("/etc/kubernetes/kube-proxy.conf").content_string)
    embedded = base64.b64decode(conf["users"][0]["user"]["client-certificate-data"]).decode()
    assert embedded.strip() == after.strip()
    again = lab.apply(minion)[minion]
    assert again.failed == 0 and not again.changed, again.changed_ids


def _config_hashes(host) -> dict[str, str]:
    out = {}
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        doc = yaml.safe_load(host.file(f"/etc/kubernetes/manifests/{name}.yaml").content_string)
        out[name] = doc["metadata"]["annotations"]["stacksalt.io/config-hash"]
    return out


def test_renewed_apiserver_certificate_changes_only_the_apiservers_manifest(lab):
    """A certificate issued again changes the fingerprint of the static pods that read it
    (so the kubelet restarts them) and of no other; the next apply changes nothing."""
    minion = "mst02.lab.local"
    host = lab.host(minion)
    before = _config_hashes(host)
    host.run_expect([0], f"rm -f {PKI}/apiserver.crt")
    r = lab.apply(minion)[minion]
    assert r.failed == 0, r.failures
    assert "kubernetes-master-kube-apiserver-manifest-managed" in r.changed_ids, r.changed_ids
    after = _config_hashes(host)
    assert after["kube-apiserver"] != before["kube-apiserver"]
    assert {k: v for k, v in after.items() if k != "kube-apiserver"} == \
        {k: v for k, v in before.items() if k != "kube-apiserver"}
    again = lab.apply(minion)[minion]
    assert again.failed == 0 and not again.changed, again.changed_ids
