#!/usr/bin/python3
"""A recording stand-in for kubectl and calicoctl (tests only: no API server, kubelet or
Calico can run on these machines). Installed as both binaries; its name says which.

Every invocation appends one JSON line {tool, argv, start, pid} to <dir>/calls.jsonl,
where <dir> is $KUBECTL_RECORDER_DIR or /var/lib/kubectl-recorder. It answers as
<dir>/answers.json says:

    {"rules": [{"match": ["rollout", "status", "deployment/glance"],  # all in argv
                "tool": "kubectl",                                    # optional
                "rc": 1, "out": "error: ...", "sleep": 30,
                "echo_file": true}],                                  # print the -f file
     "nodes": ["mst01", "cmp001"]}    # the cluster's nodes (calico-node registers them)

The first rule that matches decides, and nothing else happens. Without one, it does what
the real binary would do, against a small model of the cluster kept in <dir>/cluster.json,
and refuses what the real one could not do at that moment:

kubectl
  - needs its --kubeconfig file, and every -f file, readable;
  - RBAC of admin.conf (kubeadm >= 1.29): a kubeconfig whose user is ``kubernetes-admin``
    (group kubeadm:cluster-admins) is Forbidden every call but ``/readyz`` until the
    ClusterRoleBinding ``kubeadm:cluster-admins`` was applied (by another user:
    ``kubernetes-super-admin``, system:masters); any other user, or none, is not checked;
  - ``apply -f``: the object's namespace must exist (default, kube-system, kube-public,
    kube-node-lease, or a Namespace applied before) and agree with --namespace;
  - ``rollout status`` / ``wait --for=condition=complete``: the object must exist; its pods
    start only if what they need is there: a pod network (calico-node rolled out after an
    IPPool was applied) unless the pod is on the host network, their ServiceAccount, the
    Secrets of their secretKeyRefs, their PersistentVolumeClaims. Pods that cannot start
    make the rollout time out, as kubectl would after --timeout (answered at once, so tests
    stay fast). A finished rollout of calico-node registers every node of ``nodes`` as a
    Calico Node;
  - ``wait --for=condition=failed`` blocks (the apply kills it once the Job completed);
  - ``get <kind>/<name> --ignore-not-found -o name``: the name if the object exists;
  - ``delete job/<name>``: removes it.

  - ``get --raw /readyz``: ``ok``, or (answers ``"not_ready_calls": N``) an error for the
    first N such calls, as an apiserver that is still starting;

calicoctl
  - needs its --config file, and the etcd CA, certificate and key it names, readable;
  - ``apply -f``: creates or replaces the resource; replacing a Node that calico-node
    registered is refused (it would drop what calico-node set: patch it instead);
  - ``get node <name>``: exit 1 until the node is registered;
  - ``patch node <name> --patch=<json>`` and ``label nodes <name> k=v``: the node must exist.

Strict preconditions: when <dir>/strict.json exists, every call of either tool first checks
what a real kubectl or calicoctl needs at that moment on a master, and each failure is
appended to <dir>/precondition_failures.jsonl ({tool, argv, failures}) and refuses the
call (exit 1). A readiness probe (``get --raw /readyz``) that finds them unmet answers
"not ready" (exit 1), as a real apiserver would, and is logged to
<dir>/readyz_not_ready.jsonl instead: polling until ready is what it is for. strict.json:

    {"etcdctl": "/usr/bin/etcdctl",              # the real one: etcd answers over TLS
     "etcd_endpoints": "https://10.0.0.11:2379",  # `endpoint health --cluster`: quorum
     "etcd_cacert": ..., "etcd_cert": ..., "etcd_key": ...,
     "apiserver_manifest": "/etc/kubernetes/manifests/kube-apiserver.yaml",
     "kubelet_unit": "kubelet", "systemctl": "systemctl",  # `systemctl is-active`
     "kubernetes_version": "1.33.5",              # the schemas every -f file must pass
     "python_path": ["/srv/stacksalt/src"]}       # where stacksalt.validate is imported

Every key is optional; a check whose key is missing is not made.
"""

import fcntl
import json
import os
import subprocess
import sys
import time

