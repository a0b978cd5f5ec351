"""`stacksalt images build DEPLOYMENT [IMAGE...] [--push]`.

Order of work, so that bad input stops everything before anything is built or pushed:
model check and image definitions; every context assembled (source folders, formulas)
and every release's constraints file found; registry credentials checked (--push);
then openstack-base:<release> for each release in use, then the images; then, only when
every image is built, the pushes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import docker
from rich.console import Console
from rich.table import Table

from stacksalt.images import assemble, definitions, push, releases
from stacksalt.images.base import build_base
from stacksalt.images.context import Context
from stacksalt.images.definitions import ImageDef
from stacksalt.images.dockerbuild import Built, build
from stacksalt.images.errors import ImagesError
from stacksalt.lab.images import BASE_IMAGE, SALT_IMAGE, ensure_base_image, ensure_salt_image

RELEASE_PARAM = "_param:openstack_version"


@dataclass
class Plan:
    images: list[ImageDef]
    contexts: dict[str, Context]
    releases: list[str]


def plan(defs: definitions.Definitions, names: list[str], root: Path | None = None) -> Plan:
    """Everything checked and assembled; nothing built yet."""
    selected = defs.select(names)
    wanted: list[str] = []
    for d in selected:
        if d.release:
            key = (f"parameters:{d.key}:release in {d.release_file} (from "
                   f"{RELEASE_PARAM})")
            releases.require_constraints(d.release, key, root)
            if d.release not in wanted:
                wanted.append(d.release)
    contexts = {d.name: assemble.image_context(d, root) for d in selected}
    return Plan(selected, contexts, wanted)


def buildargs(image: ImageDef) -> dict[str, str]:
    args = {"BASE_IMAGE": BASE_IMAGE, "SALT_IMAGE": SALT_IMAGE, "VERSION": image.version}
    if image.release:
        args["OPENSTACK_BASE"] = releases.base_tag(image.release)
    return args


def build_images(
    client: docker.DockerClient | None,
    console: Console,
    deployment: str,
    names: list[str] | None = None,
    do_push: bool = False,
    root: Path | None = None,
    password: str | None = None,
    registry: str | None = None,
) -> list[Built]:
    """Build (and push) the deployment's images; returns what was built, base first."""
    started = time.monotonic()
    with console.status(f"model check of {deployment}"):
        defs = definitions.load(deployment, only=list(names or []) or None)
    if registry:
        # another registry than docker:build:registry (a local mirror, a test registry)
        for d in defs.images.values():
            d.registry = registry
    work = plan(defs, list(names or []), root)
    if not work.images:
        raise ImagesError(f"deployment {deployment} defines no enabled image "
                          f"(model key {definitions.KEY})")
    # the engine is needed only now: bad input is refused even where none runs
    client = client or docker.from_env()
    auth = None
    registries = sorted({d.registry for d in work.images})
    if do_push:
        auth = push.credentials(defs, password)
        for registry in registries:
            push.preflight(client, registry, auth)
            console.print(f"[bold]registry[/bold] {registry}: logged in as {auth['username']}")
    console.print(
        f"[bold]images[/bold] of {deployment}: {', '.join(d.name for d in work.images)}"
        + (f" (openstack-base: {', '.join(work.releases)})" if work.releases else "")
    )
    ensure_base_image(client, console)
    ensure_salt_image(client, console)
    built: list[Built] = []
    for release in work.releases:
        console.print(f"[bold]openstack-base:{release}[/bold]")
        built.append(build_base(client, console, release, root=root))
    for d in work.images:
        console.print(f"[bold]{d.name}[/bold] -> {d.tag}")
        built.append(build(
            client, console,
            name=d.name,
            tag=d.tag,
            context=work.contexts[d.name].tar(),
            buildargs=buildargs(d),
            what_to_fix=f"fix images/{d.source}/ or the formulas "
                        f"{', '.join(assemble.context_formulas(d, root))} "
                        f"(image {d.name}, model key parameters:{d.key} in {d.file})",
        ))
    if do_push and auth is not None:
        by_name = {d.name: d for d in work.images}
        for b in built:
            d = by_name.get(b.name)
            if d is None:
                continue
            b.digest = push.push(client, console, d.repository, d.version, auth)
            console.print(f"[bold]pushed[/bold] {d.tag} {b.digest}")
    prefix = ", ".join(sorted({f"{d.registry}/{d.namespace}/" for d in work.images}))
    table = Table(title=f"images of {deployment} -> {prefix} "
                        f"({time.monotonic() - started:.0f}s)")
    for col in ("image", "tag", "id", "digest" if do_push else "size", "cached", "s"):
        table.add_column(col, no_wrap=col != "image")
    for b in built:
        table.add_row(
            b.name.split(":")[0], b.tag.rsplit(":", 1)[1],
            b.image_id.removeprefix("sha256:")[:12],
            b.digest.removeprefix("sha256:")[:12] if do_push else f"{b.size / 1e6:.0f} MB",
            "yes" if b.cached else f"no ({b.steps - b.cache_hits}/{b.steps})",
            f"{b.seconds:.1f}",
        )
    console.print(table)
    return built


def main(deployment: str, names: list[str], do_push: bool, registry: str | None = None) -> int:
    console = Console()
    try:
        build_images(None, console, deployment, names, do_push,
                     registry=registry)
    except ImagesError as exc:
        print(f"stacksalt images build: {exc}", file=sys.stderr)
        return 1
    return 0


def main_freeze(release: str) -> int:
    from stacksalt.images.freeze import freeze

    try:
        freeze(docker.from_env(), Console(), release)
    except ImagesError as exc:
        print(f"stacksalt images freeze: {exc}", file=sys.stderr)
        return 1
    return 0
