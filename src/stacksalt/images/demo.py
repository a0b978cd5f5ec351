"""`stacksalt images demo DEPLOYMENT`: the deployment's OpenStack images, really running.

Starts, on a throwaway Docker network, the infrastructure (mariadb, rabbitmq, memcached)
and keystone, glance-api, placement-api, nova-controller and neutron-server from the
images
`stacksalt images build` made, each the way its Kubernetes objects run it. It reads the
objects the one builder makes for the first Kubernetes master (stacksalt.objects, what
kubernetes.master.objects writes), never the role schema of the model:

* the container answers on the network under the names of the Services that select its
  pod (mariadb, keystone, ...), so the env values (DATABASE_HOST: mariadb, ...) work as
  they are;
* env values are the container's; a secretKeyRef is the key's value in the Secret object
  (the deployment's decrypted secrets);
* PersistentVolumeClaims are Docker volumes (keystone's fernet keys are shared by its
  jobs and its API, as the claim is), mounted where the pod mounts them;
* the bootstrap Job's containers run in order (initContainers, then the container: e.g.
  db_sync, fernet_setup, bootstrap, ks_register), each a one-shot container that must
  exit 0, with the Job's command (entrypoint and mode);
* then the containers with an httpGet or tcpSocket readiness probe, until that probe
  answers (the port resolved by name as in the pod).

Then it proves the result over real HTTP: a token for keystone's admin user
(POST /v3/auth/tokens), authenticated GETs on glance (/v2/images), placement
(/resource_providers), nova (/v2.1/flavors) and neutron (/v2.0/networks), a project
network created through neutron (POST /v2.0/networks: ML2 allocates a VLAN of the model's
neutron_network_vlan_ranges), and a server: nova-compute (the model's virt driver: nova's
fake driver in the lab) reports to placement, the scheduler maps it into the cell, and a
server made from a glance image and a flavor goes ACTIVE on it, its resources allocated
in placement.
Everything is named `<prefix>-...` and removed at the end (unless --keep). Used by
tests/lab/test_openstack_live.py.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
from rich.console import Console
from rich.table import Table

from stacksalt import objects, secrets
from stacksalt.deployment import Deployment
from stacksalt.errors import StacksaltError
from stacksalt.images.errors import ImagesError

SERVICES = ["mariadb", "rabbitmq", "memcached", "keystone", "glance-api", "placement-api",
            "nova-controller", "nova-compute", "neutron-server"]
LABEL = "io.stacksalt.demo"


class DemoError(StacksaltError):
    pass


@dataclass
class Step:
    what: str
    seconds: float
    result: str


@dataclass
class Stack:
    """One throwaway stack on its own network; every Docker object named `prefix-...`."""

    deployment: str
    prefix: str = "stacksalt-demo"
    console: Console = field(default_factory=Console)
    client: docker.DockerClient = field(default_factory=docker.from_env)
    steps: list[Step] = field(default_factory=list)
    # image name -> tag to run instead of the objects' (e.g. another release's build)
    tags: dict[str, str] = field(default_factory=dict)
    # the deployment repository to build the objects from (an exported revision; None:
    # the deployment's own)
    root: Path | None = None
    # the Services are load balancers (stacksalt.upgrade.balancer): a container is not
    # reachable by the Service names itself
    balanced: bool = False

    def __post_init__(self) -> None:
        dep = self.model = Deployment.load(
            self.deployment, self.root / "reclass" if self.root else None)
        masters = objects.control_masters(dep)
        if not masters:
            raise DemoError(f"no node of {self.deployment} renders the OpenStack roles "
                            "(kubernetes:control:enabled)")
        try:
            built = objects.build(dep, masters[0], secrets.decrypt_all(self.deployment),
                                  root=self.root)
        except objects.error_type(self.root) as exc:
            raise DemoError(str(exc)) from None
        self.objects = [f["object"] for f in built["files"]]
        secret = next((o for o in self.objects if o["kind"] == "Secret"), {"data": {}})
        self.secret_name = (secret.get("metadata") or {}).get("name")
        self.secret_data = {k: base64.b64decode(v).decode()
                            for k, v in (secret.get("data") or {}).items()}
        self.network_name = f"{self.prefix}-net"
        self.started: dict[str, Any] = {}

    # ------------------------------------------------------------------ the objects
    def of_kind(self, *kinds: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in kinds
                and (o["metadata"].get("labels") or {}).get("app.kubernetes.io/part-of")
                == "openstack"]

    def workload(self, role: str) -> dict[str, Any]:
        for obj in self.of_kind("Deployment", "DaemonSet"):
            if obj["metadata"]["name"] == role:
                return obj
        raise DemoError(f"the objects of {self.deployment} have no Deployment or DaemonSet "
                        f"{role} (kubernetes:control:service:{role})")

    def pod(self, role: str) -> dict[str, Any]:
        return self.workload(role)["spec"]["template"]["spec"]

    def containers(self, role: str) -> dict[str, dict[str, Any]]:
        """{container name: container} of the role's pod."""
        return {c["name"]: c for c in self.pod(role)["containers"]}

    def jobs(self, role: str) -> dict[str, list[str]]:
        """{job (bootstrap, expand, ...): its modes in order} of the role's Jobs."""
        out = {}
        for job in self.of_kind("Job"):
            labels = job["metadata"].get("labels") or {}
            if labels.get("app.kubernetes.io/name") != role:
                continue
            pod = job["spec"]["template"]["spec"]
            out[labels["app.kubernetes.io/component"]] = [
                c["command"][-1] for c in (*pod.get("initContainers", ()), *pod["containers"])]
        return out

    def services(self, role: str) -> list[dict[str, Any]]:
        """The Services whose selector matches the role's pod labels."""
        labels = self.workload(role)["spec"]["template"]["metadata"]["labels"]
        return [s for s in self.of_kind("Service")
                if s["spec"]["selector"].items() <= labels.items()]

    def port(self, role: str, name: str) -> int:
        """The number of the role's Service port `name`."""
        for svc in self.services(role):
            for p in svc["spec"]["ports"]:
                if p["name"] == name:
                    return int(p["port"])
        raise DemoError(f"no Service of {role} has a port named {name}")

    def value(self, key: str) -> Any:
        """A value of the model (the first node that has the key path), e.g.
        value("neutron:server:ml2:network_vlan_ranges")."""
        try:
            return self.model.first(key)
        except StacksaltError as exc:
            raise DemoError(str(exc)) from None

    def image_tag(self, role: str) -> str:
        image = next(iter(self.containers(role).values()))["image"]
        name = image.rsplit("/", 1)[-1].split(":", 1)[0]
        tag = self.tags.get(name, image)
        try:
            self.client.images.get(tag)
        except docker.errors.ImageNotFound:
            raise DemoError(f"image {tag} is missing: run `stacksalt images build "
                            f"{self.deployment}` first") from None
        return tag

    def environment(self, role: str) -> dict[str, str]:
        """What the pod gives its first container: env values, and secretKeyRefs resolved
        in the Secret object."""
        return self.env(role, next(iter(self.containers(role).values())))

    def env(self, role: str, container: dict[str, Any]) -> dict[str, str]:
        """The env of one container of the role (its pod's or a Job's)."""
        env = {}
        for e in container.get("env", []):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref is None:
                env[e["name"]] = str(e.get("value", ""))
            elif ref["name"] != self.secret_name or ref["key"] not in self.secret_data:
                raise DemoError(f"{role}: env {e['name']} takes key {ref['key']} of Secret "
                                f"{ref['name']}, which the objects do not hold: run "
                                f"`stacksalt secrets generate {self.deployment}`")
            else:
                env[e["name"]] = self.secret_data[ref["key"]]
        return env

    def volumes(self, role: str) -> dict[str, dict[str, str]]:
        """The pod's PersistentVolumeClaims as Docker volumes, where the pod mounts them
        (shared by the role's jobs and containers)."""
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                  for v in self.pod(role).get("volumes", []) if "persistentVolumeClaim" in v}
        out = {}
        for m in next(iter(self.containers(role).values())).get("volumeMounts", []):
            if m["name"] in claims:
                out[f"{self.prefix}-{claims[m['name']]}"] = {"bind": m["mountPath"], "mode": "rw"}
        return out

    # ------------------------------------------------------------------ docker
    def _labels(self) -> dict[str, str]:
        return {LABEL: self.prefix}

    def network(self):
        nets = self.client.networks.list(names=[self.network_name])
        if nets:
            return nets[0]
        return self.client.networks.create(self.network_name, driver="bridge",
                                           labels=self._labels())

    def _create(self, role: str, container: str, command: list[str],
                environment: dict[str, str], alias: bool):
        """A container of the role's image running `command` (the pod's command: the
        entrypoint and its mode), reachable by the role's Service names if `alias` (and
        the stack is not `balanced`)."""
        self.network()
        kwargs: dict[str, Any] = {}
        if alias and not self.balanced:
            names = [s["metadata"]["name"] for s in self.services(role)] or [role]
            kwargs["networking_config"] = {
                self.network_name: self.client.api.create_endpoint_config(aliases=names)}
        return self.client.containers.create(
            self.image_tag(role), entrypoint=command[:1], command=command[1:],
            name=f"{self.prefix}-{container}", environment=environment,
            volumes=self.volumes(role), labels=self._labels(), network=self.network_name,
            **kwargs)

    def command(self, role: str, mode: str) -> list[str]:
        """The pod's entrypoint with another mode (a Job's, or one given by a test)."""
        return [*next(iter(self.containers(role).values()))["command"][:-1], mode]

    def run_job(self, role: str, mode: str, timeout: float = 900,
                args: list[str] | None = None) -> str:
        """One-shot container of `role` in `mode` (or, with `args`, the image's entrypoint
        running that program: the job is then named `mode`); its output, or DemoError if
        it fails."""
        started = time.monotonic()
        command = self.command(role, mode)
        if args is not None:
            command = [*command[:-1], *args]
        box = self._create(role, f"{role}-{mode.replace('_', '-')}", command,
                           self.environment(role), alias=False)
        try:
            with self.console.status(f"{role}: job {mode}"):
                box.start()
                try:
                    rc = box.wait(timeout=timeout)["StatusCode"]
                except Exception as exc:  # requests' ReadTimeout
                    raise DemoError(f"{role}: job {mode} did not end within {timeout:.0f} s") \
                        from exc
            out = box.logs().decode(errors="replace")
        finally:
            box.remove(v=True, force=True)
        seconds = time.monotonic() - started
        if rc != 0:
            raise DemoError(f"{role}: job {mode} failed (exit {rc}):\n{out[-4000:]}")
        self._step(f"{role}: job {mode}", seconds, "exit 0")
        return out

    def start(self, role: str, container: str, timeout: float = 300) -> str:
        """The pod's container `container`, reachable by the role's Service names; waits
        for its readiness probe (httpGet, tcpSocket; an exec probe: running)."""
        if container in self.started:  # already up (bring_up starts every server)
            return self.address(self.started[container])
        started = time.monotonic()
        spec = self.containers(role)[container]
        mode = spec["command"][-1]
        box = self._create(role, container, spec["command"], self.environment(role), alias=True)
        box.start()
        self.started[container] = box
        with self.console.status(f"{role}: {container} ({mode}) starting"):
            result = self._wait_probe(box, spec, timeout)
        self._step(f"{role}: {container} ({mode}) ready", time.monotonic() - started, result)
        return self.address(box)

    def address(self, box) -> str:
        box.reload()
        return box.attrs["NetworkSettings"]["Networks"][self.network_name]["IPAddress"]

    @staticmethod
    def _probe_port(spec: dict[str, Any], port: Any) -> int | None:
        """A probe's port: a number, or the name of one of the container's ports."""
        if isinstance(port, int):
            return port
        return next((p["containerPort"] for p in spec.get("ports", []) if p["name"] == port),
                    None)

    def _wait_probe(self, box, spec: dict[str, Any], timeout: float) -> str:
        probe = spec.get("readinessProbe") or {}
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            box.reload()
            if box.status in ("exited", "dead"):
                raise DemoError(f"{box.name} exited ({box.attrs['State']['ExitCode']}):\n"
                                f"{box.logs(tail=60).decode(errors='replace')}")
            host = self.address(box)
            try:
                if "httpGet" in probe:
                    get = probe["httpGet"]
                    port = self._probe_port(spec, get["port"])
                    status, _, _ = http("GET", f"http://{host}:{port}{get['path']}")
                    if status < 500:
                        return f"GET {get['path']} -> {status}"
                    last = f"HTTP {status}"
                elif "tcpSocket" in probe:
                    port = self._probe_port(spec, probe["tcpSocket"]["port"])
                    with socket.create_connection((host, port), timeout=3):
                        return f"tcp {port} open"
                else:
                    return "running"
            except OSError as exc:
                last = str(exc)
            time.sleep(2)
        raise DemoError(f"{box.name} not ready within {timeout:.0f} s ({last}):\n"
                        f"{box.logs(tail=60).decode(errors='replace')}")

    def _step(self, what: str, seconds: float, result: str) -> None:
        self.steps.append(Step(what, seconds, result))
        self.console.print(f"  [green]ok[/green] {what} ({seconds:.1f}s) {result}")

    def cleanup(self) -> None:
        remove_all(self.client, self.prefix)
        self.started.clear()

    # ------------------------------------------------------------------ the stack
    def bring_up(self, role: str) -> dict[str, str]:
        """The bootstrap Job's modes in order, then every container whose readiness probe
        is a request (httpGet, tcpSocket): {container: ip}."""
        for mode in self.jobs(role).get("bootstrap", []):
            self.run_job(role, mode)
        up = {}
        for name, spec in self.containers(role).items():
            probe = spec.get("readinessProbe") or {}
            if "httpGet" in probe or "tcpSocket" in probe:
                up[name] = self.start(role, name)
        return up

    def admin_token(self, keystone: str) -> tuple[str, dict[str, Any]]:
        port = self.port("keystone", "public")
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"},
                "password": self.environment("keystone")["KEYSTONE_ADMIN_PASSWORD"]}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
        started = time.monotonic()
        status, headers, data = http("POST", f"http://{keystone}:{port}/v3/auth/tokens", body)
        if status != 201 or "X-Subject-Token" not in headers:
            raise DemoError(f"keystone refused the admin token: HTTP {status} {data}")
        self._step("keystone: POST /v3/auth/tokens (admin)", time.monotonic() - started,
                   f"{status}, token for {data['token']['user']['name']}")
        return headers["X-Subject-Token"], data["token"]