try:
    import yaml
except ImportError:  # the test installs it with an interpreter that has PyYAML
    yaml = None

DIR = os.environ.get("KUBECTL_RECORDER_DIR", "/var/lib/kubectl-recorder")
SYSTEM_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
                  "StorageClass", "CustomResourceDefinition", "PriorityClass", "Node"}
CALICO_KINDS = {"ippool": "IPPool", "bgpconfiguration": "BGPConfiguration",
                "bgppeer": "BGPPeer", "node": "Node", "nodes": "Node"}
PLURAL = {"Deployment": "deployments", "DaemonSet": "daemonsets", "Job": "jobs"}


class Refused(Exception):
    def __init__(self, out: str, rc: int = 1):
        super().__init__(out)
        self.out, self.rc = out, rc


def flag(argv, name):
    for a in argv:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None


def readable(path, what):
    if not path or not os.access(path, os.R_OK):
        raise Refused(f"error: {what} {path!r} cannot be read")


def load_file(path):
    readable(path, "the path")
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


# ---------------------------------------------------------------------- the cluster model


class Cluster:
    def __init__(self):
        self.path = os.path.join(DIR, "cluster.json")
        self.lock = open(os.path.join(DIR, ".lock"), "w")  # noqa: SIM115
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            with open(self.path, encoding="utf-8") as fh:
                self.data = json.load(fh)
        except FileNotFoundError:
            self.data = {}
        self.data.setdefault("kube", {})
        self.data.setdefault("calico", {})
        self.data.setdefault("rolled_out", [])

    def save(self):
        with open(self.path, "w", encoding="utf-8") as fh:
            json.dump(self.data, fh, indent=1, sort_keys=True)

    @staticmethod
    def key(kind, namespace, name):
        return f"{kind}/{'' if kind in CLUSTER_SCOPED else namespace}/{name}"

    def kube(self, kind, namespace, name):
        return self.data["kube"].get(self.key(kind, namespace, name))

    def namespaces(self):
        return SYSTEM_NAMESPACES | {k.split("/")[2] for k in self.data["kube"]
                                    if k.startswith("Namespace/")}

    def pod_network(self):
        """Pods get an address once calico-node runs and an IP pool exists (it makes
        none: NO_DEFAULT_POOLS)."""
        pools = [k for k in self.data["calico"] if k.startswith("IPPool/")]
        return bool(pools) and "DaemonSet/kube-system/calico-node" in self.data["rolled_out"]


# ---------------------------------------------------------------------- kubectl


KIND_OF = {"deployment": "Deployment", "daemonset": "DaemonSet", "job": "Job",
           "statefulset": "StatefulSet"}


def pods_cannot_start(cluster, obj, namespace):
    """Why the pods of obj would never be ready, or None."""
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    if not pod.get("hostNetwork") and not cluster.pod_network():
        return ("failed to create pod sandbox: plugin type=\"calico\" failed (add): "
                "no pod network (calico-node not running, or no IP pool)")
    sa = pod.get("serviceAccountName")
    if sa and sa != "default" and not cluster.kube("ServiceAccount", namespace, sa):
        return f"error looking up service account {namespace}/{sa}: serviceaccount not found"
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        for e in c.get("env", []):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref and not cluster.kube("Secret", namespace, ref["name"]):
                return f"CreateContainerConfigError: secret \"{ref['name']}\" not found"
    for v in pod.get("volumes", []):
        claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
        if claim and not cluster.kube("PersistentVolumeClaim", namespace, claim):
            return f"persistentvolumeclaim \"{claim}\" not found"
    return None


ADMIN_USER = "kubernetes-admin"
ADMINS_BINDING = "kubeadm:cluster-admins"


def kubeconfig_user(path):
    """The user name of the kubeconfig (its first user), or None."""
    conf = load_file(path) or {}
    users = conf.get("users") if isinstance(conf, dict) else None
    return (users[0] or {}).get("name") if users else None


