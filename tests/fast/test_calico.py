"""The calico formula rendered with real pillars: lab (full mesh) and production (route
reflectors, mesh off, ToR peers), with Calico's objects and resources as the masters write
them (kubernetes.master.objects, built from calico:node by the stacksalt_objects module).
Every Kubernetes object passes the strict Kubernetes schema, every Calico resource the
Calico validator; the validator itself rejects bad input."""

from __future__ import annotations

import copy
import fnmatch
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes_validate
import pytest

from stacksalt import saltrender
from stacksalt.deployment import Deployment
from stacksalt.validate import calico

pytestmark = pytest.mark.fast

K8S_VERSIONS = ("1.33", "1.34")
ADDONS = "/etc/kubernetes/objects/calico/"
RESOURCES = ADDONS + "resources/"
NODES = ADDONS + "nodes/"
PLAN = "/etc/kubernetes/objects/apply-plan.yaml"
PKI = {"ca": "/etc/calico/pki/ca.crt", "cert": "/etc/calico/pki/etcd-client.crt",
       "key": "/etc/calico/pki/etcd-client.key"}
CALICOCTL_SHA256 = {
    "amd64": "a7d017d1abf6ef5d6e03267187c0dd68c32f5e937b64decd29d003be44fa6b94",
    "arm64": "2ae0474b88a6042e5489d7410d2669a9d443c9d5c51e2bdc8ebe4d6dd98f2475",
}
RENDER = {
    "lab": ["mst01.lab.local", "mst02.lab.local", "ctl01.lab.local", "cmp01.lab.local"],
    "production": ["mst01.prod.local", "mst02.prod.local", "ctl01.prod.local",
                   "cmp001.prod.local"],
}


# -- helpers ---------------------------------------------------------------------------


def args(state: dict[str, Any], module: str) -> dict[str, Any]:
    """The merged arguments of the `module` call of one rendered state."""
    return {k: v for d in state[module] if isinstance(d, dict) for k, v in d.items()}


def files(states: dict[str, Any], prefix: str = "/") -> dict[str, Any]:
    """{path: dataset} of every file.serialize of one node in the directory `prefix` (a
    path ending in /: that directory, not below it), or under it (any other prefix)."""
    out = {}
    for state in states.values():
        if isinstance(state, dict) and "file" in state and "serialize" in state["file"]:
            a = args(state, "file")
            name = str(a["name"])
            if prefix.endswith("/") and prefix != "/":
                if name.rsplit("/", 1)[0] + "/" == prefix:
                    out[name] = a["dataset"]
            elif name.startswith(prefix):
                out[name] = a["dataset"]
    return out


def by_kind(states: dict[str, Any], prefix: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in files(states, prefix).values()}


def cmds(states: dict[str, Any]) -> dict[str, str]:
    return {sid: args(s, "cmd")["name"] for sid, s in states.items()
            if isinstance(s, dict) and "cmd" in s}


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def params(deployment: str, node: str) -> dict[str, Any]:
    return Deployment.load(deployment).parameters(node)["_param"]


@pytest.fixture(scope="module")
def rendered(lab_secrets) -> dict[str, dict[str, Any]]:
    jobs = [(dep, node) for dep, nodes in RENDER.items() for node in nodes]

    def one(job):
        dep, node = job
        return node, saltrender.show_sls(node, dep, ["calico", "kubernetes.master.objects"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, jobs))


@pytest.fixture(scope="module")
def lab_params() -> dict[str, Any]:
    return params("lab", "mst01.lab.local")


@pytest.fixture(scope="module")
def prod_params() -> dict[str, Any]:
    return params("production", "mst01.prod.local")


# -- every Kubernetes node -----------------------------------------------------------------


@pytest.mark.parametrize("deployment", sorted(RENDER))
def test_calico_is_on_every_kubernetes_node_and_only_there(deployment):
    dep = Deployment.load(deployment)
    for node in dep.node_names:
        apps = dep.rendered[node]["applications"]
        k8s = "kubernetes" in dep.rendered[node]["parameters"]
        assert ("calico" in apps) == k8s == (not node.startswith("cfg")), node


