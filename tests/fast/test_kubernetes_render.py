"""The kubernetes formula rendered for every Kubernetes node of the lab, with its real pillar.

Checks what the states would write (static pods, kubeconfigs, kubelet and kube-proxy
configuration, addons, certificates requested) against the model, without running
anything; and the binaries' URL and pinned sha256 for the model's version and a bump.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import kubernetes_validate
import pytest

from stacksalt import saltmodules, saltrender
from stacksalt.deployment import Deployment

pytestmark = pytest.mark.fast

DEPLOYMENT = "lab"


def args(states: dict, state_id: str) -> dict:
    """The keyword arguments of one state (its first module call)."""
    assert state_id in states, f"state {state_id} is not rendered"
    state = states[state_id]
    module = next(k for k in state if not k.startswith("__"))
    return {k: v for d in state[module] if isinstance(d, dict) for k, v in d.items()}


def flags(command: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in command if a.startswith("--"))


@pytest.fixture(scope="module")
def model(lab_deployment) -> dict:
    """The lab's Kubernetes parameters, and which nodes are masters / pool members."""
    dep = lab_deployment
    k8s_nodes = [n for n in dep.node_names if "kubernetes" in dep.rendered[n]["applications"]]
    p = dep.parameters(k8s_nodes[0])["_param"]
    return {
        "dep": dep,
        "nodes": k8s_nodes,
        "masters": [n for n in k8s_nodes
                    if dep.parameters(n)["kubernetes"].get("master", {}).get("enabled")],
        "param": p,
    }


@pytest.fixture(scope="module")
def rendered(lab_secrets, model) -> dict[str, dict]:
    def one(node: str):
        return node, saltrender.show_sls(node, DEPLOYMENT, ["kubernetes"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, model["nodes"]))


def address(model, node: str) -> str:
    return model["dep"].parameters(node)["linux"]["network"]["address"]


def test_lab_shape_masters_and_pool(model, rendered):
    assert [n.split(".")[0] for n in model["masters"]] == ["mst01", "mst02", "mst03"]
    for node, states in rendered.items():
        is_master = node in model["masters"]
        assert ("kubernetes-master-kube-apiserver-manifest-managed" in states) == is_master
        assert ("kubernetes-master-haproxy-service-running" in states) == is_master
        # every Kubernetes node is a pool member (masters run the static pods)
        for sid in ("kubernetes-pool-kubelet-config-file-managed",
                    "kubernetes-pool-kube-proxy-manifest-managed",
                    "kubernetes-common-containerd-service-running",
                    "kubernetes-common-ca-certificate-managed"):
            assert sid in states, f"{node}: {sid}"


def test_apiserver_manifest_flags(model, rendered):
    p = model["param"]
    etcd = [f"https://{m['host']}:2379" for m in p["etcd_members"]]
    assert len(etcd) == 3
    for node in model["masters"]:
        pod = args(rendered[node], "kubernetes-master-kube-apiserver-manifest-managed")["dataset"]
        container = pod["spec"]["containers"][0]
        f = flags(container["command"])
        assert f["etcd-servers"].split(",") == etcd
        assert f["etcd-certfile"] == "/etc/kubernetes/pki/apiserver-etcd-client.crt"
        assert f["etcd-cafile"] == "/etc/kubernetes/pki/etcd/ca.crt"
        assert f["bind-address"] == f["advertise-address"] == address(model, node)
        assert f["secure-port"] == "6443"
        assert f["authorization-mode"] == "Node,RBAC"
        assert f["enable-admission-plugins"] == "NodeRestriction"
        assert f["service-cluster-ip-range"] == p["kubernetes_service_cidr"]
        assert f["service-account-key-file"] == "/etc/kubernetes/pki/sa.pub"
        assert f["service-account-signing-key-file"] == "/etc/kubernetes/pki/sa.key"
        assert f["requestheader-client-ca-file"] == "/etc/kubernetes/pki/front-proxy-ca.crt"
        assert f["requestheader-allowed-names"] == "front-proxy-client"
        assert f["proxy-client-cert-file"] == "/etc/kubernetes/pki/front-proxy-client.crt"
        assert container["image"] == f"registry.k8s.io/kube-apiserver:v{p['kubernetes_version']}"
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["host"] == address(model, node)
        assert container["resources"]["requests"]["cpu"]
        assert pod["spec"]["hostNetwork"] is True


