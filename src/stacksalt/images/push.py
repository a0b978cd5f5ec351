"""Push built images to the deployment's registry, after a pre-flight login."""

from __future__ import annotations

import docker
from docker.errors import APIError
from rich.console import Console

from stacksalt import secrets
from stacksalt.images.definitions import Definitions
from stacksalt.images.errors import ImagesError


def credentials(defs: Definitions, password: str | None = None,
                consequence: str = "nothing was pushed") -> dict[str, str]:
    """{username, password} for docker:build:registry: user from docker:registry:user,
    password from the decrypted secret named by docker:registry:password_secret."""
    reg = defs.registry
    if reg is None or not reg.user or not reg.password_secret:
        raise ImagesError(
            f"deployment {defs.deployment} has no registry credentials: no node has "
            "docker:registry with user and password_secret (include service.docker.registry "
            f"on the registry's node); {consequence}"
        )
    if password is None:
        try:
            values = secrets.decrypt_all(defs.deployment)
        except RuntimeError as exc:
            raise ImagesError(f"cannot decrypt the secrets of {defs.deployment}: {exc}; "
                              f"{consequence}") from exc
        if reg.password_secret not in values:
            raise ImagesError(
                f"{secrets.secrets_file(defs.deployment)}: has no secret "
                f"'{reg.password_secret}' (named by docker:registry:password_secret in "
                f"{reg.file}); add it (stacksalt secrets generate {defs.deployment} for a "
                f"test deployment); {consequence}"
            )
        password = values[reg.password_secret]
    return {"username": reg.user, "password": password}


def preflight(client: docker.DockerClient, registry: str, auth: dict[str, str]) -> None:
    """Log in to the registry (the engine checks the credentials against it)."""
    try:
        client.login(username=auth["username"], password=auth["password"],
                     registry=registry, reauth=True)
    except APIError as exc:
        raise ImagesError(
            f"registry {registry} refused user {auth['username']}: "
            f"{exc.explanation or exc}; check docker:registry:user / the password secret "
            "and the registry's TLS trust; nothing was pushed"
        ) from exc


def push(client: docker.DockerClient, console: Console, repository: str, tag: str,
         auth: dict[str, str]) -> str:
    """Push repository:tag; return its digest."""
    digest = ""
    with console.status(f"pushing {repository}:{tag}"):
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True,
                                     auth_config=auth):
            if "error" in chunk:
                raise ImagesError(f"pushing {repository}:{tag} failed: {chunk['error']}")
            aux = chunk.get("aux") or {}
            if aux.get("Digest"):
                digest = aux["Digest"]
    return digest