@pytest.mark.parametrize("node", [n for nodes in RENDER.values() for n in nodes])
def test_every_node_writes_cni_config_and_calicoctl_config(rendered, node):
    deployment = "lab" if node.endswith(".lab.local") else "production"
    p = params(deployment, node)
    endpoints = ",".join(f"https://{m['host']}:2379" for m in p["etcd_members"])
    written = files(rendered[node])
    conflist = written["/etc/cni/net.d/10-calico.conflist"]
    plugin = conflist["plugins"][0]
    assert plugin["type"] == "calico" and plugin["datastore_type"] == "etcdv3"
    assert plugin["etcd_endpoints"] == endpoints
    assert (plugin["etcd_ca_cert_file"], plugin["etcd_cert_file"], plugin["etcd_key_file"]) == (
        PKI["ca"], PKI["cert"], PKI["key"])
    assert plugin["ipam"] == {"type": "calico-ipam"}
    assert plugin["log_file_path"] == "/var/log/calico/cni/cni.log"
    assert conflist["plugins"][1]["type"] == "portmap"
    assert conflist["plugins"][1]["capabilities"] == {"portMappings": True}
    ctl = written["/etc/calico/calicoctl.cfg"]
    assert ctl["spec"] == {"datastoreType": "etcdv3", "etcdEndpoints": endpoints,
                           "etcdCACertFile": PKI["ca"], "etcdCertFile": PKI["cert"],
                           "etcdKeyFile": PKI["key"]}
    assert calico.validate(ctl) == []


@pytest.mark.parametrize("node", ["mst01.lab.local", "cmp001.prod.local"])
def test_certificate_states_and_the_ca_copy_from_the_mine_when_the_state_runs(rendered, node):
    """Rendered here the mine is empty, and that changes nothing: the CA certificate is read
    from the mine when the state runs (pki/macros.jinja), after a check that fails in one
    line naming the CA minion when the mine lacks it."""
    states = rendered[node]
    deployment = "lab" if node.endswith(".lab.local") else "production"
    ca_server = params(deployment, node)["salt_ca_minion"]
    assert args(states["calico-node-pki-directory-managed"], "file")["mode"] == "0700"
    key = args(states["calico-node-etcd-client-private-key-managed"], "x509")
    assert key["name"] == PKI["key"] and key["mode"] == "0600"
    assert (key["user"], key["group"]) == ("root", "root")
    cert = args(states["calico-node-etcd-client-certificate-managed"], "x509")
    assert cert["name"] == PKI["cert"] and cert["private_key"] == PKI["key"]
    assert cert["signing_policy"] == "etcd_calico_client"
    # etcd's user for Calico (etcd auth keyed on the CN: /calico/ only), on every node
    assert cert["ca_server"] == ca_server and cert["CN"] == "calico"
    assert {"file": "calico-node-etcd-ca-certificate-managed"} in cert["require"]
    assert {"file": "pki-certificate-check-script-managed"} in cert["require"]
    ca = args(states["calico-node-etcd-ca-certificate-managed"], "file")
    assert ca["name"] == PKI["ca"] and ca["source"] == "salt://pki/files/ca.crt.jinja"
    assert ca["context"] == {"ca_server": ca_server, "mine_function": "stacksalt_ca_certs",
                             "ca_path": "/etc/pki/ca/etcd/ca.crt"}
    assert {"test": "calico-node-etcd-ca-certificate-in-mine"} in ca["require"]
    guard = args(states["calico-node-etcd-ca-certificate-in-mine"], "test")
    assert guard["unless"] == [{"fun": "mine.get", "args": [ca_server, "stacksalt_ca_certs"],
                                "get_return": f"{ca_server}:/etc/pki/ca/etcd/ca.crt"}]
    assert f"apply salt.minion.ca on {ca_server}" in guard["comment"]


# -- the lab: full mesh, no binaries ---------------------------------------------------------


def test_lab_masters_write_objects_and_resources_pool_nodes_do_not(rendered):
    for node in RENDER["lab"]:
        has = bool(files(rendered[node], ADDONS)) , bool(files(rendered[node], RESOURCES))
        assert has == ((True, True) if node.startswith("mst") else (False, False)), node


def test_lab_installs_and_applies_nothing(rendered):
    for node in RENDER["lab"]:
        assert "calico-node-calicoctl-binary-installed" not in rendered[node]
        assert cmds(rendered[node]) == {}, node


def test_lab_resources_full_mesh(rendered, lab_params):
    res = by_kind(rendered["mst01.lab.local"], RESOURCES)
    assert set(res) == {("IPPool", "default-ipv4-ippool"), ("BGPConfiguration", "default")}
    assert res["IPPool", "default-ipv4-ippool"]["spec"] == {
        "cidr": lab_params["kubernetes_pod_cidr"], "blockSize": 26, "ipipMode": "Never",
        "vxlanMode": "Never", "natOutgoing": True, "nodeSelector": "all()"}
    spec = res["BGPConfiguration", "default"]["spec"]
    assert spec["asNumber"] == 64512 and spec["nodeToNodeMeshEnabled"] is True