def test_controller_manager_and_scheduler(model, rendered):
    p = model["param"]
    for node in model["masters"]:
        states = rendered[node]
        cm = args(states, "kubernetes-master-kube-controller-manager-manifest-managed")["dataset"]
        f = flags(cm["spec"]["containers"][0]["command"])
        assert f["kubeconfig"] == "/etc/kubernetes/controller-manager.conf"
        assert f["cluster-cidr"] == p["kubernetes_pod_cidr"]
        assert f["service-account-private-key-file"] == "/etc/kubernetes/pki/sa.key"
        assert f["use-service-account-credentials"] == "true"
        assert "cluster-signing-key-file" not in f, "the CA key stays on the CA minion"
        sched = args(states, "kubernetes-master-kube-scheduler-manifest-managed")["dataset"]
        f = flags(sched["spec"]["containers"][0]["command"])
        assert f["kubeconfig"] == "/etc/kubernetes/scheduler.conf"
        assert f["leader-elect"] == "true"


def test_no_csr_signing_anywhere(model, rendered):
    """The CA keys stay on the CA minion: the controller-manager runs no CSR signer nor
    approver (and no bootstrap-token controllers), no kubelet asks the API for a
    certificate (serving or client): Salt issues and renews both."""
    for node, states in rendered.items():
        c = args(states, "kubernetes-pool-kubelet-config-file-managed")["dataset"]
        assert c["serverTLSBootstrap"] is False, node
        assert c["rotateCertificates"] is False, node
        assert c["tlsCertFile"] == "/var/lib/kubelet/pki/kubelet.crt", node
        unit = args(states, "kubernetes-pool-kubelet-unit-file-managed")["context"]
        assert "bootstrap" not in json.dumps(unit), node
        if node not in model["masters"]:
            continue
        cm = args(states, "kubernetes-master-kube-controller-manager-manifest-managed")
        f = flags(cm["dataset"]["spec"]["containers"][0]["command"])
        assert f["controllers"].split(",") == ["*", "-csrsigning", "-csrapproving"], node
        assert not [k for k in f if k.startswith("cluster-signing")], node


def test_objects_are_valid_kubernetes(model, rendered):
    """Static pods and CoreDNS against the strict API schema of the model's version (the
    masters' Calico and OpenStack objects: tests/fast/test_calico.py and
    test_objects_schema.py)."""
    minor = ".".join(model["param"]["kubernetes_version"].split(".")[:2])
    checked = 0
    for states in rendered.values():
        for sid, state in states.items():
            if "serialize" not in state.get("file", []) and \
                    "manifest" not in state.get("stacksalt_static_pod", []):
                continue
            a = args(states, sid)
            if not a["name"].startswith(("/etc/kubernetes/manifests/",
                                         "/etc/kubernetes/objects/coredns/")):
                continue
            kubernetes_validate.validate(a["dataset"], minor, strict=True)
            checked += 1
    # 3 masters x (3 control-plane pods + 6 CoreDNS objects) + every node's kube-proxy
    assert checked == 3 * 9 + len(rendered)


