"""`stacksalt images build DEPLOYMENT [IMAGE...] [--push] [--changed-only]` and
`stacksalt images plan DEPLOYMENT [IMAGE...] [--json]`.

Order of work, so that bad input stops everything before anything is built or pushed:
model check and image definitions; every context assembled (source folders, formulas)
and every release's constraints file found; registry credentials checked (--push,
--changed-only: the registry must answer and accept the login); then openstack-base:<release>
for each release in use, then the images (with --changed-only only those the plan says to
build; every image labelled with its inputs digest, plan.py); then, only when every image
is built, the pushes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import DockerException, ImageNotFound
from rich.console import Console
from rich.table import Table

from stacksalt.images import assemble, definitions, push, releases
from stacksalt.images import plan as imageplan
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


def engine_base_id(client: docker.DockerClient, deployment: str) -> imageplan.BaseId:
    """The image ID of a base image on this host's engine, or a clear error."""
    def base_id(tag: str) -> str:
        try:
            return str(client.images.get(tag).id)
        except ImageNotFound:
            raise ImagesError(
                f"base image {tag} is not on this host, so the inputs digest of the images "
                f"built FROM it cannot be made; build it ('stacksalt images build "
                f"{deployment}' builds the bases first) and run again"
            ) from None
        except DockerException as exc:
            raise ImagesError(f"the Docker engine cannot tell the ID of base image {tag}: "
                              f"{exc}") from None
    return base_id


def inputs_of(work: Plan, base_id: imageplan.BaseId,
              root: Path | None = None) -> dict[str, imageplan.Inputs]:
    return {d.name: imageplan.inputs(d, work.contexts[d.name], buildargs(d), base_id, root)
            for d in work.images}


def _load(console: Console, deployment: str, names: list[str] | None,
          registry: str | None, root: Path | None) -> tuple[definitions.Definitions, Plan]:
    with console.status(f"model check of {deployment}"):
        # the model of ``root`` (an exported revision), or of the deployment repository
        defs = definitions.load(deployment, root / "reclass" if root else None,
                                only=list(names or []) or None)
    if registry:
        # another registry than docker:build:registry (a local mirror, a test registry)
        for d in defs.images.values():
            d.registry = registry
    work = plan(defs, list(names or []), root)
    if not work.images:
        raise ImagesError(f"deployment {deployment} defines no enabled image "
                          f"(model key {definitions.KEY})")
    return defs, work


def _apis(registries: list[str], auth: dict[str, str], plain_http: bool,
          ca: Path | None) -> dict[str, imageplan.RegistryAPI]:
    apis = {r: imageplan.RegistryAPI(r, auth, plain_http=plain_http, ca=ca) for r in registries}
    for api in apis.values():
        api.ping()
    return apis


def plan_images(
    console: Console,
    deployment: str,
    names: list[str] | None = None,
    base_id: imageplan.BaseId | None = None,
    root: Path | None = None,
    password: str | None = None,
    registry: str | None = None,
    plain_http: bool = False,
    ca: Path | None = None,
) -> list[imageplan.Decision]:
    """What `images build --changed-only` would build, and why (nothing is built)."""
    defs, work = _load(console, deployment, names, registry, root)
    auth = push.credentials(defs, password, "nothing was planned")
    apis = _apis(sorted({d.registry for d in work.images}), auth, plain_http, ca)
    if base_id is None:
        try:
            base_id = engine_base_id(docker.from_env(), deployment)
        except DockerException as exc:
            raise ImagesError(f"the Docker engine does not answer ({exc}); the plan needs the "
                              "image IDs of the base images: start dockerd") from None
    return imageplan.decisions(work.images, inputs_of(work, base_id, root), apis.__getitem__)


def build_images(
    client: docker.DockerClient | None,
    console: Console,
    deployment: str,
    names: list[str] | None = None,
    do_push: bool = False,
    root: Path | None = None,
    password: str | None = None,
    registry: str | None = None,
    changed_only: bool = False,
    plain_http: bool = False,
    ca: Path | None = None,
    before_push: Callable[[list[str]], None] | None = None,
) -> list[Built]:
    """Build (and push) the deployment's images; returns what was built, base first.
    Each image carries its inputs digest as labels (plan.py); with ``changed_only`` only the
    images whose digest differs from the registry's tag are built (and pushed).
    ``before_push`` gets the tags to be pushed once all are built (the pipeline's secrets
    scan): what it raises stops the run before anything is pushed."""
    started = time.monotonic()
    defs, work = _load(console, deployment, names, registry, root)
    registries = sorted({d.registry for d in work.images})
    auth = None
    if do_push or changed_only:
        auth = push.credentials(defs, password,
                                "nothing was pushed" if do_push else "nothing was built")
    apis: dict[str, imageplan.RegistryAPI] = {}
    if changed_only and auth is not None:
        # before anything is built: the registry answers and accepts the login
        apis = _apis(registries, auth, plain_http, ca)
    # the engine is needed only now: bad input is refused even where none runs
    client = client or docker.from_env()
    if do_push and auth is not None:
        for reg in registries:
            push.preflight(client, reg, auth)
            console.print(f"[bold]registry[/bold] {reg}: logged in as {auth['username']}")
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
    all_inputs = inputs_of(work, engine_base_id(client, deployment), root)
    todo = work.images
    if changed_only:
        decided = imageplan.decisions(work.images, all_inputs, apis.__getitem__)
        console.print(imageplan.table(deployment, decided))
        todo = [d for d, p in zip(work.images, decided, strict=True) if p.build]
    for d in todo:
        console.print(f"[bold]{d.name}[/bold] -> {d.tag}")
        built.append(build(
            client, console,
            name=d.name,
            tag=d.tag,
            context=work.contexts[d.name].tar(),
            buildargs=buildargs(d),
            labels=all_inputs[d.name].labels(),
            what_to_fix=f"fix images/{d.source}/ or the formulas "
                        f"{', '.join(assemble.context_formulas(d, root))} "
                        f"(image {d.name}, model key parameters:{d.key} in {d.file})",
        ))
    if do_push and auth is not None:
        by_name = {d.name: d for d in todo}
        if before_push:
            before_push([by_name[b.name].tag for b in built if b.name in by_name])
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


def main(deployment: str, names: list[str], do_push: bool, registry: str | None = None,
         changed_only: bool = False) -> int:
    console = Console()
    try:
        build_images(None, console, deployment, names, do_push,
                     registry=registry, changed_only=changed_only)
    except ImagesError as exc:
        print(f"stacksalt images build: {exc}", file=sys.stderr)
        return 1
    return 0


def main_plan(deployment: str, names: list[str], as_json: bool = False,
              registry: str | None = None, plain_http: bool = False, ca: Path | None = None,
              base_id: Callable[[str], str] | None = None) -> int:
    console = Console(stderr=as_json)
    try:
        decided = plan_images(console, deployment, names, base_id=base_id, registry=registry,
                              plain_http=plain_http, ca=ca)
    except ImagesError as exc:
        print(f"stacksalt images plan: {exc}", file=sys.stderr)
        return 1
    imageplan.show(console, deployment, decided, as_json)
    return 0


def main_freeze(release: str) -> int:
    from stacksalt.images.freeze import freeze

    try:
        freeze(docker.from_env(), Console(), release)
    except ImagesError as exc:
        print(f"stacksalt images freeze: {exc}", file=sys.stderr)
        return 1
    return 0
