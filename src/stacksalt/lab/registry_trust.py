"""The build host's trust in the lab's image registry (docker:registry, on the salt master).

`lab up` ends with :func:`install`: the host's Docker engine must reach the registry by the
name in the model (``cfg01.lab.local:5000``) and trust its certificate, which the lab's
throwaway Kubernetes CA signed. Two things on the host, both removed by `lab down`
(:func:`remove`):

- ``/etc/docker/certs.d/<host:port>/ca.crt``: the CA certificate, fetched from the CA
  minion's container. dockerd trusts it for that one registry only (Docker's documented
  per-registry mechanism), not for anything else: the lab's CA never enters the host's
  system trust store.
- a marked block in ``/etc/hosts`` naming the registry's address: the lab's domain is in
  no DNS, and dockerd resolves names with the host's resolver.

An operator's CI host needs neither: its DNS has the registry's name and its configuration
management puts the deployment's CA where dockerd (or the system) looks for it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rich.console import Console

from stacksalt.deployment import Deployment
from stacksalt.errors import StacksaltError
from stacksalt.lab import containers
from stacksalt.lab.plan import LabPlan
from stacksalt.registry import Registry

HOSTS_FILE = Path("/etc/hosts")
CERTS_DIR = Path("/etc/docker/certs.d")


class RegistryTrustError(StacksaltError):
    pass


def _begin(deployment: str) -> str:
    return f"# BEGIN stacksalt deployment {deployment}: lab image registry (`stacksalt lab up`)"


def _end(deployment: str) -> str:
    return f"# END stacksalt deployment {deployment}: lab image registry"


def registry(dep: Deployment) -> Registry | None:
    """The deployment's registry, with what the host's trust in it needs (None: the model
    has none)."""
    reg = dep.registry
    if reg is None or reg.node is None:
        return None
    reg.require(("hostname", "address", "ssl:ca_server", "ssl:authority"),
                "the build host's trust in the registry")
    return reg


def _without_block(text: str, deployment: str) -> tuple[str, list[str]]:
    """`text` without the deployment's block, and the block's lines."""
    keep, block, inside = [], [], False
    for line in text.splitlines():
        if line == _begin(deployment):
            inside = True
        elif inside and line == _end(deployment):
            inside = False
        elif inside:
            block.append(line)
        else:
            keep.append(line)
    return "".join(f"{line}\n" for line in keep), block


def _write_in_place(path: Path, text: str) -> None:
    # in place, not by rename: /etc/hosts is often a bind mount (containers, sandboxes)
    with path.open("r+") as f:
        f.seek(0)
        f.write(text)
        f.truncate()


def install(client, lab: LabPlan, console: Console) -> bool:
    """Make the host's dockerd reach and trust the lab's registry. False (after printing
    what went wrong and what to do) when it could not."""
    try:
        reg = _install(client, lab, console)
    except (StacksaltError, OSError) as e:
        console.print(f"[red]the host cannot trust the lab's image registry: {e}[/]")
        return False
    if reg is None:
        console.print("the model has no image registry (docker:registry): nothing to trust")
    return True


def _install(client, lab: LabPlan, console: Console) -> Registry | None:
    reg = registry(lab.model or Deployment.load(lab.deployment))
    if reg is None:
        remove(lab.deployment, console)
        return None
    node = next((n for n in lab.nodes if n.minion_id == reg.ca_server), None)
    if node is None:
        raise RegistryTrustError(
            f"docker:registry:ssl:ca_server {reg.ca_server} is not a node of the lab")
    pem = containers.exec_run(
        client.containers.get(node.container_name(lab.deployment)), ["cat", reg.ca_path],
        check=False)
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise RegistryTrustError(
            f"{reg.ca_server} has no CA certificate at {reg.ca_path}: apply salt.minion.ca "
            f"there (`salt {reg.ca_server} state.apply`) and run `stacksalt lab up` again")
    cert_dir = CERTS_DIR / reg.name
    if not os.access(HOSTS_FILE, os.W_OK):
        raise RegistryTrustError(f"{HOSTS_FILE} is not writable: run `stacksalt lab up` as root")
    cert_dir.mkdir(parents=True, exist_ok=True)
    (cert_dir / "ca.crt").write_text(pem.strip() + "\n")
    (cert_dir / "ca.crt").chmod(0o644)

    text, _ = _without_block(HOSTS_FILE.read_text(), lab.deployment)
    block = [_begin(lab.deployment), f"# registry {reg.name}",
             f"{reg.host_address} {reg.hostname}", _end(lab.deployment)]
    _write_in_place(HOSTS_FILE, text + "".join(f"{line}\n" for line in block))
    console.print(f"host trusts registry {reg.name}: {cert_dir / 'ca.crt'} "
                  f"(CA of {reg.ca_server}), {HOSTS_FILE}: {reg.host_address} {reg.hostname}")
    return reg


def remove(deployment: str, console: Console) -> None:
    """Undo :func:`install`: the marked /etc/hosts block and the certs.d directory it names."""
    if not HOSTS_FILE.exists():
        return
    text, block = _without_block(HOSTS_FILE.read_text(), deployment)
    if not block:
        return
    for line in block:
        if line.startswith("# registry "):
            name = line.removeprefix("# registry ").strip()
            if name and "/" not in name and name not in (".", ".."):
                shutil.rmtree(CERTS_DIR / name, ignore_errors=True)
                console.print(f"removed {CERTS_DIR / name}")
    _write_in_place(HOSTS_FILE, text)
    console.print(f"removed the lab's registry entry from {HOSTS_FILE}")