def test_kubeconfigs_point_at_the_vip(model, rendered):
    p = model["param"]
    server = f"https://{p['kubernetes_api_vip']}:6443"
    for node, states in rendered.items():
        host = node.split(".")[0]
        expected = {
            "kubernetes-pool-kubelet-kubeconfig-managed": f"system:node:{host}",
            "kubernetes-pool-kube-proxy-kubeconfig-managed": "system:kube-proxy",
        }
        if node in model["masters"]:
            expected.update({
                "kubernetes-master-admin-kubeconfig-managed": "kubernetes-admin",
                "kubernetes-master-super-admin-kubeconfig-managed": "kubernetes-super-admin",
                "kubernetes-master-controller-manager-kubeconfig-managed":
                    "system:kube-controller-manager",
                "kubernetes-master-scheduler-kubeconfig-managed": "system:kube-scheduler",
            })
        for sid, user in expected.items():
            a = args(states, sid)
            assert a["context"]["server"] == server, f"{node}: {sid}"
            assert a["context"]["user"] == user, f"{node}: {sid}"
            assert (a["mode"], a["user"], a["group"]) == ("0600", "root", "root"), sid
            # rendered when the state runs, after its client certificate
            cert_ids = [r["x509"] for r in a["require"] if "x509" in r]
            assert cert_ids, f"{node}: {sid} does not wait for its certificate"
            cert = args(states, cert_ids[0])
            assert cert["CN"] == user
            assert a["context"]["cert_file"] == cert["name"]
        if node in model["masters"]:
            names = {s: args(states, s)["name"] for s in expected}
            assert names["kubernetes-master-admin-kubeconfig-managed"] == \
                "/etc/kubernetes/admin.conf"
            assert names["kubernetes-master-super-admin-kubeconfig-managed"] == \
                "/etc/kubernetes/super-admin.conf"
            # root's kubectl is admin.conf (revocable), never the break-glass one
            link = args(states, "kubernetes-master-root-kubeconfig-symlinked")
            assert link["target"] == "/etc/kubernetes/admin.conf"


def test_client_certificates_subjects_and_policies(model, rendered):
    for node, states in rendered.items():
        host = node.split(".")[0]
        kubelet = args(states, "kubernetes-pool-kubelet-client-certificate-managed")
        assert (kubelet["CN"], kubelet["O"]) == (f"system:node:{host}", "system:nodes")
        assert kubelet["signing_policy"] == f"kubernetes_node_client_{host}"
        proxy = args(states, "kubernetes-pool-kube-proxy-client-certificate-managed")
        assert proxy["signing_policy"] == "kubernetes_proxy_client"
        for sid, a in ((s, args(states, s)) for s in states):
            if sid.endswith("-private-key-managed"):
                assert a["mode"] == "0600", f"{node}: {sid}"
        if node not in model["masters"]:
            continue
        # kubeadm >= 1.29: admin.conf's group is bound by RBAC (revocable), super-admin.conf
        # is system:masters (break-glass); each under a policy of its own that pins it
        admin = args(states, "kubernetes-master-admin-client-certificate-managed")
        assert (admin["CN"], admin["O"]) == ("kubernetes-admin", "kubeadm:cluster-admins")
        assert admin["signing_policy"] == "kubernetes_admin_client"
        sup = args(states, "kubernetes-master-super-admin-client-certificate-managed")
        assert (sup["CN"], sup["O"]) == ("kubernetes-super-admin", "system:masters")
        assert sup["signing_policy"] == "kubernetes_super_admin_client"
        for sid in ("kubernetes-master-controller-manager-client-certificate-managed",
                    "kubernetes-master-scheduler-client-certificate-managed"):
            assert "O" not in args(states, sid), sid
            assert args(states, sid)["signing_policy"] == "kubernetes_master_client", sid
        kc = args(states, "kubernetes-master-apiserver-kubelet-client-certificate-managed")
        assert kc["O"] == "system:masters"
        etcd = args(states, "kubernetes-master-apiserver-etcd-client-certificate-managed")
        assert etcd["signing_policy"] == "etcd_client"
        fp = args(states, "kubernetes-master-front-proxy-client-certificate-managed")
        assert fp["signing_policy"] == "kubernetes_front_proxy_client"


def test_apiserver_certificate_sans(model, rendered):
    p = model["param"]
    service_ip = str(next(ipaddress.ip_network(p["kubernetes_service_cidr"]).hosts()))
    for node in model["masters"]:
        a = args(rendered[node], "kubernetes-master-apiserver-certificate-managed")
        sans = a["subjectAltName"].split(", ")
        host = node.split(".")[0]
        for san in ("DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
                    "DNS:kubernetes.default.svc.cluster.local", f"DNS:{host}", f"DNS:{node}",
                    f"IP:{service_ip}", f"IP:{p['kubernetes_api_vip']}",
                    f"IP:{address(model, node)}", "IP:127.0.0.1"):
            assert san in sans, f"{node}: apiserver.crt lacks {san}"


