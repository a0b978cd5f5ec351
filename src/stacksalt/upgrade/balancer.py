"""Each Service of the rehearsal as a load balancer over ready pods only: haproxy.

One haproxy container (Debian bookworm's haproxy 2.6) per Service, reachable on the
rehearsal's network by the Service's name, listening on each Service port. It does what
kube-proxy does for a ClusterIP Service, and no more:

- layer 4 (``mode tcp``): a client's connection is pinned to one pod for its life, as a
  conntrack entry is; no retries and no redispatch (kube-proxy retries nothing: a refused
  or reset connection is the client's error);
- the endpoints are the pods that passed their readiness probe: the rehearsal adds a pod
  (``add server`` on the runtime API) only once its probe answered, as the endpoints
  controller does, and haproxy's own check then follows the container's readinessProbe
  (``httpGet`` path, ``periodSeconds``, ``timeoutSeconds``, ``failureThreshold``,
  ``successThreshold``; ``tcpSocket``: a connect), taking a pod that fails it out;
- a terminating pod leaves the endpoints at once (``set server ... state drain``: no new
  connection, the open ones go on, as conntrack keeps them), then its preStop and SIGTERM
  run; its server is deleted once the pod is gone;
- a Service with no ready pod refuses connections at once (no server in the backend).
"""

from __future__ import annotations

import io
import socket
import tarfile
import time
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
from rich.console import Console

from stacksalt.errors import StacksaltError

IMAGE = "stacksalt/rehearsal-haproxy:bookworm"
ADMIN_PORT = 9999
DOCKERFILE = """\
FROM {base}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends haproxy \\
 && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
"""


class BalancerError(StacksaltError):
    """haproxy cannot be built, started or driven; the message says which Service."""


def ensure_image(client: docker.DockerClient, console: Console,
                 base: str = "stacksalt/base:bookworm") -> str:
    """The haproxy image (built from the Debian base image when missing)."""
    try:
        client.images.get(IMAGE)
        return IMAGE
    except docker.errors.ImageNotFound:
        pass
    from stacksalt.images.dockerbuild import build

    data = DOCKERFILE.format(base=base).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    build(client, console, name="haproxy (rehearsal Services)", tag=IMAGE,
          context=buf.getvalue(), buildargs={},
          what_to_fix="build the Debian base first: stacksalt images build")
    return IMAGE


def config(service: dict[str, Any]) -> str:
    """haproxy.cfg of one Service: a frontend and an empty backend per port."""
    lines = ["global", "  log stdout format raw local0 warning",
             f"  stats socket ipv4@0.0.0.0:{ADMIN_PORT} level admin", "  maxconn 4096",
             "defaults", "  mode tcp", "  log global", "  retries 0", "  timeout connect 5s",
             # AMQP and SQL connections live long; an API keep-alive is closed by the pod
             "  timeout client 1h", "  timeout server 1h", ""]
    for port in service["spec"]["ports"]:
        name = port["name"]
        lines += [f"frontend {name}", f"  bind 0.0.0.0:{port['port']}",
                  f"  default_backend {name}", f"backend {name}", "  balance roundrobin", ""]
    return "\n".join(lines)


def check_args(spec: dict[str, Any]) -> list[str]:
    """haproxy's server check arguments for a container's readinessProbe."""
    probe = spec.get("readinessProbe") or {}
    if not probe or not ({"httpGet", "tcpSocket"} & probe.keys()):
        return []  # no probe (or exec): ready while running, as kubelet has it
    args = ["check", "inter", f"{probe.get('periodSeconds', 10)}s",
            "fall", str(probe.get("failureThreshold", 3)),
            "rise", str(probe.get("successThreshold", 1))]
    port = probe.get("httpGet", probe.get("tcpSocket", {})).get("port")
    number = port if isinstance(port, int) else next(
        (p["containerPort"] for p in spec.get("ports", []) if p["name"] == port), None)
    if number is not None:
        args += ["port", str(number)]
    return args  # an httpGet probe's path is the backend's check (Balancer._with_checks)


