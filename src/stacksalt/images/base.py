"""stacksalt/openstack-base:<release>: context and build."""

from __future__ import annotations

from pathlib import Path

import docker
from rich.console import Console

from stacksalt.images import releases
from stacksalt.images.context import Context
from stacksalt.images.dockerbuild import Built, build
from stacksalt.lab.images import BASE_IMAGE


def base_context(release: str, root: Path | None = None, with_constraints: bool = True) -> Context:
    """Dockerfile, the release's constraints file only (other releases never bust the
    cache), the host CA bundle."""
    ctx = Context()
    ctx.add_file("Dockerfile", releases.base_dir(root) / "Dockerfile")
    if with_constraints:
        ctx.add_file(f"constraints/{release}.txt", releases.constraints_file(release, root))
    else:
        ctx.add_bytes("constraints/.none", b"")
    ctx.add_host_ca()
    return ctx


def build_base(
    client: docker.DockerClient,
    console: Console,
    release: str,
    model_key: str = "",
    root: Path | None = None,
) -> Built:
    """Build stacksalt/openstack-base:<release> (refused without its constraints file)."""
    rel = releases.get(release, model_key, root)
    releases.require_constraints(release, model_key, root)
    return build(
        client,
        console,
        name=f"openstack-base:{release}",
        tag=releases.base_tag(release),
        context=base_context(release, root).tar(),
        buildargs={"BASE_IMAGE": BASE_IMAGE, "RELEASE": release, "PINS": rel.pins_arg},
        what_to_fix="fix images/openstack-base (Dockerfile, releases.yml, constraints) "
        "and run again",
    )