def test_lab_resource_files_are_named_by_kind_and_name(rendered):
    assert sorted(files(rendered["mst01.lab.local"], RESOURCES)) == [
        RESOURCES + "bgpconfiguration-default.yaml",
        RESOURCES + "ippool-default-ipv4-ippool.yaml",
    ]


# -- Kubernetes objects ----------------------------------------------------------------------


def test_kubernetes_objects_are_the_expected_set(rendered):
    objs = by_kind(rendered["mst01.lab.local"], ADDONS)
    expected = {("DaemonSet", "calico-node"), ("Deployment", "calico-kube-controllers")}
    for name in ("calico-node", "calico-cni-plugin", "calico-kube-controllers"):
        expected |= {("ServiceAccount", name), ("ClusterRole", name),
                     ("ClusterRoleBinding", name)}
    assert set(objs) == expected
    for path, obj in files(rendered["mst01.lab.local"], ADDONS).items():
        assert path == f"{ADDONS}{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("node", ["mst01.lab.local", "mst01.prod.local"])
def test_kubernetes_objects_pass_the_strict_schema(rendered, node, version):
    objs = files(rendered[node], ADDONS)
    assert len(objs) == 11
    for path, obj in objs.items():
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{node} {path}: {exc.message} at {list(exc.path)}")