@dataclass
class Balancer:
    client: docker.DockerClient
    console: Console
    prefix: str
    network: str
    labels: dict[str, str]
    boxes: dict[str, Any] = field(default_factory=dict)  # Service name -> container
    # pod -> [(Service, backend/server)]
    servers: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def start(self, services: list[dict[str, Any]], pods: dict[str, dict[str, Any]]) -> None:
        """One haproxy per Service, answering by its name; ``pods`` maps each Service to
        the pod template it selects (for the health check of each port)."""
        image = ensure_image(self.client, self.console)
        for svc in services:
            name = svc["metadata"]["name"]
            cfg = config(svc)
            template = pods.get(name)
            cfg = self._with_checks(cfg, svc, template)
            box = self.client.containers.create(
                image, name=f"{self.prefix}-svc-{name}", labels=self.labels,
                network=self.network,
                networking_config={self.network: self.client.api.create_endpoint_config(
                    aliases=[name])})
            _put(box, "/etc/haproxy/haproxy.cfg", cfg)
            box.start()
            self.boxes[name] = box
        for name, box in self.boxes.items():
            self._wait_admin(name, box)

    @staticmethod
    def _with_checks(cfg: str, svc: dict[str, Any], template: dict[str, Any] | None) -> str:
        """An httpGet readiness probe becomes the backend's HTTP check."""
        if template is None:
            return cfg
        out = cfg
        for port in svc["spec"]["ports"]:
            spec = _container_of(template, port["targetPort"])
            probe = (spec or {}).get("readinessProbe") or {}
            if "httpGet" in probe:
                out = out.replace(
                    f"backend {port['name']}\n  balance roundrobin\n",
                    f"backend {port['name']}\n  balance roundrobin\n"
                    f"  option httpchk GET {probe['httpGet']['path']}\n"
                    "  http-check expect status 200-399\n"
                    f"  timeout check {probe.get('timeoutSeconds', 1)}s\n")
        return out

    def address(self, service: str) -> str:
        box = self.boxes[service]
        box.reload()
        return box.attrs["NetworkSettings"]["Networks"][self.network]["IPAddress"]

    def command(self, service: str, line: str) -> str:
        with socket.create_connection((self.address(service), ADMIN_PORT), timeout=10) as s:
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace").strip()

    def _wait_admin(self, name: str, box: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.command(name, "show info")
                return
            except OSError as exc:
                box.reload()
                if box.status != "running" or time.monotonic() > deadline:
                    raise BalancerError(
                        f"haproxy of Service {name} did not start ({exc}):\n"
                        f"{box.logs(tail=30).decode(errors='replace')}") from None
                time.sleep(0.5)

    def add(self, pod: str, template: dict[str, Any], ip: str,
            services: list[dict[str, Any]]) -> None:
        """A ready pod joins the endpoints of every Service selecting it."""
        for svc in services:
            name = svc["metadata"]["name"]
            if name not in self.boxes:
                continue
            for port in svc["spec"]["ports"]:
                spec = _container_of(template, port["targetPort"])
                if spec is None:
                    continue
                number = next(p["containerPort"] for p in spec["ports"]
                              if p["name"] == port["targetPort"] or
                              p["containerPort"] == port["targetPort"])
                server = f"{port['name']}/{pod}"
                args = check_args(spec)
                out = self.command(name, f"add server {server} {ip}:{number} {' '.join(args)}")
                if out and "New server registered" not in out:
                    raise BalancerError(f"Service {name}: add server {server}: {out}")
                if args:
                    self.command(name, f"enable health {server}")
                self.command(name, f"enable server {server}")
                self.servers.setdefault(pod, []).append((name, server))

    def drain(self, pod: str) -> None:
        """A terminating pod leaves the endpoints: no new connection reaches it."""
        for name, server in self.servers.get(pod, []):
            self.command(name, f"set server {server} state drain")

    def remove(self, pod: str) -> None:
        """The pod is gone: its servers are deleted."""
        for name, server in self.servers.pop(pod, []):
            self.command(name, f"set server {server} state maint")
            self.command(name, f"shutdown sessions server {server}")
            out = self.command(name, f"del server {server}")
            if out and "Server deleted" not in out:
                raise BalancerError(f"Service {name}: del server {server}: {out}")


def _container_of(template: dict[str, Any], target: Any) -> dict[str, Any] | None:
    """The container of a pod template that has the port ``target`` (name or number)."""
    for c in template["spec"]["containers"]:
        for p in c.get("ports") or []:
            if target in (p.get("name"), p.get("containerPort")):
                return c
    return None


def _put(box: Any, path: str, text: str, mode: int = 0o644) -> None:
    """A file into a created container (before it starts)."""
    data = text.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(path.rsplit("/", 1)[-1])
        info.size = len(data)
        info.mode = mode
        tar.addfile(info, io.BytesIO(data))
    box.put_archive(path.rsplit("/", 1)[0], buf.getvalue())
