"""Semantic checks of the OpenStack service-roles on Kubernetes (``kubernetes:control``).

For every node with ``kubernetes:control:enabled`` (the Kubernetes masters), each enabled
``kubernetes:control:service:<role>`` is checked:

- ``image-without-build``: the role's ``image`` has no ``docker:build:image:<image>``
  entry (or a disabled one), or that entry's ``source`` has no ``images/<source>/``
  directory. The images directory is looked up beside the inventory's ``classes/``
  first (a corpus case), then in the inventory's parent (the checkout: ``reclass/`` next
  to ``images/``); an inventory with neither has no images to check against, and only
  the build definition is checked.
- ``duplicate-port``: a port name written twice in one class file's ``ports`` map (YAML
  keeps the last one silently; reported with its line), two port names with the same
  number (one Service cannot have them), or two containers of one pod that listen on the
  same port. ``unknown-port``: a container's ``port`` that is no key of ``ports``.
- ``replicas-below-pdb``: ``replicas`` below the role's ``pdb_min_available`` (the
  PodDisruptionBudget's minAvailable; when unset the formula uses replicas - 1).
- ``unknown-openstack-release``: a ``docker:build:image:<image>:release`` (on any node,
  the image enabled or not; ``_param:openstack_version`` in this model) that
  ``images/openstack-base/releases.yml`` has no entry for: its images would be tagged
  with a release nobody builds. The message lists the releases the file knows. A release
  of that file without a series in ``kubernetes:control:release_series`` (the order the
  apply uses to refuse a downgrade) is the same error. Skipped when there is no such
  file (looked up like ``images/``).
- ``unknown-secret``: a ``secret_env`` value that names no entry of the deployment's
  secrets pillar, ``pillar/secrets/<deployment>.sls`` (looked up like ``images/``). Its
  keys are read without decrypting anything. When the file does not exist the check is
  skipped: for a test deployment it is generated (git-ignored) from exactly the names
  the model references (``stacksalt secrets generate``), and a formula that lacks a
  secret refuses to render anyway.

The roles are read as the objects builder reads them (``stacksalt_objects``: each role
merged over the formula's role defaults), so a default of the role schema (replicas 1,
kind Deployment, ...) is written in the formula only.

Errors are blamed on the file and key the operator has to edit: a value that comes in
through a reference (``replicas: ${_param:keystone_replicas}``) is followed to the class
that sets the parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from stacksalt import objects
from stacksalt.images import releases
from stacksalt.images.errors import ImagesError
from stacksalt.keypath import lookup
from stacksalt.model.checks.network import blame, get
from stacksalt.model.errors import ModelError
from stacksalt.model.render import RenderedDeployment, RenderedNode
from stacksalt.model.semantic import semantic_check

SERVICES = "kubernetes:control:service"
BUILDS = "docker:build:image"
SECRETS_HEADER = "#!yaml|gpg"


def project_dir(deployment: RenderedDeployment, name: str) -> Path | None:
    """``images``/``pillar``/``formulas`` beside the inventory's classes, else beside the
    inventory (a checkout, or a deployment repository's ``pillar/``), else in the
    deployment repository's pinned ``stacksalt/`` (``images``, ``formulas``)."""
    inv = Path(deployment.inventory)
    for base in (inv, inv.parent, inv.parent / "stacksalt"):
        if (base / name).is_dir():
            return base / name
    return None


def control_nodes(deployment: RenderedDeployment) -> Iterator[RenderedNode]:
    for name in sorted(deployment.nodes):
        node = deployment.nodes[name]
        if get(node, "kubernetes:control:enabled") is True:
            yield node


def roles(node: RenderedNode) -> Iterator[tuple[str, dict[str, Any]]]:
    """(role, spec) for every enabled service-role of the node, merged over the role
    defaults as the objects builder merges them."""
    services = get(node, SERVICES)
    if not isinstance(services, dict):
        return
    builder = objects.builder()
    control = builder.control_settings(node.parameters, objects.defaults())
    for role in sorted(services):
        if not isinstance(services[role], dict):
            continue
        spec = builder.role_settings(control, services[role])
        if spec.get("enabled"):
            yield role, spec


# -- image-without-build ------------------------------------------------------------------


@semantic_check
def images_have_builds(deployment: RenderedDeployment) -> Iterator[ModelError]:
    images_dir = project_dir(deployment, "images")
    for node in control_nodes(deployment):
        builds = get(node, BUILDS)
        builds = builds if isinstance(builds, dict) else {}
        for role, spec in roles(node):
            image = spec.get("image")
            build = builds.get(image) if isinstance(image, str) else None
            if not isinstance(build, dict) or not build.get("enabled", True):
                what = "is disabled" if isinstance(build, dict) else "does not exist"
                yield deployment.error(
                    node, f"{SERVICES}:{role}:image", "image-without-build",
                    f"image {image!r} has no build definition ({BUILDS}:{image} {what}): "
                    "add it (source, version, pillar) to the role's service class")
                continue
            source = build.get("source")
            if images_dir is not None and not (
                    isinstance(source, str) and source and (images_dir / source).is_dir()):
                yield deployment.error(
                    node, f"{BUILDS}:{image}:source", "image-without-build",
                    f"image {image!r} is built from {source!r}, but images/{source}/ does "
                    "not exist: add its Dockerfile and commands there, or point source "
                    "at an existing directory")


SERIES = "kubernetes:control:release_series"


# -- unknown-openstack-release -------------------------------------------------------------


@semantic_check
def openstack_releases_are_known(deployment: RenderedDeployment) -> Iterator[ModelError]:
    images_dir = project_dir(deployment, "images")
    if images_dir is None or not releases.releases_file(images_dir.parent).is_file():
        return
    rel = f"images/{releases.BASE_SOURCE}/releases.yml"
    try:
        known = sorted(releases.load(images_dir.parent))
    except ImagesError as exc:
        yield ModelError("unknown-openstack-release", None, None, str(exc))
        return
    for name in sorted(deployment.nodes):
        node = deployment.nodes[name]
        builds = get(node, BUILDS)
        for image in sorted(builds) if isinstance(builds, dict) else ():
            spec = builds[image]
            release = spec.get("release") if isinstance(spec, dict) else None
            if release is None or str(release) in known:
                continue
            yield blame(
                deployment, node, f"{BUILDS}:{image}:release", "unknown-openstack-release",
                f"release {str(release)!r} is not in {rel} (known: {', '.join(known)}): "
                f"the images would be tagged {release}, which nobody builds; use a known "
                f"release, or add its pins there and run 'stacksalt images freeze {release}'")
    # the apply orders releases by series: each release that can be built has one
    for node in control_nodes(deployment):
        series = get(node, SERIES)
        if not isinstance(series, dict):
            continue
        for name in (n for n in known if n not in series):
            yield blame(
                deployment, node, SERIES, "unknown-openstack-release",
                f"release {name!r} of {rel} has no series here (has: "
                f"{', '.join(sorted(map(str, series))) or 'none'}): add it "
                f"(e.g. {name}: \"2026.1\"), the apply orders releases by it")


# -- duplicate-port / unknown-port ---------------------------------------------------------


PORTS_AT = ("parameters", "kubernetes", "control", "service")  # then <role>, ports


def _duplicate_ports(node: yaml.Node, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], str, int]]:
    """(path of the ports map, key, line) for every port name written twice in a
    ``parameters:kubernetes:control:service:<role>:ports`` map of one file."""
    if not isinstance(node, yaml.MappingNode):
        return
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = str(key_node.value).lstrip("~=")
        if len(path) == len(PORTS_AT) + 2:  # inside a ports map
            if key in seen:
                yield path, key, key_node.start_mark.line + 1
            seen.add(key)
            continue
        child = (*path, key)
        if (len(child) <= len(PORTS_AT) and child != PORTS_AT[: len(child)]) or (
                len(child) == len(PORTS_AT) + 2 and key != "ports"):
            continue
        yield from _duplicate_ports(value_node, child)


