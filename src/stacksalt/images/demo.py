"""`stacksalt images demo DEPLOYMENT`: the deployment's OpenStack images, really running.

Starts, on a throwaway Docker network, the infrastructure (mariadb, rabbitmq, memcached)
and keystone, glance-api, nova-controller and neutron-server from the images
`stacksalt images build` made, each the way its Kubernetes Deployment runs it (all from the model's
kubernetes:control:service:<name>):

* the container answers on the network under the Service name (mariadb, keystone, ...),
  so the `env` values of the model (DATABASE_HOST: mariadb, ...) work as they are;
* `secret_env` values are the deployment's decrypted secrets;
* `pvc` volumes are Docker volumes (keystone's fernet keys are shared by its jobs and
  its API, as the PVC is);
* the `bootstrap` jobs run in order (db_sync, fernet_setup, bootstrap, ks_register;
  neutron-server: db_sync, ks_register), each a one-shot container that must exit 0;
* then the containers with an HTTP probe, until the probe answers.

Then it proves the result over real HTTP: a token for keystone's admin user
(POST /v3/auth/tokens), authenticated GETs on glance (/v2/images), nova (/v2.1/flavors)
and neutron (/v2.0/networks), and a project network created through neutron
(POST /v2.0/networks: ML2 allocates a VLAN of the model's neutron_network_vlan_ranges).
Everything is named `<prefix>-...` and removed at the end (unless --keep). Used by
tests/lab/test_openstack_live.py.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
from rich.console import Console
from rich.table import Table

from stacksalt import secrets
from stacksalt.deployment import Deployment
from stacksalt.images import definitions
from stacksalt.images.errors import ImagesError

SERVICES = ["mariadb", "rabbitmq", "memcached", "keystone", "glance-api", "nova-controller",
            "neutron-server"]
LABEL = "io.stacksalt.demo"


class DemoError(RuntimeError):
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
    # image name -> tag to run instead of the model's (e.g. another release's build)
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        dep = Deployment.load(self.deployment)
        self.parameters = [dep.parameters(node) for node in dep.node_names]
        self.services = _control_services(dep)
        self.images = definitions.load(self.deployment).images
        self.secrets = secrets.decrypt_all(self.deployment)
        self.network_name = f"{self.prefix}-net"
        self.started: dict[str, Any] = {}

    # ------------------------------------------------------------------ model
    def service(self, name: str) -> dict[str, Any]:
        try:
            return self.services[name]
        except KeyError:
            raise DemoError(f"the model of {self.deployment} has no "
                            f"kubernetes:control:service:{name}") from None

    def model(self, *keys: str) -> Any:
        """A value of the model (the first node that has the key path), e.g.
        model("neutron", "server", "ml2", "network_vlan_ranges")."""
        for params in self.parameters:
            value: Any = params
            for key in keys:
                if not isinstance(value, dict) or key not in value:
                    break
                value = value[key]
            else:
                return value
        raise DemoError(f"no node of {self.deployment} has {':'.join(keys)}")

    def image_tag(self, name: str) -> str:
        image = self.service(name)["image"]
        if image not in self.images:
            raise DemoError(f"kubernetes:control:service:{name}:image is {image}, which "
                            f"docker:build:image of {self.deployment} does not define")
        tag = self.tags.get(image, self.images[image].tag)
        try:
            self.client.images.get(tag)
        except docker.errors.ImageNotFound:
            raise DemoError(f"image {tag} is missing: run `stacksalt images build "
                            f"{self.deployment}` first") from None
        return tag

    def environment(self, name: str) -> dict[str, str]:
        """What the Deployment gives the container: env, and secret_env from the secrets."""
        svc = self.service(name)
        env = {k: str(v) for k, v in (svc.get("env") or {}).items()}
        for var, secret in (svc.get("secret_env") or {}).items():
            if secret not in self.secrets:
                raise DemoError(f"secret {secret} (kubernetes:control:service:{name}:"
                                f"secret_env:{var}) is not in pillar/secrets/"
                                f"{self.deployment}.sls: run `stacksalt secrets generate "
                                f"{self.deployment}`")
            env[var] = self.secrets[secret]
        return env

    def volumes(self, name: str) -> dict[str, dict[str, str]]:
        """pvc volumes as Docker volumes (shared by the role's jobs and containers)."""
        out = {}
        for vol, spec in (self.service(name).get("volumes") or {}).items():
            if spec.get("type") == "pvc":
                out[f"{self.prefix}-{name}-{vol}"] = {"bind": spec["path"], "mode": "rw"}
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

    def _create(self, name: str, container: str, command: list[str],
                environment: dict[str, str], alias: bool):
        self.network()
        kwargs: dict[str, Any] = {}
        if alias:
            kwargs["networking_config"] = {
                self.network_name: self.client.api.create_endpoint_config(aliases=[name])}
        return self.client.containers.create(
            self.image_tag(name), command=command, name=f"{self.prefix}-{container}",
            environment=environment, volumes=self.volumes(name), labels=self._labels(),
            network=self.network_name, **kwargs)

    def run_job(self, name: str, mode: str, timeout: float = 900) -> str:
        """One-shot container of `name` in `mode`; its output, or DemoError if it fails."""
        started = time.monotonic()
        box = self._create(name, f"{name}-{mode.replace('_', '-')}", [mode],
                           self.environment(name), alias=False)
        try:
            with self.console.status(f"{name}: job {mode}"):
                box.start()
                try:
                    rc = box.wait(timeout=timeout)["StatusCode"]
                except Exception as exc:  # requests' ReadTimeout
                    raise DemoError(f"{name}: job {mode} did not end within {timeout:.0f} s") \
                        from exc
            out = box.logs().decode(errors="replace")
        finally:
            box.remove(v=True, force=True)
        seconds = time.monotonic() - started
        if rc != 0:
            raise DemoError(f"{name}: job {mode} failed (exit {rc}):\n{out[-4000:]}")
        self._step(f"{name}: job {mode}", seconds, "exit 0")
        return out

    def start(self, name: str, container: str, mode: str, timeout: float = 300) -> str:
        """A long-running container of `name`, reachable as `name`; waits for its probe."""
        started = time.monotonic()
        box = self._create(name, container, [mode], self.environment(name), alias=True)
        box.start()
        self.started[container] = box
        spec = self.service(name)["containers"][container]
        probe = spec.get("probe") or {}
        port = self.service(name).get("ports", {}).get(spec.get("port", ""), None)
        with self.console.status(f"{name}: {container} ({mode}) starting"):
            result = self._wait_probe(box, probe, port, timeout)
        self._step(f"{name}: {container} ({mode}) ready", time.monotonic() - started, result)
        return self.address(box)

    def address(self, box) -> str:
        box.reload()
        return box.attrs["NetworkSettings"]["Networks"][self.network_name]["IPAddress"]

    def _wait_probe(self, box, probe: dict[str, Any], port: int | None, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            box.reload()
            if box.status in ("exited", "dead"):
                raise DemoError(f"{box.name} exited ({box.attrs['State']['ExitCode']}):\n"
                                f"{box.logs(tail=60).decode(errors='replace')}")
            host = self.address(box)
            try:
                if "http" in probe:
                    status, _, _ = http("GET", f"http://{host}:{port}{probe['http']}")
                    if status < 500:
                        return f"GET {probe['http']} -> {status}"
                    last = f"HTTP {status}"
                elif "tcp" in probe and port:
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
        mine = {"label": f"{LABEL}={self.prefix}"}
        for box in self.client.containers.list(all=True, filters=mine):
            box.remove(v=True, force=True)
        for vol in self.client.volumes.list():
            if vol.name.startswith(f"{self.prefix}-"):
                vol.remove(force=True)
        for net in self.client.networks.list(names=[self.network_name]):
            net.remove()
        self.started.clear()

    # ------------------------------------------------------------------ the stack
    def bring_up(self, name: str) -> dict[str, str]:
        """Bootstrap jobs in order, then every container with a probe: {container: ip}."""
        svc = self.service(name)
        for mode in (svc.get("jobs") or {}).get("bootstrap", []):
            self.run_job(name, mode)
        up = {}
        for container, spec in svc["containers"].items():
            probe = spec.get("probe") or {}
            if name in ("mariadb", "rabbitmq", "memcached") or "http" in probe:
                up[container] = self.start(name, container, spec["command"])
        return up

    def admin_token(self, keystone: str) -> tuple[str, dict[str, Any]]:
        port = self.service("keystone")["ports"]["public"]
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


def _control_services(dep: Deployment) -> dict[str, Any]:
    for node in dep.node_names:
        services = (dep.parameters(node).get("kubernetes", {}).get("control", {})
                    .get("service"))
        if services:
            return services
    raise DemoError(f"no node of {dep.name} has kubernetes:control:service")


def http(method: str, url: str, body: Any = None, token: str | None = None,
         timeout: float = 30) -> tuple[int, dict[str, str], Any]:
    """(status, headers, parsed JSON body or text) of one real HTTP request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, headers, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, dict(exc.headers), exc.read()
    text = raw.decode(errors="replace")
    try:
        return status, headers, json.loads(text)
    except json.JSONDecodeError:
        return status, headers, text


@dataclass
class Proof:
    token: dict[str, Any]
    catalog: dict[str, list[str]]
    images: Any
    flavors: Any
    networks: Any
    network: dict[str, Any]  # the project network the proof created
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
    nova = stack.bring_up("nova-controller")["nova-api"]
    neutron = stack.bring_up("neutron-server")["neutron-server"]
    neutron_api = f"http://{neutron}:{stack.service('neutron-server')['ports']['api']}"
    catalog = {s["type"]: sorted(e["interface"] for e in s["endpoints"])
               for s in http("POST", f"http://{keystone}:5000/v3/auth/tokens", {"auth": {
                   "identity": {"methods": ["token"], "token": {"id": token}},
                   "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
                   )[2]["token"]["catalog"]}
    results = {}
    for what, url in (("glance-api: GET /v2/images",
                       f"http://{glance}:{stack.service('glance-api')['ports']['api']}/v2/images"),
                      ("nova-controller: GET /v2.1/flavors",
                       f"http://{nova}:{stack.service('nova-controller')['ports']['api']}"
                       "/v2.1/flavors"),
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
    return Proof(token_body, catalog, results["glance-api: GET /v2/images"],
                 results["nova-controller: GET /v2.1/flavors"],
                 results["neutron-server: GET /v2.0/networks"], network, stack.steps,
                 time.monotonic() - started)


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