def test_kubelet_and_kube_proxy_configuration(model, rendered):
    p = model["param"]
    for node, states in rendered.items():
        cfg = args(states, "kubernetes-pool-kubelet-config-file-managed")
        assert cfg["name"] == "/var/lib/kubelet/config.yaml"
        c = cfg["dataset"]
        assert c["kind"] == "KubeletConfiguration"
        assert c["clusterDNS"] == [p["kubernetes_dns_ip"]]
        assert c["clusterDomain"] == "cluster.local"
        assert c["staticPodPath"] == "/etc/kubernetes/manifests"
        assert c["cgroupDriver"] == "systemd"
        assert c["containerRuntimeEndpoint"] == "unix:///run/containerd/containerd.sock"
        assert c["authentication"]["x509"]["clientCAFile"] == "/etc/kubernetes/pki/ca.crt"
        assert c["authentication"]["webhook"]["enabled"] is True
        assert c["authentication"]["anonymous"]["enabled"] is False
        assert c["authorization"]["mode"] == "Webhook"
        assert c["rotateCertificates"] is False
        tainted = [t["key"] for t in c["registerWithTaints"]]
        assert tainted == (["node-role.kubernetes.io/control-plane"]
                           if node in model["masters"] else [])
        kp = args(states, "kubernetes-pool-kube-proxy-config-file-managed")["dataset"]
        assert kp["kind"] == "KubeProxyConfiguration"
        assert kp["clusterCIDR"] == p["kubernetes_pod_cidr"]
        assert kp["clientConnection"]["kubeconfig"] == "/etc/kubernetes/kube-proxy.conf"
        unit = args(states, "kubernetes-pool-kubelet-unit-file-managed")
        assert unit["context"]["node_ip"] == address(model, node)


def test_coredns_addon(model, rendered):
    p = model["param"]
    states = rendered[model["masters"][0]]
    svc = args(states, "kubernetes-master-object-coredns-service-kube-dns-managed")
    assert svc["name"] == "/etc/kubernetes/objects/coredns/service-kube-dns.yaml"
    assert svc["dataset"]["spec"]["clusterIP"] == p["kubernetes_dns_ip"]
    dep = args(states, "kubernetes-master-object-coredns-deployment-coredns-managed")["dataset"]
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    cm = args(states, "kubernetes-master-object-coredns-configmap-coredns-managed")["dataset"]
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa" in cm["data"]["Corefile"]
    # the lab has no API: the plan is written, nothing is applied
    assert "kubernetes-master-objects-apply-plan-managed" in states
    assert "kubernetes-master-apply-switched-off" in states
    assert "kubernetes-master-objects-applied" not in states


def test_lab_installs_no_binaries_and_runs_no_kubelet(rendered):
    for node, states in rendered.items():
        assert not [s for s in states if s.endswith("-binary-managed")], node
        assert "kubernetes-pool-kubelet-service-running" not in states, node
        assert "kubernetes-pool-kubelet-unit-file-managed" in states, node


def _binaries(node: str, version: str | None = None) -> dict:
    common = {"binaries": {"install": True}}
    if version:
        common["version"] = version
    pillar = {"kubernetes": {"common": common}}
    return saltrender.salt_call(node, DEPLOYMENT, "state.show_sls",
                                "kubernetes.common.binaries", f"pillar={json.dumps(pillar)}")


@pytest.mark.parametrize("version", [None, "1.34.1"])
def test_binaries_url_and_pinned_sha256(lab_secrets, model, version):
    """With binaries:install the states download the model's version and check its pin."""
    node = model["nodes"][0]
    p = model["param"]
    version = version or p["kubernetes_version"]
    states = _binaries(node, version)
    for name in ("kubelet", "kubectl"):
        a = args(states, f"kubernetes-common-{name}-binary-managed")
        assert a["name"] == f"/usr/local/bin/{name}"
        assert a["source"] == f"https://dl.k8s.io/release/v{version}/bin/linux/amd64/{name}"
        assert a["source_hash"] == f"sha256={p['kubernetes_checksums'][version]['amd64'][name]}"
        assert a["mode"] == "0755"