def kubectl(argv, answers):
    kubeconfig = flag(argv, "kubeconfig")
    readable(kubeconfig, "the kubeconfig")
    namespace = flag(argv, "namespace")
    rest = [a for a in argv if not a.startswith(("--kubeconfig=", "--namespace="))]
    rest = [a for a in rest if not a.startswith("--request-timeout=")]
    verb = rest[0] if rest else ""
    if verb == "get" and "--raw" in rest:
        return readyz(rest, answers)
    if verb == "wait" and "--for=condition=failed" in rest:
        time.sleep(3600)  # a Job that does not fail: killed by the apply
    user = kubeconfig_user(kubeconfig)
    cluster = Cluster()
    try:
        if user == ADMIN_USER and not cluster.kube("ClusterRoleBinding", "", ADMINS_BINDING):
            raise Refused(f"Error from server (Forbidden): User \"{user}\" cannot {verb} "
                          f"(groups [\"{ADMINS_BINDING}\" \"system:authenticated\"]): RBAC: "
                          f"clusterrolebinding.rbac.authorization.k8s.io \"{ADMINS_BINDING}\" "
                          "not found")
        if verb == "apply":
            obj = load_file(rest[rest.index("-f") + 1])
            kind, meta = obj["kind"], obj.get("metadata") or {}
            ns = meta.get("namespace") or namespace or "default"
            if kind not in CLUSTER_SCOPED:
                if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                    raise Refused(f"error: the namespace from the provided object "
                                  f"\"{meta['namespace']}\" does not match the namespace "
                                  f"\"{namespace}\". You must pass '--namespace="
                                  f"{meta['namespace']}' to perform this operation.")
                if ns not in cluster.namespaces():
                    raise Refused(f"Error from server (NotFound): namespaces \"{ns}\" not found")
            cluster.data["kube"][cluster.key(kind, ns, meta["name"])] = obj
            cluster.save()
            return 0, f"{kind.lower()}/{meta['name']} serverside-applied"
        if verb == "delete":
            kind, name = rest[1].split("/", 1)
            cluster.data["kube"].pop(cluster.key(KIND_OF[kind], namespace or "default", name),
                                     None)
            cluster.save()
            return 0, f"{rest[1]} deleted"
        if verb == "get":
            kind, name = rest[1].split("/", 1)
            found = cluster.kube(KIND_OF.get(kind, kind), namespace or "default", name)
            return 0, (f"{kind}.apps/{name}" if found else "")
        if verb in ("rollout", "wait"):
            what = rest[2] if verb == "rollout" else next(a for a in rest if "/" in a
                                                          and not a.startswith("--"))
            kind, name = what.split("/", 1)
            kind = KIND_OF[kind]
            ns = namespace or "default"
            obj = cluster.kube(kind, ns, name)
            if obj is None:
                raise Refused(f"Error from server (NotFound): {PLURAL.get(kind, kind)} "
                              f"\"{name}\" not found")
            why = pods_cannot_start(cluster, obj, ns)
            if why:
                raise Refused(f"{why}\nerror: timed out waiting for the condition")
            cluster.data["rolled_out"].append(f"{kind}/{ns}/{name}")
            if (kind, ns, name) == ("DaemonSet", "kube-system", "calico-node"):
                for node in answers.get("nodes", []):
                    cluster.data["calico"].setdefault(
                        f"Node/{node}", {"apiVersion": "projectcalico.org/v3", "kind": "Node",
                                         "metadata": {"name": node}, "spec": {"bgp": {}},
                                         "registered": True})
            cluster.save()
            if verb == "rollout":
                return 0, f"{what} successfully rolled out"
            return 0, f"{what} condition met"
        return 0, ""
    finally:
        cluster.lock.close()


def readyz(rest, answers):
    path = rest[rest.index("--raw") + 1]
    if path != "/readyz":
        raise Refused(f"error: the recorder answers only /readyz, not {path}")
    cluster = Cluster()
    try:
        calls = cluster.data.get("readyz_calls", 0) + 1
        cluster.data["readyz_calls"] = calls
        cluster.save()
    finally:
        cluster.lock.close()
    if calls <= int(answers.get("not_ready_calls", 0)):
        raise Refused("Error from server (InternalServerError): an error on the server "
                      "(\"[-]etcd failed: reason withheld\\nreadyz check failed\") has "
                      "prevented the request from succeeding")
    return 0, "ok"


