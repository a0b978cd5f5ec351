"""The images a deployment's model defines: docker:build of its nodes.

Every node that has `docker:build` contributes its `docker:build:image` entries; two
nodes that define one image differently (definition or baked-in pillar) are an error
naming both. The model check runs first, so a broken model (e.g. a reference to a
parameter that does not exist) is refused with its file and key before anything is built.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacksalt import paths
from stacksalt.deployment import Deployment
from stacksalt.images.errors import ImagesError
from stacksalt.keypath import MISSING, lookup
from stacksalt.model import check
from stacksalt.model.render import RenderedNode
from stacksalt.registry import Registry

KEY = "docker:build:image"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass
class ImageDef:
    name: str
    source: str
    version: str
    enabled: bool
    pillar_keys: tuple[str, ...]
    pillar: dict[str, Any]  # {top: {sub: subtree}}: exactly the named subtrees
    registry: str
    namespace: str
    node: str  # the first node defining it
    file: str  # the class file that defines it (relative to the inventory)
    release: str | None = None
    release_file: str = ""  # the file that set docker:build:image:<name>:release
    nodes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{KEY}:{self.name}"

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.namespace}/{self.name}"

    @property
    def tag(self) -> str:
        return f"{self.repository}:{self.version}"

    @property
    def formulas(self) -> list[str]:
        return sorted({k.split(":", 1)[0] for k in self.pillar_keys})

    def identity(self) -> str:
        """What must be equal when two nodes define the same image."""
        return json.dumps(
            [self.source, self.version, self.release, self.enabled, self.pillar_keys,
             self.pillar, self.registry, self.namespace],
            sort_keys=True, default=str,
        )


@dataclass
class Definitions:
    deployment: str
    inventory: Path
    images: dict[str, ImageDef]
    registry: Registry | None

    def enabled(self) -> list[ImageDef]:
        return [d for _, d in sorted(self.images.items()) if d.enabled]

    def select(self, names: list[str]) -> list[ImageDef]:
        """The named images (all enabled ones when none is named)."""
        if not names:
            return self.enabled()
        unknown = [n for n in names if n not in self.images]
        if unknown:
            raise ImagesError(
                f"deployment {self.deployment} defines no image {', '.join(unknown)} "
                f"(model key {KEY}; defined: {', '.join(sorted(self.images)) or 'none'})"
            )
        return [self.images[n] for n in dict.fromkeys(names)]


def _one(node: RenderedNode, name: str, spec: Any, build: dict[str, Any]) -> ImageDef:
    key = f"{KEY}:{name}"
    file = node.locate(f"parameters:{key}") or node.file

    def bad(sub: str, what: str) -> ImagesError:
        where = node.locate(f"parameters:{key}:{sub}") or file
        return ImagesError(f"{where}: parameters:{key}:{sub}: {what} (node {node.name})")

    if not _NAME.match(name):
        raise ImagesError(f"{file}: parameters:{key}: '{name}' is not a valid image "
                                 "name (lower case letters, digits, . _ -)")
    if not isinstance(spec, dict):
        raise ImagesError(f"{file}: parameters:{key}: must be a mapping (node {node.name})")
    for sub in ("source", "version"):
        if not isinstance(spec.get(sub), (str, int, float)) or str(spec.get(sub)) == "":
            raise bad(sub, "is missing or not a string")
    source = str(spec["source"])
    if not _NAME.match(source):
        raise bad("source", f"'{source}' is not a folder name under images/")
    keys = spec.get("pillar") or []
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise bad("pillar", "must be a list of pillar paths such as mariadb:server")
    pillar: dict[str, Any] = {}
    for k in keys:
        value = lookup(node.parameters, k)
        if value is MISSING:
            raise bad("pillar", f"names '{k}', which node {node.name}'s pillar does not "
                      "have: include the service class that defines it, or fix the name") from None
        target = pillar
        parts = k.split(":")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    release = spec.get("release")
    if release is not None and (not isinstance(release, str) or not release):
        raise bad("release", "must be an OpenStack release name such as flamingo")
    for sub in ("registry", "namespace"):
        if not isinstance(build.get(sub), str) or not build.get(sub):
            where = node.locate(f"parameters:docker:build:{sub}") or node.file
            raise ImagesError(f"{where}: parameters:docker:build:{sub}: is missing "
                              f"(node {node.name}); include service.docker.build")
    return ImageDef(
        name=name,
        source=source,
        version=str(spec["version"]),
        enabled=bool(spec.get("enabled", True)),
        pillar_keys=tuple(keys),
        pillar=pillar,
        registry=build["registry"],
        namespace=build["namespace"],
        node=node.name,
        file=file,
        release=release,
        release_file=(node.locate(f"parameters:{key}:release") or file) if release else "",
        nodes=[node.name],
    )


def _concerns_other_image(error: Any, only: list[str] | None) -> bool:
    """An error about the definition of an image that was not asked for (e.g. its source
    folder does not exist yet) does not stop building the others."""
    if not only or not error.key:
        return False
    prefix = f"parameters:{KEY}:"
    if not error.key.startswith(prefix):
        return False
    return error.key[len(prefix):].split(":", 1)[0] not in only


def load(deployment: str, inventory: Path | None = None,
         only: list[str] | None = None) -> Definitions:
    """The deployment's image definitions, after a clean model check (errors about the
    definitions of images outside ``only`` are let through when ``only`` is given)."""
    inventory = Path(inventory) if inventory is not None else paths.reclass_dir(deployment)
    try:
        result = check.run(inventory, deployment)
    except check.DeploymentNotFound as exc:
        raise ImagesError(str(exc)) from exc
    errors = [e for e in result.errors if not _concerns_other_image(e, only)]
    if errors:
        lines = "\n".join(f"  {e}" for e in errors)
        raise ImagesError(
            f"the model of deployment {deployment} has {len(errors)} error(s); "
            f"nothing was built:\n{lines}\n"
            f"fix them (see 'stacksalt model check {deployment}') and run again"
        )
    assert result.rendered_deployment is not None
    images: dict[str, ImageDef] = {}
    for node_name, node in sorted(result.rendered_deployment.nodes.items()):
        docker_params = node.parameters.get("docker") or {}
        build = docker_params.get("build")
        if isinstance(build, dict):
            for name, spec in sorted((build.get("image") or {}).items()):
                if only and str(name) not in only:
                    images.setdefault(str(name), None)  # type: ignore[arg-type]
                    continue
                d = _one(node, str(name), spec, build)
                seen = images.get(d.name)
                if seen is None:
                    images[d.name] = d
                elif seen.identity() != d.identity():
                    raise ImagesError(
                        f"image {d.name} is defined differently on nodes {seen.node} and "
                        f"{node_name} ({seen.file} / {d.file}, key parameters:{d.key} or its "
                        f"pillar {', '.join(d.pillar_keys)}); one image has one definition: "
                        "make the two nodes' classes agree"
                    )
                else:
                    seen.nodes.append(node_name)
    return Definitions(deployment, inventory,
                       {k: v for k, v in images.items() if v is not None},
                       Deployment.from_check(result).registry)