def test_binary_without_pin_is_refused(lab_secrets, model):
    with pytest.raises(saltrender.RenderError) as err:
        _binaries(model["nodes"][0], "1.34.0")
    assert "no sha256 for kubelet 1.34.0 amd64" in str(err.value)


def test_keepalived_priorities_follow_master_order(model, rendered):
    p = model["param"]
    seen = []
    for node in model["masters"]:
        ctx = args(rendered[node], "kubernetes-master-keepalived-config-file-managed")["context"]
        assert ctx["vip"] == p["kubernetes_api_vip"]
        assert ctx["interface"] == p["kubernetes_api_vip_interface"] == "eth0"
        assert address(model, node) not in ctx["peers"] and len(ctx["peers"]) == 2
        seen.append((ctx["state"], ctx["priority"]))
    assert seen == [("MASTER", 150), ("BACKUP", 140), ("BACKUP", 130)]


@pytest.mark.parametrize("deployment", ["lab", "production"])
def test_keepalived_interface_comes_from_the_model_not_the_grains(deployment):
    """Rendered on machines whose interfaces differ (none holds the master's address, or
    another name does), keepalived's states are the same: the model's interface."""
    from stacksalt import secrets

    secrets.generate(deployment)
    dep = Deployment.load(deployment)
    node = next(n for n in dep.node_names
                if dep.parameters(n).get("kubernetes", {}).get("master", {}).get("enabled"))
    addr = dep.parameters(node)["linux"]["network"]["address"]
    interface = dep.parameters(node)["_param"]["kubernetes_api_vip_interface"]
    machines = [
        {"ip4_interfaces": {"lo": ["127.0.0.1"]}},
        {"ip4_interfaces": {"lo": ["127.0.0.1"], "wlp2s0": [addr]}},
        {"ip4_interfaces": {"lo": ["127.0.0.1"], interface: [addr]}},
    ]

    def one(grains):
        return saltrender.salt_call(node, deployment, "state.show_sls",
                                    "kubernetes.master.keepalived", grains=grains)

    with ThreadPoolExecutor(max_workers=3) as pool:
        renders = list(pool.map(one, machines))
    for states in renders:
        assert "test" not in states["kubernetes-master-keepalived-config-file-managed"], states
        ctx = args(states, "kubernetes-master-keepalived-config-file-managed")["context"]
        assert ctx["interface"] == interface
    assert renders[0] == renders[1] == renders[2]


def test_keepalived_without_interface_fails_naming_the_key(lab_secrets, model):
    pillar = json.dumps({"kubernetes": {"master": {"keepalived": {"interface": ""}}}})
    states = saltrender.salt_call(model["masters"][0], DEPLOYMENT, "state.show_sls",
                                  "kubernetes.master.keepalived", f"pillar={pillar}")
    state = states["kubernetes-master-keepalived-config-file-managed"]
    assert "test" in state and "kubernetes-master-keepalived-service-running" not in states
    name = args(states, "kubernetes-master-keepalived-config-file-managed")["name"]
    assert "kubernetes:master:keepalived:interface is not set" in name


def test_haproxy_fronts_the_vip_for_all_apiservers(model, rendered):
    p = model["param"]
    for node in model["masters"]:
        ctx = args(rendered[node], "kubernetes-master-haproxy-config-file-managed")["context"]
        assert ctx["bind"] == f"{p['kubernetes_api_vip']}:6443"
        assert [b["host"] for b in ctx["backends"]] == [address(model, m) for m in model["masters"]]
        assert ctx["backend_port"] == 6443
    for node in model["masters"]:
        sysctl = model["dep"].parameters(node)["linux"]["system"]["kernel"]["sysctl"]
        assert sysctl["net.ipv4.ip_nonlocal_bind"] == 1