# ---------------------------------------------------------------------- calicoctl


def calicoctl(argv, answers):
    config = flag(argv, "config") or "/etc/calico/calicoctl.cfg"
    cfg = load_file(config)
    spec = (cfg or {}).get("spec") or {}
    for key in ("etcdCACertFile", "etcdCertFile", "etcdKeyFile"):
        readable(spec.get(key), f"{key} of {config}")
    rest = [a for a in argv if not a.startswith("--config=")]
    verb = rest[0] if rest else ""
    cluster = Cluster()
    try:
        calico = cluster.data["calico"]
        if verb == "apply":
            obj = load_file(rest[rest.index("-f") + 1])
            key = f"{obj['kind']}/{obj['metadata']['name']}"
            if obj["kind"] == "Node" and calico.get(key, {}).get("registered"):
                raise Refused(f"refusing to replace {key}, registered by calico-node: "
                              "patch it instead")
            calico[key] = obj
            cluster.save()
            return 0, f"Successfully applied 1 '{obj['kind']}' resource(s)"
        if verb in ("get", "patch", "label"):
            kind, name = CALICO_KINDS[rest[1]], rest[2]
            node = calico.get(f"{kind}/{name}")
            if node is None:
                raise Refused(f"resource does not exist: {kind}({name}) with error: "
                              f"{kind.lower()} \"{name}\" not found")
            if verb == "patch":
                patch = json.loads(flag(rest, "patch"))
                for part, value in patch.items():
                    node.setdefault(part, {})
                    for k, v in value.items():
                        if isinstance(v, dict):
                            node[part].setdefault(k, {}).update(v)
                        else:
                            node[part][k] = v
                cluster.save()
                return 0, f"Successfully patched 1 '{kind}' resource"
            if verb == "label":
                key, value = rest[3].split("=", 1)
                node.setdefault("metadata", {}).setdefault("labels", {})[key] = value
                cluster.save()
                return 0, f"Successfully set label {key} on {rest[1]} {name}"
            return 0, yaml.safe_dump(node)
        return 0, ""
    finally:
        cluster.lock.close()


# ---------------------------------------------------------------------- strict preconditions