@semantic_check
def ports_are_unique(deployment: RenderedDeployment) -> Iterator[ModelError]:
    nodes = list(control_nodes(deployment))
    # duplicate keys in the files these nodes use (raw YAML: the loaded data lost them)
    users: dict[str, list[str]] = {}
    for node in nodes:
        for rel in node.chain:
            users.setdefault(rel, []).append(node.name)
    for rel in sorted(users):
        data = deployment.index.data(rel)
        if not isinstance(get_raw(data, PORTS_AT), dict):
            continue
        try:
            root = yaml.compose((Path(deployment.inventory) / rel).read_text())
        except (OSError, yaml.YAMLError):
            continue  # the static pass reports it
        for path, key, line in _duplicate_ports(root) if root is not None else ():
            yield ModelError(
                "duplicate-port", rel, ":".join((*path, key)),
                f"port name {key!r} is written twice in this ports map (YAML keeps only the "
                "last one): give each port its own name", list(users[rel]), line)
    # the rendered ports of each role
    for node in nodes:
        for role, spec in roles(node):
            ports = spec["ports"] or {}
            key = f"{SERVICES}:{role}:ports"
            by_number: dict[Any, str] = {}
            for name, number in ports.items():
                if number in by_number:
                    yield blame(deployment, node, f"{key}:{name}", "duplicate-port",
                                f"port {number} is also port {by_number[number]!r} of the "
                                "same Service: each port name needs its own number")
                else:
                    by_number[number] = name
            listeners: dict[str, str] = {}
            for cname, container in (spec["containers"] or {}).items():
                port = (container or {}).get("port")
                if port is None:
                    continue
                ckey = f"{SERVICES}:{role}:containers:{cname}:port"
                if port not in ports:
                    yield deployment.error(
                        node, ckey, "unknown-port",
                        f"{port!r} is not a port of the role (ports: "
                        f"{', '.join(map(str, ports)) or 'none'}): add it to {key}")
                elif port in listeners:
                    yield deployment.error(
                        node, ckey, "duplicate-port",
                        f"containers {listeners[port]!r} and {cname!r} both listen on port "
                        f"{port!r} ({ports[port]}) in one pod: give each its own port")
                else:
                    listeners[port] = cname