def test_containerd_registry_and_sandbox_image(model, rendered):
    p = model["param"]
    registry = p["kubernetes_private_registry"]
    minor = ".".join(p["kubernetes_version"].split(".")[:2])
    pause = {"1.33": "3.10", "1.34": "3.10.1"}[minor]  # kubeadm's pause image per minor
    for states in rendered.values():
        cfg = args(states, "kubernetes-common-containerd-config-file-managed")
        assert cfg["context"]["sandbox_image"] == f"registry.k8s.io/pause:{pause}"
        assert cfg["context"]["certs_dir"] == "/etc/containerd/certs.d"
        rid = "kubernetes-common-containerd-registry-" + registry.replace(":", "-")
        hosts = args(states, f"{rid}-hosts-file-managed")
        assert hosts["name"] == f"/etc/containerd/certs.d/{registry}/hosts.toml"
        assert hosts["context"]["server"] == f"https://{registry}"
        ca = args(states, f"{rid}-ca-certificate-managed")
        assert ca["context"]["ca_path"] == "/etc/pki/ca/kubernetes/ca.crt"


def test_service_account_key_is_one_secret_for_all_masters(model, rendered, lab_secrets):
    key = lab_secrets["kubernetes_service_account_key"]
    assert "PRIVATE KEY-----" in key
    pub = subprocess.run(["openssl", "pkey", "-pubout"], input=key, capture_output=True,
                         text=True, check=True).stdout.strip()
    for node in model["masters"]:
        states = rendered[node]
        sa = args(states, "kubernetes-master-service-account-private-key-managed")
        assert sa["contents"].strip() == key.strip() and sa["mode"] == "0600"
        assert args(states, "kubernetes-master-service-account-public-key-managed")[
            "contents"].strip() == pub


def test_signing_policies_are_restricted(model):
    """The CA minion's policies: masters only for control-plane identities, the node client
    policy fixes O=system:nodes, kube-proxy's subject is fixed; none matches cfg01."""
    dep: Deployment = model["dep"]
    ca_minion = model["param"]["salt_ca_minion"]
    policies = dep.parameters(ca_minion)["x509_signing_policies"]
    masters = set(model["masters"])
    for name in ("kubernetes_apiserver", "kubernetes_master_client",
                 "kubernetes_front_proxy_client", "kubernetes_admin_client",
                 "kubernetes_super_admin_client"):
        allowed = {n for n in dep.node_names if fnmatch.fnmatch(n, policies[name]["minions"])}
        assert allowed == masters, name
    allowed = {n for n in dep.node_names
               if fnmatch.fnmatch(n, policies["kubernetes_proxy_client"]["minions"])}
    assert allowed == set(model["nodes"])
    # the kubelet's policies are per node (stacksalt_signing_policies ext_pillar): every
    # Kubernetes node has its own, usable by it alone, O fixed to system:nodes
    templates = dep.parameters(ca_minion)["salt"]["minion"]["ca"]["node_policies"]
    expanded = saltmodules.load("_pillar/stacksalt_signing_policies.py").expand(
        dep.parameters(ca_minion))
    for name in ("kubernetes_node_client", "kubernetes_node_server"):
        assert name not in policies, f"{name}: a shared policy would leave the subject free"
        allowed = {n for n in dep.node_names if fnmatch.fnmatch(n, templates[name]["minions"])}
        assert allowed == set(model["nodes"]), name
        for node in allowed:
            host = node.split(".")[0]
            assert expanded[f"{name}_{host}"]["minions"] == node
    assert templates["kubernetes_node_client"]["O"] == "system:nodes"
    assert policies["kubernetes_proxy_client"]["subject"] == "CN=system:kube-proxy"
    assert policies["kubernetes_front_proxy_client"]["subject"] == "CN=front-proxy-client"
    assert policies["kubernetes_master_client"]["extendedKeyUsage"] == "clientAuth"
    # the people's identities: subject pinned, so no other certificate gets system:masters
    # through them nor admin.conf's group another name
    assert (policies["kubernetes_admin_client"]["CN"],
            policies["kubernetes_admin_client"]["O"]) == ("kubernetes-admin",
                                                          "kubeadm:cluster-admins")
    assert (policies["kubernetes_super_admin_client"]["CN"],
            policies["kubernetes_super_admin_client"]["O"]) == ("kubernetes-super-admin",
                                                                "system:masters")
    for name in ("kubernetes_admin_client", "kubernetes_super_admin_client"):
        assert policies[name]["extendedKeyUsage"] == "clientAuth", name
        assert policies[name]["basicConstraints"] == "critical, CA:false", name
    assert policies["kubernetes_apiserver"]["extendedKeyUsage"] == "serverAuth"
    authorities = dep.parameters(ca_minion)["salt"]["minion"]["ca"]["authority"]
    assert {"kubernetes", "front-proxy", "etcd"} <= set(authorities)