def remove_all(client: docker.DockerClient, prefix: str) -> None:
    """Every container (labelled), volume and the network of the stack named ``prefix``."""
    for box in client.containers.list(all=True, filters={"label": f"{LABEL}={prefix}"}):
        box.remove(v=True, force=True)
    for vol in client.volumes.list():
        if vol.name.startswith(f"{prefix}-"):
            vol.remove(force=True)
    for net in client.networks.list(names=[f"{prefix}-net"]):
        net.remove()


def wait_mapped(stack: Stack, host: str, deadline: float) -> None:
    """Until the scheduler has mapped compute ``host`` into the cell (its periodic
    discover_hosts, every nova:controller:discover_hosts_interval seconds; until then it
    schedules nothing there), or DemoError at ``deadline`` (monotonic)."""
    while True:
        out = stack.run_job("nova-controller", "cell-v2-list-hosts",
                            args=["nova-manage", "cell_v2", "list_hosts"])
        if f" {host} " in out:
            return
        if time.monotonic() > deadline:
            raise DemoError(f"the scheduler did not map compute {host} into a cell in time "
                            f"(nova:controller:discover_hosts_interval):\n{out}")
        time.sleep(5)


def http(method: str, url: str, body: Any = None, token: str | None = None,
         timeout: float = 30, headers: dict[str, str] | None = None,
         data: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    """(status, headers, parsed JSON body or text) of one real HTTP request: `body` is
    sent as JSON, `data` as raw bytes (application/octet-stream)."""
    if body is not None:
        data, kind = json.dumps(body).encode(), "application/json"
    else:
        kind = "application/octet-stream"
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", kind)
    if token:
        req.add_header("X-Auth-Token", token)
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, answered, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, answered, raw = exc.code, dict(exc.headers), exc.read()
    text = raw.decode(errors="replace")
    try:
        return status, answered, json.loads(text)
    except json.JSONDecodeError:
        return status, answered, text


# nova's API microversion of the server calls: 2.37 allows networks "none" (a server
# with no port: the lab's ML2 has no agent on the compute to bind one)
NOVA_MICROVERSION = {"OpenStack-API-Version": "compute 2.37"}


@dataclass
class Server:
    """A server booted through the scheduler (placement) onto the fake-driver compute."""

    id: str
    host: str
    image: str
    flavor: str
    allocations: dict[str, Any]  # placement's allocations of the server (consumer)


@dataclass
class Proof:
    token: dict[str, Any]
    catalog: dict[str, list[str]]
    images: Any
    resource_providers: Any
    flavors: Any
    networks: Any
    network: dict[str, Any]  # the project network the proof created
    server: Server  # the server the proof booted
    steps: list[Step]
    seconds: float


def run(stack: Stack) -> Proof:
    """Bring the stack up and prove it over HTTP (the caller cleans up)."""
    started = time.monotonic()
    stack.cleanup()
    for infra in ("mariadb", "rabbitmq", "memcached"):
        stack.bring_up(infra)
    keystone = stack.bring_up("keystone")["keystone-api"]
    token, token_body = stack.admin_token(keystone)
    glance = stack.bring_up("glance-api")["glance-api"]
    placement = stack.bring_up("placement-api")["placement-api"]
    nova = stack.bring_up("nova-controller")["nova-api"]
    neutron = stack.bring_up("neutron-server")["neutron-server"]
    neutron_api = f"http://{neutron}:{stack.port('neutron-server', 'api')}"
    catalog = {s["type"]: sorted(e["interface"] for e in s["endpoints"])
               for s in http("POST", f"http://{keystone}:5000/v3/auth/tokens", {"auth": {
                   "identity": {"methods": ["token"], "token": {"id": token}},
                   "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
                   )[2]["token"]["catalog"]}
    results = {}
    for what, url in (("glance-api: GET /v2/images",
                       f"http://{glance}:{stack.port('glance-api', 'api')}/v2/images"),
                      ("placement-api: GET /resource_providers",
                       f"http://{placement}:{stack.port('placement-api', 'api')}"
                       "/resource_providers"),
                      ("nova-controller: GET /v2.1/flavors",
                       f"http://{nova}:{stack.port('nova-controller', 'api')}/v2.1/flavors"),
                      ("neutron-server: GET /v2.0/networks", f"{neutron_api}/v2.0/networks")):
        t0 = time.monotonic()
        status, _, data = http("GET", url, token=token)
        if status != 200:
            raise DemoError(f"{what} answered {status}: {data}")
        stack._step(what, time.monotonic() - t0, f"{status}")
        results[what] = data
    t0 = time.monotonic()
    status, _, data = http("POST", f"{neutron_api}/v2.0/networks",
                           {"network": {"name": f"{stack.prefix}-net1"}}, token=token)
    if status != 201:
        raise DemoError(f"neutron-server: POST /v2.0/networks answered {status}: {data}")
    network = data["network"]
    stack._step("neutron-server: POST /v2.0/networks", time.monotonic() - t0,
                f"{status}, {network.get('provider:network_type')} "
                f"{network.get('provider:physical_network')}:"
                f"{network.get('provider:segmentation_id')}")
    for name in ("nova-conductor", "nova-scheduler"):
        stack.start("nova-controller", name)
    start_compute(stack)
    server = boot_server(stack, f"{stack.prefix}-server1")
    return Proof(token_body, catalog, results["glance-api: GET /v2/images"],
                 results["placement-api: GET /resource_providers"],
                 results["nova-controller: GET /v2.1/flavors"],
                 results["neutron-server: GET /v2.0/networks"], network, server, stack.steps,
                 time.monotonic() - started)


def start_compute(stack: Stack, timeout: float = 180) -> str:
    """nova-compute (the DaemonSet's container, the model's virt driver) until nova lists
    it 'up' and placement has its resource provider; the compute's host name."""
    token = stack.admin_token(stack.address(stack.started["keystone-api"]))[0]
    stack.start("nova-compute", "nova-compute")
    nova = _url(stack, "nova-controller", "nova-api", "api")
    placement = _url(stack, "placement-api", "placement-api", "api")
    started, deadline = time.monotonic(), time.monotonic() + timeout
    host, providers = None, []
    while time.monotonic() < deadline:
        _, _, data = http("GET", f"{nova}/v2.1/os-services?binary=nova-compute", token=token)
        up = [s["host"] for s in (data.get("services") or []) if s["state"] == "up"] \
            if isinstance(data, dict) else []
        status, _, rps = http("GET", f"{placement}/resource_providers", token=token)
        providers = [r["name"] for r in rps.get("resource_providers", [])] \
            if status == 200 else []
        host = next((h for h in up if h in providers), None)
        if host:
            break
        time.sleep(3)
    else:
        box = stack.started["nova-compute"]
        raise DemoError(f"nova-compute not up with a resource provider within {timeout:.0f} s"
                        f" (providers: {providers}):\n"
                        f"{box.logs(tail=60).decode(errors='replace')}")
    stack._step("nova-compute: up in nova, its resource provider in placement",
                time.monotonic() - started, host)
    started = time.monotonic()
    wait_mapped(stack, host, deadline)
    stack._step("nova-scheduler: compute mapped into the cell", time.monotonic() - started,
                host)
    return host


def boot_server(stack: Stack, name: str, timeout: float = 240) -> Server:
    """A server on the fake driver, as a user would make it: an image uploaded to glance,
    a flavor, POST /servers; ACTIVE through the scheduler, or DemoError with nova's fault
    (e.g. no valid host)."""
    token = stack.admin_token(stack.address(stack.started["keystone-api"]))[0]
    glance = _url(stack, "glance-api", "glance-api", "api")
    nova = _url(stack, "nova-controller", "nova-api", "api")
    placement = _url(stack, "placement-api", "placement-api", "api")
    started = time.monotonic()
    status, _, image = http("POST", f"{glance}/v2/images", {
        "name": f"{name}-image", "disk_format": "raw", "container_format": "bare"},
        token=token)
    _expect(status, 201, "glance-api: POST /v2/images", image)
    status, _, body = http("PUT", f"{glance}/v2/images/{image['id']}/file", token=token,
                           data=b"\0" * 4096)
    _expect(status, 204, "glance-api: PUT /v2/images/<id>/file", body)
    status, _, flavor = http("POST", f"{nova}/v2.1/flavors", {"flavor": {
        "name": f"{name}-flavor", "ram": 64, "vcpus": 1, "disk": 1}}, token=token)
    _expect(status, 200, "nova-controller: POST /v2.1/flavors", flavor)
    flavor = flavor["flavor"]
    stack._step("glance image and nova flavor for the server", time.monotonic() - started,
                f"image {image['id']} active, flavor {flavor['name']}")
    started, deadline = time.monotonic(), time.monotonic() + timeout
    status, _, made = http("POST", f"{nova}/v2.1/servers", {"server": {
        "name": name, "imageRef": image["id"], "flavorRef": flavor["id"],
        "networks": "none"}}, token=token, headers=NOVA_MICROVERSION)
    _expect(status, 202, "nova-controller: POST /v2.1/servers", made)
    server_id = made["server"]["id"]
    while True:
        status, _, got = http("GET", f"{nova}/v2.1/servers/{server_id}", token=token,
                              headers=NOVA_MICROVERSION)
        _expect(status, 200, f"nova-controller: GET /v2.1/servers/{server_id}", got)
        server = got["server"]
        if server["status"] in ("ACTIVE", "ERROR") or time.monotonic() > deadline:
            break
        time.sleep(2)
    if server["status"] != "ACTIVE":
        fault = server.get("fault") or {}
        # the message is the exception's name or text; the details (a traceback, shown to
        # admins) end with "module.Exception: text", which says what failed (for a
        # RemoteError, the remote exception: "ConnectTimeout Request to ... timed out")
        details = [line for line in (fault.get("details") or "").splitlines()
                   if re.match(r"[\w.]+: ", line)]
        fault = ": ".join(filter(None, [fault.get("message", ""),
                                        details[-1].strip()[:300] if details else ""]))
        http("DELETE", f"{nova}/v2.1/servers/{server_id}", token=token)
        raise DemoError(f"server {name} is {server['status']} after "
                        f"{time.monotonic() - started:.0f} s ({fault or 'no fault'})")
    status, _, allocations = http("GET", f"{placement}/allocations/{server_id}", token=token)
    _expect(status, 200, "placement-api: GET /allocations/<server>", allocations)
    host = server["OS-EXT-SRV-ATTR:host"]
    stack._step(f"nova-controller: server {name} ACTIVE", time.monotonic() - started,
                f"on {host} (fake driver)")
    return Server(server_id, host, image["id"], flavor["id"], allocations["allocations"])


def _url(stack: Stack, role: str, container: str, port: str) -> str:
    return f"http://{stack.address(stack.started[container])}:{stack.port(role, port)}"


def _expect(status: int, wanted: int, what: str, body: Any) -> None:
    if status != wanted:
        raise DemoError(f"{what} answered {status}: {body}")


@contextmanager
def running(deployment: str, prefix: str, console: Console | None = None,
            keep: bool = False) -> Iterator[tuple[Stack, Proof]]:
    stack = Stack(deployment, prefix, console or Console())
    try:
        yield stack, run(stack)
    finally:
        if not keep:
            stack.cleanup()


def main(deployment: str, keep: bool = False, build: bool = True) -> int:
    console = Console()
    try:
        if build:
            from stacksalt.images.build import build_images

            build_images(docker.from_env(), console, deployment, sorted(SERVICES))
        with running(deployment, "stacksalt-demo", console, keep) as (_, proof):
            table = Table(title=f"OpenStack of {deployment} in Docker ({proof.seconds:.0f}s)")
            for col in ("step", "seconds", "result"):
                table.add_column(col)
            for step in proof.steps:
                table.add_row(step.what, f"{step.seconds:.1f}", step.result)
            console.print(table)
            console.print(f"catalog: {proof.catalog}")
            if keep:
                console.print("kept: containers and network stacksalt-demo-*; remove them "
                              "with `docker rm -f $(docker ps -aq --filter "
                              f"label={LABEL}=stacksalt-demo)`")
    except (DemoError, ImagesError) as exc:
        print(f"stacksalt images demo: {exc}", file=sys.stderr)
        return 1
    return 0