def get_raw(data: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` of a file's raw data (``~``/``=`` key prefixes allowed)."""
    return lookup(data, path, None, prefixes="~=")


# -- replicas-below-pdb ------------------------------------------------------------------


@semantic_check
def replicas_cover_the_pdb(deployment: RenderedDeployment) -> Iterator[ModelError]:
    for node in control_nodes(deployment):
        for role, spec in roles(node):
            minimum, replicas = spec["pdb_min_available"], spec["replicas"]
            if minimum is None or spec["kind"] != "Deployment":
                continue
            if isinstance(replicas, int) and isinstance(minimum, int) and replicas < minimum:
                yield blame(
                    deployment, node, f"{SERVICES}:{role}:replicas", "replicas-below-pdb",
                    f"replicas {replicas} is below the PodDisruptionBudget's minimum "
                    f"(pdb_min_available {minimum}): no pod could ever be evicted and a "
                    "drain would hang; raise replicas or lower pdb_min_available")


# -- unknown-secret ----------------------------------------------------------------------


def secret_names(path: Path) -> set[str] | None:
    """The entry names of a secrets pillar file (values stay encrypted); None if absent."""
    if not path.is_file():
        return None
    text = path.read_text()
    if text.startswith(SECRETS_HEADER):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    data = yaml.safe_load(text) or {}
    secrets = data.get("secrets") if isinstance(data, dict) else None
    return set(secrets) if isinstance(secrets, dict) else set()


@semantic_check
def secrets_exist(deployment: RenderedDeployment) -> Iterator[ModelError]:
    pillar = project_dir(deployment, "pillar")
    if pillar is None or deployment.deployment is None:
        return
    path = pillar / "secrets" / f"{deployment.deployment}.sls"
    names = secret_names(path)
    if names is None:
        return  # generated for test deployments; see the module docstring
    for node in control_nodes(deployment):
        for role, spec in roles(node):
            for var, secret in sorted((spec["secret_env"] or {}).items()):
                if secret in names:
                    continue
                yield blame(
                    deployment, node, f"{SERVICES}:{role}:secret_env:{var}", "unknown-secret",
                    f"secret {secret!r} is not in pillar/secrets/{deployment.deployment}.sls "
                    "(secrets:): add it there (encrypted to the salt master's key), or name "
                    "an existing secret")

