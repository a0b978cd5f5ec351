"""Lab networks and node containers that run systemd as PID 1."""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Mapping, Sequence

import docker
from docker.errors import NotFound
from docker.models.containers import Container
from docker.models.networks import Network
from docker.types import IPAMConfig, IPAMPool, Mount

from stacksalt.errors import StacksaltError
from stacksalt.lab.images import LAB_LABEL

log = logging.getLogger(__name__)

SYSTEMD_TIMEOUT = 90.0
# Capabilities of a node: systemd needs SYS_ADMIN (mount namespaces for unit
# sandboxing, tmpfs mounts); NET_ADMIN / NET_RAW are for networking daemons.
NODE_CAPS = ["SYS_ADMIN", "NET_ADMIN", "NET_RAW"]


class LabError(StacksaltError):
    """A lab network or node could not be set up."""


def _with_lab_label(labels: Mapping[str, str] | None) -> dict[str, str]:
    return {**(labels or {}), LAB_LABEL: "true"}


def exec_run(container: Container, cmd: str | Sequence[str], check: bool = True) -> str:
    """Run cmd in the container (no shell: pass ["sh", "-c", ...] for one).

    Returns stdout and stderr together; with check, a non-zero exit raises
    LabError with the command and its output.
    """
    argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    code, output = container.exec_run(argv)
    text = output.decode("utf-8", "replace") if output else ""
    if check and code != 0:
        raise LabError(
            f"{container.name}: `{shlex.join(argv)}` exited {code}:\n{text.rstrip()}"
        )
    return text


def ensure_network(
    client: docker.DockerClient,
    name: str,
    subnet: str,
    gateway: str,
    labels: Mapping[str, str] | None = None,
) -> Network:
    """Return the bridge network `name` with this subnet, creating it if needed."""
    try:
        network = client.networks.get(name)
    except NotFound:
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=subnet, gateway=gateway)])
        return client.networks.create(
            name, driver="bridge", ipam=ipam, labels=_with_lab_label(labels)
        )
    configs = (network.attrs.get("IPAM") or {}).get("Config") or []
    subnets = [c.get("Subnet") for c in configs]
    if subnet not in subnets:
        raise LabError(
            f"docker network {name!r} exists with subnet {', '.join(map(str, subnets)) or '?'}, "
            f"not {subnet}: remove it (docker network rm {name}, after removing its "
            "containers) or change the lab's subnet"
        )
    return network


def _systemd_host_settings(client: docker.DockerClient) -> dict:
    """Host-config settings that let systemd run as PID 1 without --privileged."""
    settings: dict = {
        # systemd mounts nothing on /run itself in a container: give it tmpfs.
        "tmpfs": {"/run": "rw,mode=755", "/run/lock": "rw,mode=1777"},
        "cap_add": NODE_CAPS,
    }
    if str(client.info().get("CgroupVersion", "1")) == "2":
        # Untested here: a private cgroup namespace is what systemd needs on v2.
        settings["cgroupns"] = "private"
    else:
        # cgroup v1: the host hierarchy, bind-mounted read-only.  Docker applies
        # "ro" to the top tmpfs only, so systemd can still write its own
        # subtree (/sys/fs/cgroup/systemd/docker/<id>).
        settings["binds"] = ["/sys/fs/cgroup:/sys/fs/cgroup:ro"]
        settings["cgroupns"] = "host"
    return settings


def wait_for_systemd(container: Container, timeout: float = SYSTEMD_TIMEOUT) -> str:
    """Wait until `systemctl is-system-running` says running or degraded; return it."""
    deadline = time.monotonic() + timeout
    state = "no answer"
    while time.monotonic() < deadline:
        container.reload()
        if container.status != "running":
            raise LabError(
                f"{container.name} stopped while booting (status {container.status}); "
                f"see `docker logs {container.name}`"
            )
        _, output = container.exec_run(
            ["timeout", "10", "systemctl", "is-system-running", "--wait"]
        )
        lines = (output or b"").decode("utf-8", "replace").strip().splitlines()
        state = lines[-1] if lines else ""
        if state in ("running", "degraded"):
            if state == "degraded":
                failed = exec_run(container, "systemctl --failed --no-legend --plain", check=False)
                log.warning("%s is degraded; failed units:\n%s", container.name, failed)
            return state
        time.sleep(0.5)
    failed = exec_run(container, "systemctl --failed --no-legend --plain", check=False)
    raise LabError(
        f"systemd in {container.name} did not reach running/degraded within {timeout:.0f}s "
        f"(last state: {state or 'none'}); failed units:\n{failed}\n"
        f"look at `docker logs {container.name}` and "
        f"`docker exec {container.name} journalctl -b`"
    )


def start_node(
    client: docker.DockerClient,
    *,
    image: str,
    name: str,
    hostname: str,
    domain: str,
    network: str,
    ipv4: str,
    mounts: Sequence[Mount] | None = None,
    labels: Mapping[str, str] | None = None,
    extra_hosts: Mapping[str, str] | None = None,
    sysctls: Mapping[str, str] | None = None,
) -> Container:
    """Start (or reuse) the node container `name` and wait for its systemd.

    An existing container of that name is reused as it is (started if stopped).
    A new one gets the short hostname and the domain as domainname (so that
    `hostname -f` gives hostname.domain), the fixed ipv4 on `network` with the
    short and full names as aliases, and what systemd needs as PID 1.
    `sysctls` (network-namespaced keys only) are set at creation, since /proc/sys is
    read-only inside the container.
    """
    try:
        container = client.containers.get(name)
        if container.status != "running":
            container.start()
    except NotFound:
        fqdn = f"{hostname}.{domain}" if domain else hostname
        host_config = client.api.create_host_config(
            **_systemd_host_settings(client),
            mounts=list(mounts or []),
            extra_hosts=dict(extra_hosts or {}),
            sysctls=dict(sysctls or {}),
        )
        endpoint = client.api.create_endpoint_config(
            ipv4_address=ipv4, aliases=sorted({hostname, fqdn})
        )
        created = client.api.create_container(
            image,
            name=name,
            hostname=hostname,
            domainname=domain or None,
            labels=_with_lab_label(labels),
            host_config=host_config,
            networking_config=client.api.create_networking_config({network: endpoint}),
            detach=True,
        )
        container = client.containers.get(created["Id"])
        container.start()
    wait_for_systemd(container)
    return container