def test_apiserver_audit_log(model, rendered):
    """The audit Policy from the model (kubernetes:master:audit) in its own directory,
    the apiserver's flags, both directories mounted (the policy read-only), the policy's
    hash in the pod's annotations (it is read only when the apiserver starts)."""
    builder = saltmodules.load("_modules/stacksalt_objects.py")
    for node in model["masters"]:
        states = rendered[node]
        policy_state = args(states, "kubernetes-master-audit-policy-file-managed")
        assert policy_state["name"] == "/etc/kubernetes/audit/policy.yaml"
        assert (policy_state["mode"], policy_state["user"]) == ("0600", "root")
        for sid, path in (("kubernetes-master-audit-policy-directory-managed",
                           "/etc/kubernetes/audit"),
                          ("kubernetes-master-audit-log-directory-managed",
                           "/var/log/kubernetes/audit")):
            a = args(states, sid)
            assert (a["name"], a["mode"], a["user"]) == (path, "0700", "root"), sid
        policy = policy_state["dataset"]
        assert (policy["apiVersion"], policy["kind"]) == ("audit.k8s.io/v1", "Policy")
        assert policy["omitStages"] == ["RequestReceived"]
        # valid: every rule a known level; no body of what holds credentials is logged
        assert builder.audit_policy(policy) == policy
        levels = {r["level"] for r in policy["rules"]}
        assert levels <= {"None", "Metadata", "Request"}, "RequestResponse: at most Request"
        for group, resource in builder.AUDIT_SENSITIVE:
            first = next(r for r in policy["rules"]
                         if builder.audit_rule_match(r, group, resource) == "all")
            assert first["level"] == "Metadata", resource
        # noisy read-only system users are not logged
        quiet = [r for r in policy["rules"] if r["level"] == "None"]
        assert {"system:kube-proxy", "system:apiserver"} <= {u for r in quiet
                                                             for u in r.get("users", [])}
        assert policy["rules"][-1] == {"level": "Request"}

        pod = args(states, "kubernetes-master-kube-apiserver-manifest-managed")
        assert {"file": "kubernetes-master-audit-policy-file-managed"} in pod["require"]
        assert {"file": "kubernetes-master-audit-log-directory-managed"} in pod["require"]
        spec = pod["dataset"]["spec"]
        f = flags(spec["containers"][0]["command"])
        assert f["audit-policy-file"] == "/etc/kubernetes/audit/policy.yaml"
        assert f["audit-log-path"] == "/var/log/kubernetes/audit/audit.log"
        assert (f["audit-log-maxage"], f["audit-log-maxbackup"], f["audit-log-maxsize"]) == (
            "30", "10", "100")
        mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v["hostPath"] for v in spec["volumes"]}
        assert mounts["audit-policy"] == {"name": "audit-policy",
                                          "mountPath": "/etc/kubernetes/audit", "readOnly": True}
        assert volumes["audit-policy"] == {"path": "/etc/kubernetes/audit", "type": "Directory"}
        assert mounts["audit-log"]["mountPath"] == "/var/log/kubernetes/audit"
        assert mounts["audit-log"]["readOnly"] is False
        assert volumes["audit-log"]["path"] == "/var/log/kubernetes/audit"
        # the policy restarts the apiserver through the pod's config-hash (it is a file
        # the pod reads); the log it writes is not fingerprinted
        files = saltmodules.load("_states/stacksalt_static_pod.py").host_files(pod["dataset"])
        assert "/etc/kubernetes/audit/policy.yaml" in files
        assert not [p for p in files if p.startswith("/var/log/kubernetes/audit")], files