def test_calico_node_daemonset(rendered, lab_params):
    ds = by_kind(rendered["mst01.lab.local"], ADDONS)["DaemonSet", "calico-node"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    node = next(c for c in pod["containers"] if c["name"] == "calico-node")
    assert node["image"] == "docker.io/calico/node:v3.30.3"
    assert node["securityContext"]["privileged"] is True
    e = env(node)
    endpoints = ",".join(f"https://{m['host']}:2379" for m in lab_params["etcd_members"])
    assert e["DATASTORE_TYPE"] == "etcdv3" and e["ETCD_ENDPOINTS"] == endpoints
    assert (e["ETCD_CA_CERT_FILE"], e["ETCD_CERT_FILE"], e["ETCD_KEY_FILE"]) == (
        PKI["ca"], PKI["cert"], PKI["key"])
    assert e["CALICO_NETWORKING_BACKEND"] == "bird"
    assert e["CALICO_IPV4POOL_IPIP"] == e["CALICO_IPV4POOL_VXLAN"] == "Never"
    assert e["IP"] == "autodetect" and e["NO_DEFAULT_POOLS"] == "true"
    assert e["NODENAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    # the kubelet's node IP: never the API's VIP, which moves between the masters
    assert e["IP_AUTODETECTION_METHOD"] == "kubernetes-internal-ip"
    assert node["livenessProbe"]["exec"]["command"] == [
        "/bin/calico-node", "-felix-live", "-bird-live"]
    assert node["readinessProbe"]["exec"]["command"] == [
        "/bin/calico-node", "-felix-ready", "-bird-ready"]
    # the etcd client certificate comes from the host, read-only; no Secret anywhere
    volumes = {v["name"]: v for v in pod["volumes"]}
    mount = next(m for m in node["volumeMounts"] if m["mountPath"] == "/etc/calico/pki")
    assert mount["readOnly"] is True
    assert volumes[mount["name"]]["hostPath"]["path"] == "/etc/calico/pki"
    # install-cni installs binaries only: the conflist it writes goes to a scratch dir
    cni = pod["initContainers"][0]
    assert cni["image"] == "docker.io/calico/cni:v3.30.3"
    net_d = next(m for m in cni["volumeMounts"] if m["mountPath"] == "/host/etc/cni/net.d")
    assert "emptyDir" in volumes[net_d["name"]]


def test_no_certificate_or_secret_in_any_object(rendered):
    for node in ("mst01.lab.local", "mst01.prod.local"):
        calico = {path: obj for prefix in (ADDONS.rstrip("/"), "/etc/calico", "/etc/cni")
                  for path, obj in files(rendered[node], prefix).items()}
        assert len(calico) > 10, sorted(calico)
        for path, obj in calico.items():
            text = json.dumps(obj)
            assert "BEGIN" not in text and '"secret"' not in text, path
            assert obj.get("kind") != "Secret", path


def test_kube_controllers_use_etcd_from_the_host(rendered):
    dep = by_kind(rendered["mst01.lab.local"], ADDONS)["Deployment", "calico-kube-controllers"]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == "docker.io/calico/kube-controllers:v3.30.3"
    assert env(c)["DATASTORE_TYPE"] == "etcdv3"
    assert pod["volumes"][0]["hostPath"]["path"] == "/etc/calico/pki"


# -- production: route reflectors, ToR peers, binaries --------------------------------------


def test_production_resources_route_reflectors_and_peers(rendered, prod_params):
    res = by_kind(rendered["mst01.prod.local"], RESOURCES)
    cfg = res["BGPConfiguration", "default"]["spec"]
    assert cfg["nodeToNodeMeshEnabled"] is False
    assert cfg["asNumber"] == prod_params["calico_as_number"]
    assert res["IPPool", "default-ipv4-ippool"]["spec"]["cidr"] == prod_params[
        "kubernetes_pod_cidr"]
    peers = {name: o["spec"] for (kind, name), o in res.items() if kind == "BGPPeer"}
    for peer in prod_params["calico_bgp_peers"]:
        spec = peers[peer["name"]]
        assert spec["peerIP"] == peer["peer_ip"] and spec["asNumber"] == peer["as_number"]
        assert spec.get("node") == peer.get("node")
    assert [p for p in peers.values() if "node" in p and "peerIP" in p], "no per-node peer"
    assert [p for p in peers.values() if "node" not in p and "peerIP" in p], "no global peer"
    assert peers["peer-with-route-reflectors"] == {
        "nodeSelector": "all()", "peerSelector": "route-reflector == 'true'"}
    assert not [k for k in res if k[0] == "Node"], "a Node is patched, never applied"
    rrs = {name: o for (kind, name), o in by_kind(rendered["mst01.prod.local"], NODES).items()
           if kind == "Node"}
    assert sorted(rrs) == sorted(r["node"] for r in prod_params["calico_bgp_route_reflectors"])
    for rr in prod_params["calico_bgp_route_reflectors"]:
        node = rrs[rr["node"]]
        assert node["metadata"]["labels"] == {"route-reflector": "true"}
        assert node["spec"] == {"bgp": {"routeReflectorClusterID": rr["cluster_id"]}}


@pytest.mark.parametrize("node", ["mst01.lab.local", "mst01.prod.local", "mst02.prod.local"])
def test_every_calico_resource_passes_the_validator(rendered, node):
    objs = {**files(rendered[node], RESOURCES), **files(rendered[node], NODES)}
    assert objs
    for path, obj in objs.items():
        assert calico.validate(obj) == [], path


def test_production_installs_calicoctl_pinned(rendered, prod_params):
    for node in RENDER["production"]:
        state = rendered[node]["calico-node-calicoctl-binary-installed"]
        a = args(state, "file")
        assert a["name"] == "/usr/local/bin/calicoctl" and a["mode"] == "0755"
        assert a["source"] == ("https://github.com/projectcalico/calico/releases/download/"
                               "v3.30.3/calicoctl-linux-amd64")
        assert a["source_hash"] == f"sha256={CALICOCTL_SHA256['amd64']}"


def test_production_applies_every_resource_through_the_plan(rendered):
    """No command of any Calico state runs calicoctl: every resource is a calicoctl step
    of the masters' one plan, the route reflectors' Nodes a patch awaiting calico-node's
    registration of that node, after calico-node's rollout."""
    for node in RENDER["production"]:
        assert cmds(rendered[node]) == {}, node
    plan = files(rendered["mst01.prod.local"], PLAN)[PLAN]
    steps = {s["file"]: s for s in plan["steps"]}
    order = [s["name"] for s in plan["steps"]]
    top = PLAN.rsplit("/", 1)[0] + "/"
    for path, obj in files(rendered["mst01.prod.local"], RESOURCES).items():
        s = steps[path[len(top):]]
        assert (s["tool"], s["action"], s["kind"], s["object"]) == (
            "calicoctl", "apply", obj["kind"], obj["metadata"]["name"]), s
        assert order.index(s["name"]) < order.index("daemonset/calico-node"), s
    nodes = files(rendered["mst01.prod.local"], NODES)
    assert len(nodes) == 2
    for path, obj in nodes.items():
        s = steps[path[len(top):]]
        assert s["object"] == obj["metadata"]["name"], s
        assert (s["tool"], s["action"], s.get("await")) == ("calicoctl", "patch", "exists"), s
        assert order.index(s["name"]) > order.index("daemonset/calico-node"), s
    assert plan["tools"]["calicoctl"] == {"binary": "/usr/local/bin/calicoctl",
                                          "config": "/etc/calico/calicoctl.cfg"}


def test_production_arm64_pins_its_own_checksum():
    out = saltrender.salt_call(
        "cmp001.prod.local", "production", "state.show_sls", "calico.node.calicoctl",
        'pillar={"calico": {"node": {"arch": "arm64"}}}')
    a = args(out["calico-node-calicoctl-binary-installed"], "file")
    assert a["source"].endswith("/v3.30.3/calicoctl-linux-arm64")
    assert a["source_hash"] == f"sha256={CALICOCTL_SHA256['arm64']}"


# -- the model is refused when inconsistent ---------------------------------------------------


@pytest.mark.parametrize("override, message", [
    ({"bgp": {"node_to_node_mesh": True}}, "node_to_node_mesh is true but route_reflectors"),
    ({"bgp": {"route_reflectors": [{"node": "nosuch", "cluster_id": "244.0.0.1"}]}},
     "nosuch is not in the host table"),
    ({"bgp": {"route_reflectors": [{"node": "mst01", "cluster_id": "rr"}]}},
     "IPv4-like cluster_id"),
    ({"version": "3.99.0"}, "no sha256 for calicoctl 3.99.0"),
    # production's API VIP is 10.20.0.5, on the management network 10.20.0.0/22
    ({"ip_autodetection_method": "can-reach=10.20.0.5"},
     "calico:node:ip_autodetection_method: 'can-reach=10.20.0.5' makes the VRRP master"),
    ({"ip_autodetection_method": "cidr=10.20.0.0/16"},
     "10.20.0.0/16 contains the API VIP 10.20.0.5"),
    ({"ip_autodetection_method": "first-fond"}, "not a method calico-node knows"),
])
def test_inconsistent_model_is_a_render_error(override, message):
    pillar = json.dumps({"calico": {"node": override}})
    with pytest.raises(saltrender.RenderError, match=message):
        out = saltrender.salt_call("mst01.prod.local", "production", "state.show_sls", "calico",
                                   f"pillar={pillar}")
        if isinstance(out, list):
            raise saltrender.RenderError("\n".join(out))


# -- the CA's signing policy ----------------------------------------------------------------------


@pytest.mark.parametrize("deployment", sorted(RENDER))
def test_signing_policy_admits_every_calico_node(deployment):
    dep = Deployment.load(deployment)
    ca = next(n for n in dep.node_names if n.startswith("cfg01"))
    policy = dep.parameters(ca)["x509_signing_policies"]["etcd_calico_client"]
    assert policy["extendedKeyUsage"] == "clientAuth"
    assert policy["signing_cert"] == "/etc/pki/ca/etcd/ca.crt"
    for node in dep.node_names:
        if "calico" in dep.rendered[node]["applications"]:
            assert fnmatch.fnmatchcase(node, policy["minions"]), node


# -- the validator rejects what Calico would ----------------------------------------------------


POOL = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
        "metadata": {"name": "pool"},
        "spec": {"cidr": "10.244.0.0/16", "blockSize": 26, "ipipMode": "Never",
                 "vxlanMode": "Never", "natOutgoing": True, "nodeSelector": "all()"}}


def _with(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    *parents, last = path.split(".")
    target = out
    for p in parents:
        target = target[p]
    target[last] = value
    return out


@pytest.mark.parametrize("method, vip, refused", [
    ("kubernetes-internal-ip", "10.0.0.5", False),
    ("interface=eth0", "10.0.0.5", False),
    ("cidr=10.0.0.0/29", "10.0.0.5", True),
    ("cidr=10.0.1.0/24, 10.0.0.4/30", "10.0.0.5", True),
    ("cidr=10.0.0.8/29,10.0.0.16/28", "10.0.0.5", False),
    ("can-reach=10.0.0.5", "10.0.0.5", True),
    ("can-reach=10.0.0.1", "10.0.0.5", False),
    ("cidr=10.0.0.300/24", "10.0.0.5", True),
    ("", "10.0.0.5", True),
])
def test_bgp_address_detection_never_picks_the_vip(method, vip, refused):
    from stacksalt import objects

    problem = objects.builder().autodetection_problem(method, vip)
    assert bool(problem) == refused, problem
    assert "\n" not in problem


def test_validator_accepts_a_good_pool():
    assert calico.validate(POOL) == []


@pytest.mark.parametrize("path, value, expected", [
    ("spec.ipipMode", "Sometimes", "spec.ipipMode: 'Sometimes' is not one of"),
    ("spec.vxlanMode", "always", "spec.vxlanMode: 'always' is not one of"),
    ("spec.unknownField", 1, "'unknownField' was unexpected"),
    ("metadata.namespace", "kube-system", "'namespace' was unexpected"),
    ("spec.blockSize", "26", "spec.blockSize: '26' is not of type 'integer'"),
    ("spec.natOutgoing", "yes", "spec.natOutgoing: 'yes' is not of type 'boolean'"),
    ("spec.cidr", "10.244.0.1/16", "spec.cidr: '10.244.0.1/16' is not a 'cidr'"),
    ("spec.blockSize", 33, "spec.blockSize: 33 is not in 20..32"),
    ("spec.ipipMode", "Always", None),  # valid alone
])
def test_validator_rejects_bad_pools(path, value, expected):
    problems = calico.validate(_with(POOL, path, value))
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_validator_rejects_ipip_and_vxlan_together():
    bad = _with(_with(POOL, "spec.ipipMode", "Always"), "spec.vxlanMode", "CrossSubnet")
    assert calico.validate(bad) == ["spec: ipipMode and vxlanMode cannot both be enabled"]


@pytest.mark.parametrize("spec, expected", [
    ({"peerIP": "10.0.0.1", "asNumber": 65001}, []),
    ({"peerIP": "10.0.0.1:1179", "asNumber": "1.10"}, []),
    ({"peerIP": "10.0.0.1", "asNumber": "65001"}, ["spec.asNumber"]),
    ({"peerIP": "10.0.0.256", "asNumber": 65001}, ["spec.peerIP"]),
    ({"peerIP": "10.0.0.1", "asNumber": 65001, "sourceAddress": "Any"}, ["spec.sourceAddress"]),
    ({"peerIP": "10.0.0.1"}, ["spec.asNumber: required"]),
    ({"nodeSelector": "all()", "peerSelector": "rr == 'true'", "peerIP": "10.0.0.1"},
     ["spec.peerIP: must be empty"]),
    ({"node": "a", "nodeSelector": "all()", "peerSelector": "x == 'y'"}, ["node and nodeSelector"]),
])
def test_validator_bgppeer(spec, expected):
    obj = {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": "p"},
           "spec": spec}
    problems = calico.validate(obj)
    assert len(problems) == len(expected), problems
    for want, got in zip(expected, problems, strict=True):
        assert want in got


@pytest.mark.parametrize("obj, expected", [
    ({"kind": "BGPConfiguration", "spec": {"nodeToNodeMeshEnabled": "false"}},
     "spec.nodeToNodeMeshEnabled: 'false' is not of type 'boolean'"),
    ({"kind": "BGPConfiguration", "spec": {"logSeverityScreen": "Verbose"}},
     "spec.logSeverityScreen"),
    ({"kind": "BGPConfiguration", "spec": {"nodeMeshMaxRestartTime": "2 minutes"}},
     "spec.nodeMeshMaxRestartTime"),
    ({"kind": "Node", "spec": {"bgp": {"routeReflectorClusterID": "cluster-1"}}},
     "spec.bgp.routeReflectorClusterID: 'cluster-1' is not a 'ipv4'"),
    ({"kind": "Node", "spec": {"bgp": {"routeReflectorClusterId": "244.0.0.1"}}},
     "'routeReflectorClusterId' was unexpected"),
    ({"kind": "Node", "metadata": {"name": "n", "labels": {"route-reflector": True}}},
     "metadata.labels.route-reflector: True is not of type 'string'"),
    ({"kind": "IPPool", "metadata": {"name": "-bad-"}}, "metadata.name"),
    ({"kind": "HostEndpoint"}, "kind: 'HostEndpoint' is not a Calico kind"),
    ({"apiVersion": "crd.projectcalico.org/v1"}, "apiVersion"),
])
def test_validator_rejects_bad_resources(obj, expected):
    full = {"apiVersion": "projectcalico.org/v3", "metadata": {"name": "x"},
            "spec": {"cidr": "10.244.0.0/16"} if obj.get("kind") == "IPPool" else {}}
    full.update(obj)
    full.setdefault("kind", "IPPool")
    problems = calico.validate(full)
    assert any(expected in p for p in problems), problems