def strict_config():
    try:
        with open(os.path.join(DIR, "strict.json"), encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


def etcd_failure(cfg):
    """What a real kube-apiserver needs of etcd: a quorum of members that commit over TLS.

    `etcdctl endpoint health --cluster -w json` prints one {endpoint, health, took, error}
    per member and exits 1 if ANY member is unhealthy (checked against etcd-client 3.4.23),
    which is stricter than the apiserver: it serves while a majority commits, as during a
    rolling restart of the etcd members. So count the healthy members against the quorum."""
    argv = [cfg["etcdctl"], f"--endpoints={cfg['etcd_endpoints']}",
            f"--cacert={cfg.get('etcd_cacert')}", f"--cert={cfg.get('etcd_cert')}",
            f"--key={cfg.get('etcd_key')}", "--command-timeout=5s", "endpoint", "health",
            "--cluster", "-w", "json"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, ETCDCTL_API="3"), check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"etcd: `etcdctl endpoint health --cluster` could not run: {exc}"
    try:
        members = json.loads(proc.stdout)
        healthy = [m["endpoint"] for m in members if m.get("health") is True]
    except (ValueError, TypeError, KeyError):
        out = " ".join((proc.stdout + proc.stderr).split())[:300]
        return f"etcd: not healthy with quorum over TLS (etcdctl exit {proc.returncode}): {out}"
    quorum = len(members) // 2 + 1
    if not members or len(healthy) < quorum:
        sick = "; ".join(f"{m.get('endpoint')}: {m.get('error', 'unhealthy')}"
                         for m in members if m.get("health") is not True)[:300]
        return (f"etcd: not healthy with quorum over TLS ({len(healthy)} of {len(members)} "
                f"members healthy, {quorum} needed): {sick}")
    return None


def kubelet_failure(cfg):
    unit = cfg["kubelet_unit"]
    try:
        proc = subprocess.run([cfg.get("systemctl", "systemctl"), "is-active", unit],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"kubelet: `systemctl is-active {unit}` could not run: {exc}"
    state = proc.stdout.strip() or f"exit {proc.returncode}"
    if proc.returncode != 0 or state != "active":
        return f"kubelet: unit {unit} is not active ({state}): nothing runs the apiserver"
    return None


def schema_failures(cfg, argv):
    """Each -f file parses and passes its schema (the fast tier's stacksalt.validate)."""
    if "-f" not in argv:
        return []
    path = argv[argv.index("-f") + 1]
    try:
        with open(path, encoding="utf-8") as fh:
            obj = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        return [f"{path}: does not parse: {' '.join(str(exc).split())}"]
    for entry in cfg.get("python_path") or []:
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        from stacksalt.validate import kubernetes as schemas
    except ImportError as exc:
        return [f"{path}: cannot be validated: stacksalt.validate not importable ({exc})"]
    return [f"{path}: {e}" for e in schemas.validate(obj, str(cfg["kubernetes_version"]))]


def precondition_failures(tool, argv):
    """What a real tool would lack at this moment ([] in a non-strict run)."""
    cfg = strict_config()
    if cfg is None:
        return []
    failures = []
    if cfg.get("etcdctl"):
        failures.append(etcd_failure(cfg))
    manifest = cfg.get("apiserver_manifest")
    if manifest and not os.path.isfile(manifest):
        failures.append(f"apiserver: its static pod manifest {manifest} does not exist")
    if cfg.get("kubelet_unit"):
        failures.append(kubelet_failure(cfg))
    if cfg.get("kubernetes_version"):
        failures += schema_failures(cfg, argv)
    failures = [f for f in failures if f]
    if failures:
        # A readiness probe may find the apiserver not ready: that is what it is for (a
        # real one answers 500 or refuses the connection). Kept apart from the calls that
        # needed a ready apiserver.
        log = "readyz_not_ready.jsonl" if is_readyz_probe(tool, argv) else \
            "precondition_failures.jsonl"
        with open(os.path.join(DIR, log), "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"tool": tool, "argv": argv, "failures": failures}) + "\n")
    return failures


def is_readyz_probe(tool, argv):
    return tool == "kubectl" and "--raw" in argv and "/readyz" in argv[argv.index("--raw"):]


# ---------------------------------------------------------------------- main


def main() -> int:
    tool = os.path.basename(sys.argv[0])
    argv = sys.argv[1:]
    start = time.time()
    try:
        with open(os.path.join(DIR, "answers.json"), encoding="utf-8") as fh:
            answers = json.load(fh)
    except FileNotFoundError:
        answers = {}
    rule = next((r for r in answers.get("rules", [])
                 if r.get("tool", tool) == tool and all(t in argv for t in r.get("match", []))),
                None)
    record = {"tool": tool, "argv": argv, "start": start, "pid": os.getpid()}
    with open(os.path.join(DIR, "calls.jsonl"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    failures = precondition_failures(tool, argv)
    if failures and is_readyz_probe(tool, argv):
        rc, out = 1, ("Error from server (InternalServerError): readyz check failed "
                      "(the stand-in found: " + "; ".join(failures) + ")")
    elif failures:
        rc, out = 1, f"error: {tool} cannot work yet: " + "; ".join(failures)
    elif rule is not None:
        rc, out = rule.get("rc", 0), rule.get("out", "")
        path = argv[argv.index("-f") + 1] if "-f" in argv else None
        if rule.get("echo_file") and path:
            with open(path, encoding="utf-8") as fh:
                out = f"{out}\n{fh.read()}"
        if rule.get("sleep"):
            time.sleep(float(rule["sleep"]))
    else:
        try:
            rc, out = (calicoctl if tool == "calicoctl" else kubectl)(argv, answers)
        except Refused as exc:
            rc, out = exc.rc, exc.out
    if out:
        print(out, file=sys.stderr if rc else sys.stdout)
    return rc


if __name__ == "__main__":
    sys.exit(main())
