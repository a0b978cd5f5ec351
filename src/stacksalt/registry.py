"""The deployment's image registry as its model describes it, read in one place.

Two parts of the model name it: ``docker:build:registry`` (where the build host pushes,
``host:port``, on every node that builds images) and ``docker:registry`` (the node that
runs it: its name, address, TLS authority and the push account). The image builder needs
the first and the account; the lab's host trust needs the name, address and CA.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from stacksalt.errors import StacksaltError
from stacksalt.keypath import lookup

SERVER_KEY = "docker:registry"
PUSH_KEY = "docker:build:registry"


@dataclass(frozen=True)
class Registry:
    address: str  # docker:build:registry ("" when no node builds images)
    node: str | None = None  # the node with docker:registry:enabled (None: not in the model)
    file: str | None = None  # the file that sets that node's docker:registry
    hostname: str | None = None
    port: int = 5000
    host_address: str | None = None  # docker:registry:address (an IP)
    ca_server: str | None = None  # docker:registry:ssl:ca_server
    ca_path: str | None = None  # the CA certificate's path on ca_server
    user: str | None = None
    password_secret: str | None = None

    @property
    def name(self) -> str:
        """``hostname:port``, the name Docker knows the registry by."""
        return f"{self.hostname}:{self.port}"

    def require(self, keys: Iterable[str], needed_by: str) -> None:
        """A one-line error naming the file and the first missing docker:registry key."""
        if self.node is None:
            raise StacksaltError(f"no node has {SERVER_KEY} with enabled: true, which "
                                 f"{needed_by} needs (include service.docker.registry)")
        values = {"hostname": self.hostname, "address": self.host_address,
                  "ssl:ca_server": self.ca_server, "ssl:authority": self.ca_path,
                  "user": self.user, "password_secret": self.password_secret}
        for key in keys:
            if not values[key]:
                raise StacksaltError(
                    f"{self.file}: parameters:{SERVER_KEY}:{key}: missing (node {self.node}), "
                    f"which {needed_by} needs (see reclass/classes/service/docker/registry.yml)")


def read(parameters: Callable[[str], dict[str, Any]], nodes: Iterable[str],
         locate: Callable[[str, str], str | None]) -> Registry | None:
    """The registry of these nodes (None: no node builds images or runs a registry).
    ``locate(node, key)`` names the file that set a key."""
    address, server = "", None
    for node in nodes:
        params = parameters(node)
        push = lookup(params, PUSH_KEY, None)
        if not address and isinstance(push, str):
            address = push
        reg = lookup(params, SERVER_KEY, None)
        if server is None and isinstance(reg, dict) and reg.get("enabled"):
            server = (node, reg)
    if server is None:
        return Registry(address) if address else None
    node, reg = server
    authority = lookup(reg, "ssl:authority", None)
    return Registry(
        address=address,
        node=node,
        file=locate(node, f"parameters:{SERVER_KEY}"),
        hostname=reg.get("hostname") or None,
        port=int(lookup(reg, "bind:port", 5000)),
        host_address=reg.get("address") or None,
        ca_server=lookup(reg, "ssl:ca_server", None) or None,
        ca_path=(f"{lookup(reg, 'ssl:ca_base_dir', '/etc/pki/ca')}/{authority}/ca.crt"
                 if authority else None),
        user=reg.get("user") or None,
        password_secret=reg.get("password_secret") or None,
    )
