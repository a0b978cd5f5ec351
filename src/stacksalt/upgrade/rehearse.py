"""``stacksalt upgrade rehearse DEPLOYMENT --to RELEASE``: a release upgrade, rehearsed
on Docker under API traffic, every failed request counted.

Both releases' objects are the ones builder's (``stacksalt.objects``, what
``kubernetes.master.objects`` writes) for the first Kubernetes master, from the
deployment repository as committed (HEAD): the from-release as the model runs it, the
to-release the same revision with the model's ``openstack_version`` set to RELEASE in the
class that sets it. The rehearsal reads only those objects, never the model, and runs them
as a small Kubernetes would:

- a pod is a sandbox container holding the pod's network (its one IP, as a pause
  container does) and one container per pod container, started together; a
  Deployment's pods are ``replicas``, a DaemonSet's one pod stands for the nodes it
  selects (with ``hostNetwork`` it is named as a node: nova-compute's host name does not
  change across the roll);
- startupProbe then readinessProbe (httpGet: 200-399, tcpSocket, exec) at their
  ``initialDelaySeconds``/``periodSeconds``/``timeoutSeconds``/``failureThreshold``;
  a pod joins its Services once every container is ready;
- each Service is a load balancer over ready pods only (stacksalt.upgrade.balancer);
- a Job's containers (initContainers, then the container) run in order, each must exit
  0, retried up to ``backoffLimit``; a Job whose ``unless_exists`` object exists is
  skipped, as the apply state skips it;
- a changed Deployment rolls under its strategy (RollingUpdate's ``maxSurge`` and
  ``maxUnavailable``, or Recreate), a DaemonSet under ``maxUnavailable``/``maxSurge``;
  terminating a pod takes it out of its Services, runs each container's ``preStop`` and
  then SIGTERM, SIGKILL at the end of ``terminationGracePeriodSeconds``.

The steps are the to-release plan's, in its order (the apply state's: expand and migrate
Jobs, the role's workload rolled and waited for, contract after the group's last role).
Before them, as grenade does, resources are made (a project and user, an image, a network
with a subnet and a port, a flavor, a server on the fake driver) and the load generator
(stacksalt/upgrade/loadgen.py, keystoneauth1 in a container on the rehearsal's network)
starts; after them it runs on a while, stops, and the resources are checked again. The
report (stacksalt.upgrade.report) counts every request.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets as pysecrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import docker
import docker.errors
from rich.console import Console

from stacksalt import paths
from stacksalt.deployment import Deployment
from stacksalt.errors import StacksaltError
from stacksalt.images import demo
from stacksalt.upgrade import plan as upgrade_plan
from stacksalt.upgrade import report
from stacksalt.upgrade.balancer import Balancer, _put, ensure_image

LABEL = demo.LABEL
PART_OF = "app.kubernetes.io/part-of"
LOADGEN = Path(__file__).with_name("loadgen.py")
VERSION_KEY = "_param:openstack_version"
BREAKS = ("recreate",)


class RehearsalError(StacksaltError):
    """The rehearsal cannot run or a step of it failed; the message says which."""


# -- the two roots ----------------------------------------------------------------------------


def roots(deployment: str, release: str, dest: Path) -> tuple[Path, Path, str]:
    """(from root, to root, from release): the deployment repository at HEAD, twice, the
    second with ``openstack_version`` set to ``release`` where the model sets it."""
    here = paths.deployment_root(deployment)
    proc = upgrade_plan._git(here, "rev-parse", "--show-toplevel")
    repo = Path(proc.strip())
    old = upgrade_plan.export(repo, "HEAD", dest / "from", deployment)
    new = upgrade_plan.export(repo, "HEAD", dest / "to", deployment)
    dep = Deployment.load(deployment, new / "reclass")
    master = upgrade_plan.first_master(dep)
    current = dep.get(master, VERSION_KEY)
    where = dep.locate(master, VERSION_KEY)
    if where is None:
        raise RehearsalError(f"no class of {deployment} sets {VERSION_KEY}")
    if current == release:
        raise RehearsalError(f"{deployment} already runs {release} ({where}: "
                             f"openstack_version): name the release to upgrade to")
    path = new / "reclass" / where
    text = path.read_text()
    pattern = re.compile(rf"^(\s*openstack_version:\s*)['\"]?{re.escape(str(current))}['\"]?\s*$",
                         re.M)
    if len(pattern.findall(text)) != 1:
        raise RehearsalError(f"{where}: openstack_version: {current} is not one plain line "
                             "there: set it on one line of its own")
    path.write_text(pattern.sub(rf"\g<1>{release}", text))
    return old, new, str(current)


def is_openstack(obj: dict[str, Any]) -> bool:
    return (obj.get("metadata", {}).get("labels") or {}).get(PART_OF) == "openstack"


def break_shape(render: upgrade_plan.Render, how: str) -> None:
    """The negative control: every OpenStack Deployment's strategy made Recreate (all old
    pods gone before a new one starts)."""
    if how != "recreate":
        raise RehearsalError(f"--break {how}: known ways are {', '.join(BREAKS)}")
    for obj in render.objects.values():
        if obj["kind"] == "Deployment" and is_openstack(obj):
            obj["spec"]["strategy"] = {"type": "Recreate"}


# -- pods ------------------------------------------------------------------------------------


@dataclass
class Pod:
    name: str
    workload: str  # kind/name
    template: dict[str, Any]
    sandbox: Any
    boxes: dict[str, Any]  # container name -> its container
    ip: str = ""
    ready_after: float = 0.0


@dataclass
class Phase:
    name: str
    start: float
    end: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "start": self.start, "end": self.end}


def _probe_port(spec: dict[str, Any], port: Any) -> int:
    number = demo.Stack._probe_port(spec, port)
    if number is None:
        raise RehearsalError(f"container {spec['name']}: a probe names port {port!r}, which "
                             "it does not declare")
    return int(number)


def probe_once(probe: dict[str, Any], spec: dict[str, Any], box: Any, ip: str) -> bool:
    """One probe, as kubelet runs it: httpGet 200-399, tcpSocket connects, exec exits 0."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            get = probe["httpGet"]
            port = _probe_port(spec, get["port"])
            status, _, _ = demo.http("GET", f"http://{ip}:{port}{get.get('path', '/')}",
                                     timeout=timeout)
            return 200 <= status < 400
        if "tcpSocket" in probe:
            port = _probe_port(spec, probe["tcpSocket"]["port"])
            with socket.create_connection((ip, port), timeout=timeout):
                return True
        if "exec" in probe:
            rc, _ = box.exec_run(probe["exec"]["command"])
            return rc == 0
    except OSError:
        return False
    return True


@dataclass
class Cluster:
    """The rehearsal's small Kubernetes on Docker."""

    client: docker.DockerClient
    console: Console
    prefix: str
    pods: dict[str, list[Pod]] = field(default_factory=dict)  # kind/name -> pods
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind/name -> object
    phases: list[Phase] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    _serial: Iterator[int] = field(default_factory=lambda: count(1))

    def __post_init__(self) -> None:
        self.network = f"{self.prefix}-net"
        self.labels = {LABEL: self.prefix}
        self.balancer = Balancer(self.client, self.console, self.prefix, self.network,
                                 self.labels)

    def log(self, text: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {text}")
        self.console.print(f"  {text}")

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        p = Phase(name, time.time())
        try:
            yield
        finally:
            p.end = time.time()
            self.phases.append(p)
            self.log(f"[green]ok[/green] {name} ({p.end - p.start:.1f}s)")

    # ------------------------------------------------------------------ the plan
    def apply(self, stack: demo.Stack, render: upgrade_plan.Render,
              phases: bool = True) -> None:
        """Every OpenStack step of the plan, in its order, as the apply state does it."""
        for rel in render.order:
            obj = render.objects[rel]
            if not is_openstack(obj):
                continue
            kind, name = obj["kind"], obj["metadata"]["name"]
            step = f"{kind.lower()}/{name}"
            before = self.applied.get(step)
            if kind == "Job":
                skip = render.unless_exists.get(rel)
                if before is not None or (skip and skip in self.applied):
                    pass  # applied already (a Job is immutable), or first install only
                else:
                    labels = obj["metadata"]["labels"]
                    what = f"{labels['app.kubernetes.io/name']} " \
                           f"{labels['app.kubernetes.io/component']}"
                    with self.phase(what) if phases else nullcontext():
                        self.run_job(stack, obj)
            elif kind == "Service":
                if before is None:
                    self.balancer.start([obj], {name: self._template_of(render, obj)})
                elif before != obj:
                    raise RehearsalError(f"{rel}: a changed Service; the rehearsal applies "
                                         "new Services only")
            elif kind in ("Deployment", "DaemonSet"):
                if before is None:
                    self.create(stack, obj)
                elif before != obj:
                    with self.phase(f"roll {name}") if phases else nullcontext():
                        self.roll(stack, before, obj)
            self.applied[step] = obj

    @staticmethod
    def _template_of(render: upgrade_plan.Render, svc: dict[str, Any]) -> dict[str, Any] | None:
        selector = svc["spec"].get("selector") or {}
        for obj in render.objects.values():
            if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
                labels = obj["spec"]["template"]["metadata"].get("labels") or {}
                if selector and selector.items() <= labels.items():
                    return obj["spec"]["template"]
        return None

    def services_of(self, template: dict[str, Any]) -> list[dict[str, Any]]:
        labels = template["metadata"].get("labels") or {}
        return [o for o in self.applied.values() if o["kind"] == "Service"
                and (o["spec"].get("selector") or {}).items() <= labels.items()]

    # ------------------------------------------------------------------ Jobs
    def run_job(self, stack: demo.Stack, job: dict[str, Any]) -> None:
        pod = job["spec"]["template"]["spec"]
        role = job["metadata"]["labels"]["app.kubernetes.io/name"]
        attempts = int(job["spec"].get("backoffLimit", 6)) + 1
        for attempt in range(1, attempts + 1):
            failed = None
            for spec in (*pod.get("initContainers", ()), *pod["containers"]):
                rc, out = self._one_shot(stack, role, job["metadata"]["name"], pod, spec)
                if rc != 0:
                    failed = f"container {spec['name']} exit {rc}:\n{out[-3000:]}"
                    break
            if failed is None:
                return
            self.log(f"job {job['metadata']['name']}: attempt {attempt} failed ({failed[:80]})")
        raise RehearsalError(f"job {job['metadata']['name']} failed {attempts} times: {failed}")

    def _one_shot(self, stack: demo.Stack, role: str, job: str, pod: dict[str, Any],
                  spec: dict[str, Any]) -> tuple[int, str]:
        box = self.client.containers.create(
            self._image(stack, spec), entrypoint=spec["command"][:1],
            command=spec["command"][1:], name=f"{self.prefix}-{job}-{next(self._serial)}",
            environment=stack.env(role, spec), volumes=self._volumes(pod, spec),
            labels=self.labels, network=self.network)
        try:
            box.start()
            rc = box.wait(timeout=900)["StatusCode"]
            return rc, box.logs().decode(errors="replace")
        finally:
            box.remove(v=True, force=True)

    def _image(self, stack: demo.Stack, spec: dict[str, Any]) -> str:
        try:
            self.client.images.get(spec["image"])
        except docker.errors.ImageNotFound:
            raise RehearsalError(f"image {spec['image']} is missing: the rehearsal builds "
                                 "both releases' images first") from None
        return spec["image"]

    def _volumes(self, pod: dict[str, Any], spec: dict[str, Any]) -> dict[str, dict[str, str]]:
        """A PersistentVolumeClaim is one Docker volume per claim; a hostPath one per path
        of the one node (it outlives the pod, as the node's directory does); an emptyDir
        is the pod's own (the container's filesystem)."""
        named = {}
        for v in pod.get("volumes", []):
            if "persistentVolumeClaim" in v:
                named[v["name"]] = v["persistentVolumeClaim"]["claimName"]
            elif "hostPath" in v:
                named[v["name"]] = "node-1" + v["hostPath"]["path"].replace("/", "-")
        return {f"{self.prefix}-{named[m['name']]}": {"bind": m["mountPath"], "mode": "rw"}
                for m in spec.get("volumeMounts", []) if m["name"] in named}

    # ------------------------------------------------------------------ workloads
    def create(self, stack: demo.Stack, obj: dict[str, Any]) -> None:
        """A new workload's pods (a first install): started, ready, in their Services."""
        step = f"{obj['kind'].lower()}/{obj['metadata']['name']}"
        replicas = self._replicas(obj)
        pods = [self.start_pod(stack, obj) for _ in range(replicas)]
        for pod in pods:
            self.wait_ready(pod)
        self.pods[step] = pods

    @staticmethod
    def _replicas(obj: dict[str, Any]) -> int:
        return 1 if obj["kind"] == "DaemonSet" else int(obj["spec"].get("replicas", 1))

    def start_pod(self, stack: demo.Stack, obj: dict[str, Any]) -> Pod:
        template = obj["spec"]["template"]
        pod_spec = template["spec"]
        role = obj["metadata"]["name"]
        tag = (template["metadata"].get("labels") or {}).get("app.kubernetes.io/version") \
            or pod_spec["containers"][0]["image"].rpartition(":")[2]
        name = f"{role}-{tag}-{next(self._serial)}"
        hostname = name
        if obj["kind"] == "DaemonSet" and pod_spec.get("hostNetwork"):
            hostname = f"{self.prefix}-node-1"  # the node's name: kept across the roll
        sandbox = self.client.containers.create(
            self._image(stack, pod_spec["containers"][0]), entrypoint=["sleep", "infinity"],
            name=f"{self.prefix}-{name}", hostname=hostname, labels=self.labels,
            network=self.network)
        sandbox.start()
        boxes = {}
        for spec in pod_spec["containers"]:
            box = self.client.containers.create(
                self._image(stack, spec), entrypoint=spec["command"][:1],
                command=spec["command"][1:], name=f"{self.prefix}-{name}-{spec['name']}",
                environment=stack.env(role, spec), volumes=self._volumes(pod_spec, spec),
                labels=self.labels, network_mode=f"container:{sandbox.id}")
            box.start()
            boxes[spec["name"]] = box
        sandbox.reload()
        ip = sandbox.attrs["NetworkSettings"]["Networks"][self.network]["IPAddress"]
        self.log(f"pod {name} started ({ip})")
        return Pod(name, f"{obj['kind'].lower()}/{role}", template, sandbox, boxes, ip)

    def wait_ready(self, pod: Pod, timeout: float = 600) -> None:
        """Each container's startupProbe, then its readinessProbe, kubelet's way; then the
        pod joins every Service that selects it."""
        started = time.monotonic()
        specs = {c["name"]: c for c in pod.template["spec"]["containers"]}
        state = {}
        for name, spec in specs.items():
            first = spec.get("startupProbe") or spec.get("readinessProbe") or {}
            state[name] = {"stage": "startup" if spec.get("startupProbe") else "readiness",
                           "next": started + float(first.get("initialDelaySeconds", 0)),
                           "failures": 0, "successes": 0}
        while any(s["stage"] != "ready" for s in state.values()):
            if time.monotonic() - started > timeout:
                raise RehearsalError(f"pod {pod.name} not ready within {timeout:.0f} s "
                                     f"({ {n: s['stage'] for n, s in state.items()} })")
            name, s = min(((n, s) for n, s in state.items() if s["stage"] != "ready"),
                          key=lambda ns: ns[1]["next"])
            delay = s["next"] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            spec, box = specs[name], pod.boxes[name]
            box.reload()
            if box.status in ("exited", "dead"):
                raise RehearsalError(
                    f"pod {pod.name}: container {name} exited "
                    f"({box.attrs['State']['ExitCode']}):\n"
                    f"{box.logs(tail=40).decode(errors='replace')}")
            probe = spec.get(f"{s['stage']}Probe") or {}
            ok = probe_once(probe, spec, box, pod.ip) if probe else True
            period = float(probe.get("periodSeconds", 10))
            if ok:
                s["successes"] += 1
                threshold = 1 if s["stage"] == "startup" else int(probe.get("successThreshold",
                                                                            1))
                if s["successes"] >= threshold:
                    s.update(stage="readiness" if s["stage"] == "startup" else "ready",
                             successes=0, failures=0, next=time.monotonic())
                    if s["stage"] == "readiness":
                        rp = spec.get("readinessProbe") or {}
                        s["next"] += float(rp.get("initialDelaySeconds", 0))
                    continue
            else:
                s["failures"] += 1
                if s["stage"] == "startup" and s["failures"] >= int(
                        probe.get("failureThreshold", 3)):
                    raise RehearsalError(
                        f"pod {pod.name}: {name} failed its startupProbe "
                        f"{s['failures']} times (kubelet would restart it):\n"
                        f"{box.logs(tail=40).decode(errors='replace')}")
            s["next"] = time.monotonic() + period
        pod.ready_after = time.monotonic() - started
        self.balancer.add(pod.name, pod.template, pod.ip, self.services_of(pod.template))
        self.log(f"pod {pod.name} ready after {pod.ready_after:.1f}s, in its Services")

    def terminate(self, pod: Pod) -> None:
        """Out of the Services first; each container's preStop, then SIGTERM, SIGKILL at
        the end of the grace period; the pod removed."""
        started = time.monotonic()
        self.balancer.drain(pod.name)
        grace = float(pod.template["spec"].get("terminationGracePeriodSeconds", 30))
        specs = {c["name"]: c for c in pod.template["spec"]["containers"]}

        def stop(name: str, box: Any) -> None:
            hook = ((specs[name].get("lifecycle") or {}).get("preStop") or {}).get("exec")
            if hook:
                box.exec_run(hook["command"])
            left = max(1.0, grace - (time.monotonic() - started))
            box.stop(timeout=int(math.ceil(left)))

        threads = [threading.Thread(target=stop, args=(n, b)) for n, b in pod.boxes.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.balancer.remove(pod.name)
        codes = {}
        for name, box in pod.boxes.items():
            box.reload()
            codes[name] = box.attrs["State"]["ExitCode"]
            box.remove(v=True, force=True)
        pod.sandbox.remove(force=True)
        self.log(f"pod {pod.name} terminated in {time.monotonic() - started:.1f}s "
                 f"(exit codes {codes})")

    def roll(self, stack: demo.Stack, old_obj: dict[str, Any], obj: dict[str, Any]) -> None:
        """A changed workload's pods replaced under its strategy, as the Deployment and
        DaemonSet controllers do, until all are new and ready."""
        step = f"{obj['kind'].lower()}/{obj['metadata']['name']}"
        old = list(self.pods.get(step, []))
        replicas = self._replicas(obj)
        strategy = obj["spec"].get("strategy" if obj["kind"] == "Deployment"
                                   else "updateStrategy") or {}
        new: list[Pod] = []
        if strategy.get("type") == "Recreate":
            for pod in old:
                self.terminate(pod)
            new = [self.start_pod(stack, obj) for _ in range(replicas)]
            for pod in new:
                self.wait_ready(pod)
            self.pods[step] = new
            return
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            raise RehearsalError(f"{step}: strategy {strategy.get('type')} is not rehearsed")
        rolling = strategy.get("rollingUpdate") or {}
        default_surge = "25%" if obj["kind"] == "Deployment" else 0
        surge = _amount(rolling.get("maxSurge", default_surge), replicas, up=True)
        unavailable = _amount(rolling.get("maxUnavailable", "25%" if obj["kind"] ==
                                          "Deployment" else 1), replicas, up=False)
        if surge == 0 and unavailable == 0:
            raise RehearsalError(f"{step}: maxSurge and maxUnavailable are both 0")
        starting: list[Pod] = []
        while old or len(new) < replicas:
            while (len(new) + len(starting) < replicas
                   and len(old) + len(new) + len(starting) < replicas + surge):
                starting.append(self.start_pod(stack, obj))
            while old and len(old) - 1 + len(new) >= replicas - unavailable:
                self.terminate(old.pop(0))
            if starting:  # (maxSurge + maxUnavailable >= 1: each pass starts or stops one)
                pod = starting.pop(0)
                self.wait_ready(pod)
                new.append(pod)
        self.pods[step] = new

    def check_running(self) -> list[str]:
        """Containers of live pods that are not running (kubelet would have restarted
        them): what the rehearsal saw go wrong outside a step."""
        out = []
        for pods in self.pods.values():
            for pod in pods:
                for name, box in pod.boxes.items():
                    box.reload()
                    if box.status != "running":
                        out.append(f"{pod.name}/{name}: {box.status} "
                                   f"(exit {box.attrs['State']['ExitCode']})")
        return out

    def cleanup(self) -> None:
        demo.remove_all(self.client, self.prefix)



def _amount(value: Any, replicas: int, up: bool) -> int:
    """maxSurge (rounded up) or maxUnavailable (rounded down): a number or a percentage."""
    if isinstance(value, str) and value.endswith("%"):
        share = float(value[:-1]) / 100 * replicas
        return math.ceil(share) if up else math.floor(share)
    return int(value)


# -- the resources and the load ----------------------------------------------------------------


@dataclass
class Resources:
    """What is made before the upgrade (grenade's resources) and checked after it."""

    project: str = ""
    user: str = ""
    operator: str = ""  # admin in the project: for placement's admin-only API
    password: str = ""  # of both
    image: str = ""
    image_data: bytes = b""
    flavor: str = ""
    network: str = ""
    subnet: str = ""
    port: str = ""
    server: str = ""
    host: str = ""


class Api:
    """The APIs through their Services (the load balancers), as a client in the cluster."""

    def __init__(self, cluster: Cluster, applied: dict[str, dict[str, Any]]):
        self.cluster, self.applied = cluster, applied

    def url(self, service: str) -> str:
        svc = self.applied[f"service/{service}"]
        return f"http://{self.cluster.balancer.address(service)}:{svc['spec']['ports'][0]['port']}"

    def token(self, user: str, password: str, project: str) -> str:
        status, headers, data = demo.http("POST", f"{self.url('keystone')}/v3/auth/tokens", {
            "auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"name": "Default"}, "password": password}}},
                "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}})
        if status != 201:
            raise RehearsalError(f"keystone refused a token for {user}: HTTP {status} {data}")
        return headers["X-Subject-Token"]

    def call(self, method: str, service: str, path: str, token: str, wanted: int,
             body: Any = None, data: bytes | None = None,
             headers: dict[str, str] | None = None) -> Any:
        status, _, answer = demo.http(method, f"{self.url(service)}{path}", body, token=token,
                                      data=data, headers=headers)
        if status != wanted:
            raise RehearsalError(f"{service}: {method} {path} answered {status} (wanted "
                                 f"{wanted}): {str(answer)[:300]}")
        return answer


def make_resources(api: Api, admin_password: str, prefix: str,
                   wait_mapped: Callable[[str], None]) -> Resources:
    """A project and its user (member), a flavor; as the user an image with data, a
    network, a subnet, a port and a server ACTIVE on the fake driver."""
    res = Resources(password=pysecrets.token_urlsafe(18))
    admin = api.token("admin", admin_password, "admin")
    res.project = api.call("POST", "keystone", "/v3/projects", admin, 201, {"project": {
        "name": f"{prefix}-project", "domain_id": "default"}})["project"]["id"]
    res.user = api.call("POST", "keystone", "/v3/users", admin, 201, {"user": {
        "name": f"{prefix}-user", "domain_id": "default", "password": res.password,
        "default_project_id": res.project}})["user"]["id"]
    # the load's operator: placement's resource providers are an admin's to list
    res.operator = api.call("POST", "keystone", "/v3/users", admin, 201, {"user": {
        "name": f"{prefix}-operator", "domain_id": "default", "password": res.password,
        "default_project_id": res.project}})["user"]["id"]
    for user_id, role in ((res.user, "member"), (res.operator, "admin")):
        roles = api.call("GET", "keystone", f"/v3/roles?name={role}", admin, 200)["roles"]
        if not roles:
            raise RehearsalError(f"keystone has no role '{role}' (keystone-manage bootstrap "
                                 "makes it)")
        api.call("PUT", "keystone", f"/v3/projects/{res.project}/users/{user_id}/roles/"
                 f"{roles[0]['id']}", admin, 204)
    res.flavor = api.call("POST", "nova-controller", "/v2.1/flavors", admin, 200, {"flavor": {
        "name": f"{prefix}-flavor", "ram": 64, "vcpus": 1, "disk": 1}})["flavor"]["id"]
    user = api.token(f"{prefix}-user", res.password, f"{prefix}-project")
    res.image = api.call("POST", "glance-api", "/v2/images", user, 201, {
        "name": f"{prefix}-image", "disk_format": "raw", "container_format": "bare"})["id"]
    res.image_data = pysecrets.token_bytes(4096)
    api.call("PUT", "glance-api", f"/v2/images/{res.image}/file", user, 204,
             data=res.image_data)
    res.network = api.call("POST", "neutron-server", "/v2.0/networks", user, 201, {
        "network": {"name": f"{prefix}-network"}})["network"]["id"]
    res.subnet = api.call("POST", "neutron-server", "/v2.0/subnets", user, 201, {"subnet": {
        "network_id": res.network, "ip_version": 4, "cidr": "10.99.0.0/24",
        "name": f"{prefix}-subnet"}})["subnet"]["id"]
    res.port = api.call("POST", "neutron-server", "/v2.0/ports", user, 201, {"port": {
        "network_id": res.network, "name": f"{prefix}-port"}})["port"]["id"]
    services = api.call("GET", "nova-controller", "/v2.1/os-services?binary=nova-compute",
                        admin, 200)["services"]
    if not services:
        raise RehearsalError("no nova-compute service is registered in nova")
    wait_mapped(services[0]["host"])
    res.server = api.call("POST", "nova-controller", "/v2.1/servers", user, 202, {"server": {
        "name": f"{prefix}-server", "imageRef": res.image, "flavorRef": res.flavor,
        "networks": "none"}}, headers=demo.NOVA_MICROVERSION)["server"]["id"]
    # (the host attribute is shown to admins only)
    res.host = wait_server(api, admin, res.server, "ACTIVE")["OS-EXT-SRV-ATTR:host"]
    return res


def wait_server(api: Api, token: str, server: str, status: str,
                timeout: float = 120, settle: Any = None) -> dict[str, Any]:
    """The server once it has ``status`` (and, with ``settle``, no task running: a
    reboot is ACTIVE while it runs)."""
    deadline = time.monotonic() + timeout
    while True:
        got = api.call("GET", "nova-controller", f"/v2.1/servers/{server}", token, 200,
                       headers=demo.NOVA_MICROVERSION)["server"]
        if got["status"] == status and not (settle and got.get("OS-EXT-STS:task_state")):
            return got
        if got["status"] == "ERROR" or time.monotonic() > deadline:
            raise RehearsalError(f"server {server} is {got['status']}, not {status} "
                                 f"({(got.get('fault') or {}).get('message', 'no fault')})")
        time.sleep(2)


def check_resources(api: Api, res: Resources, admin_password: str,
                    prefix: str) -> tuple[list[str], list[str]]:
    """Each resource made before, still there and usable: (what passed, what failed)."""
    passed: list[str] = []
    failed: list[str] = []
    tokens: dict[str, str] = {}

    def user() -> str:
        if "user" not in tokens:
            tokens["user"] = api.token(f"{prefix}-user", res.password, f"{prefix}-project")
        return tokens["user"]

    def token() -> None:
        user()

    def image() -> None:
        got = api.call("GET", "glance-api", f"/v2/images/{res.image}", user(), 200)
        if got["status"] != "active":
            raise RehearsalError(f"image {res.image} is {got['status']}")
        if got.get("checksum") != hashlib.md5(res.image_data).hexdigest():  # noqa: S324
            raise RehearsalError(f"image {res.image}: glance's checksum is not the data's")
        status, _, _ = demo.http("GET", f"{api.url('glance-api')}/v2/images/{res.image}/file",
                                 token=user())
        if status != 200:
            raise RehearsalError(f"image {res.image}: its data answered {status}")

    def flavor() -> None:
        api.call("GET", "nova-controller", f"/v2.1/flavors/{res.flavor}", user(), 200)

    def neutron() -> None:
        for kind, ident in (("networks", res.network), ("subnets", res.subnet),
                            ("ports", res.port)):
            api.call("GET", "neutron-server", f"/v2.0/{kind}/{ident}", user(), 200)

    def new_port() -> None:
        port = api.call("POST", "neutron-server", "/v2.0/ports", user(), 201, {"port": {
            "network_id": res.network, "name": f"{prefix}-port-after"}})["port"]
        api.call("DELETE", "neutron-server", f"/v2.0/ports/{port['id']}", user(), 204)
        if not port.get("fixed_ips"):
            raise RehearsalError(f"a new port on network {res.network} got no address")

    def server() -> None:
        """ACTIVE; then a hard reboot, a stop and a start, each done by the new compute.
        The fake driver keeps its guests in nova-compute's memory, so the compute's roll
        lost them (libvirt's outlive it); a hard reboot spawns the guest again, as the
        fake driver's own code mimics libvirt (nova/virt/fake.py, reboot)."""
        wait_server(api, user(), res.server, "ACTIVE")
        for body, status in (({"reboot": {"type": "HARD"}}, "ACTIVE"),
                             ({"os-stop": None}, "SHUTOFF"), ({"os-start": None}, "ACTIVE")):
            api.call("POST", "nova-controller", f"/v2.1/servers/{res.server}/action", user(),
                     202, body, headers=demo.NOVA_MICROVERSION)
            wait_server(api, user(), res.server, status, settle=body.get("reboot"))

    def compute() -> None:
        admin = api.token("admin", admin_password, "admin")
        services = api.call("GET", "nova-controller", "/v2.1/os-services?binary=nova-compute",
                            admin, 200)["services"]
        if not services or any(s["state"] != "up" or s["status"] != "enabled"
                               for s in services):
            raise RehearsalError(f"nova-compute is not up and enabled: {services}")

    def allocation() -> None:
        admin = api.token("admin", admin_password, "admin")
        if not api.call("GET", "placement-api", f"/allocations/{res.server}", admin,
                        200)["allocations"]:
            raise RehearsalError(f"placement has no allocation of server {res.server}")

    for what, check in (("a token for the user of the project made before", token),
                        ("the image, active, its data downloaded", image),
                        ("the flavor", flavor),
                        ("the network, the subnet and the port", neutron),
                        ("a new port on the network, with an address", new_port),
                        ("the server, ACTIVE, hard-rebooted, stopped and started again", server),
                        ("the server's allocation in placement", allocation),
                        ("the compute service up and enabled in nova", compute)):
        try:
            check()
            passed.append(what)
        except RehearsalError as exc:
            failed.append(f"{what}: {exc}")
    return passed, failed


def start_load(cluster: Cluster, image: str, res: Resources, interval: float) -> Any:
    """The load generator in a container on the rehearsal's network; its password in a
    0600 file, never in its environment."""
    box = cluster.client.containers.create(
        image, entrypoint=["python", "/tmp/loadgen.py"], name=f"{cluster.prefix}-loadgen",
        labels=cluster.labels, network=cluster.network, environment={
            "OS_AUTH_URL": f"http://keystone:"
                           f"{cluster.applied['service/keystone']['spec']['ports'][0]['port']}"
                           "/v3",
            "OS_USERNAME": f"{cluster.prefix}-user",
            "OS_OPERATOR_USERNAME": f"{cluster.prefix}-operator",
            "OS_PASSWORD_FILE": "/tmp/loadgen-password",
            "OS_PROJECT_NAME": f"{cluster.prefix}-project", "LOAD_IMAGE": res.image,
            "LOAD_FLAVOR": res.flavor, "LOAD_NETWORK": res.network,
            "LOAD_INTERVAL": str(interval)})
    _put(box, "/tmp/loadgen.py", LOADGEN.read_text())
    _put(box, "/tmp/loadgen-password", res.password, mode=0o600)
    box.start()
    deadline = time.monotonic() + 120
    while b'"started": true' not in box.logs():
        box.reload()
        if box.status != "running" or time.monotonic() > deadline:
            raise RehearsalError(f"the load generator did not start:\n"
                                 f"{box.logs(tail=30).decode(errors='replace')}")
        time.sleep(1)
    return box


def stop_load(box: Any, timeout: float = 300) -> list[dict[str, Any]]:
    """SIGTERM; its request records once it has finished (its server cycles cleaned)."""
    box.kill(signal="SIGTERM")
    box.wait(timeout=timeout)
    out = box.logs(stderr=False).decode(errors="replace")
    records = []
    for line in out.splitlines():
        if line.startswith("{") and '"api"' in line:
            records.append(json.loads(line))
    if '"done": true' not in out:
        raise RehearsalError("the load generator did not finish its requests:\n"
                             f"{box.logs(tail=30).decode(errors='replace')}")
    return records


# -- the rehearsal ---------------------------------------------------------------------------


@dataclass
class Result:
    report: dict[str, Any]
    records: list[dict[str, Any]]
    phases: list[dict[str, Any]]
    checked: list[str]
    events: list[str]


def rehearse(deployment: str, release: str, console: Console | None = None,
             prefix: str = "stacksalt-rehearsal", broken: str | None = None,
             settle: float = 20, interval: float = 0.5, keep: bool = False,
             client: docker.DockerClient | None = None) -> Result:
    console = console or Console()
    client = client or docker.from_env()
    tmp = Path(tempfile.mkdtemp(prefix="stacksalt-rehearsal-"))
    cluster = Cluster(client, console, prefix)
    try:
        old_root, new_root, current = roots(deployment, release, tmp)
        old, new = upgrade_plan.render(deployment, old_root), \
            upgrade_plan.render(deployment, new_root)
        why = upgrade_plan.downgrade(old, new)
        if why:
            raise RehearsalError(f"{current} -> {release}: {why}")
        if broken:
            break_shape(new, broken)
        from stacksalt.images.build import build_images

        for label, root in (("from", old_root), ("to", new_root)):
            console.print(f"[bold]images of the {label} release[/bold]")
            build_images(client, console, deployment, sorted(demo.SERVICES), root=root)
        old_stack = demo.Stack(deployment, prefix, console, client, root=old_root,
                               balanced=True)
        new_stack = demo.Stack(deployment, prefix, console, client, root=new_root,
                               balanced=True)
        ensure_image(client, console)
        cluster.cleanup()
        old_stack.network()
        console.print(f"[bold]{current}: installing from its objects[/bold]")
        started = time.monotonic()
        cluster.apply(old_stack, old, phases=False)
        cluster.log(f"{current} installed in {time.monotonic() - started:.0f}s")
        api = Api(cluster, cluster.applied)
        admin_password = old_stack.secret_data.get(_admin_key(old_stack), "")

        res = make_resources(api, admin_password, prefix, lambda host: demo.wait_mapped(
            old_stack, host, time.monotonic() + 180))
        cluster.log(f"resources made: server {res.server} ACTIVE on {res.host}")
        load = start_load(cluster, old_stack.image_tag("keystone"), res, interval)
        time.sleep(settle)
        console.print(f"[bold]{current} -> {release}: the plan's steps[/bold]")
        cluster.apply(new_stack, new)
        time.sleep(settle)
        records = stop_load(load)
        broken_boxes = cluster.check_running()
        checked, lost = check_resources(api, res, admin_password, prefix)
        phases = [p.as_dict() for p in cluster.phases]
        out = report.summarize(records, phases, deployment=deployment,
                               release={"from": current, "to": release},
                               shape=broken or "shipped", not_running=broken_boxes,
                               resources_checked=checked, resources_failed=lost)
        return Result(out, records, phases, checked, cluster.events)
    finally:
        if not keep:
            cluster.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def _admin_key(stack: demo.Stack) -> str:
    """The Secret key keystone's admin password comes from (its env's secretKeyRef)."""
    for spec in stack.pod("keystone")["containers"]:
        for e in spec.get("env", []):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if e["name"] == "KEYSTONE_ADMIN_PASSWORD" and ref:
                return ref["key"]
    raise RehearsalError("keystone's pod takes no KEYSTONE_ADMIN_PASSWORD from the Secret")


def main(deployment: str, release: str, report_path: Path | None = None,
         broken: str | None = None, keep: bool = False) -> int:
    console = Console()
    result = rehearse(deployment, release, console, broken=broken, keep=keep)
    for line in report.lines(result.report):
        console.print(line, markup=False, highlight=False)
    for line in result.checked:
        console.print(f"survived: {line}", markup=False)
    for line in result.report["resources_failed"]:
        console.print(f"LOST: {line}", markup=False)
    for line in result.report["not_running"]:
        console.print(f"not running: {line}", markup=False)
    if report_path is not None:
        png = report.write(result.report, result.records, result.phases, report_path)
        console.print(f"report: {report_path} and {png}")
    rep = result.report
    return 0 if not (rep["failed_requests"] or rep["resources_failed"]
                     or rep["not_running"]) else 1

