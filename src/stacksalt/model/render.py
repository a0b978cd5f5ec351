"""The rendering pass: render every node with one reclass Core and keep every error.

A fresh Core per node costs ~30-40 ms (it re-reads and re-parses every class); one
Core for the whole deployment parses each class once (its storage caches them), so a
node costs a few ms. reclass stops a node's interpolation at the first error other
than an unresolved reference (those it groups); to report every error at once, the
failed key is set to None and interpolation resumes, the way reclass itself carries on
after an unresolved reference.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import reclass.errors as rerr
import reclass.settings
from reclass.storage.yamldata import YamlData
from reclass.utils.dictpath import DictPath

from stacksalt import engine
from stacksalt.model.errors import ENGINE_ERROR, ModelError
from stacksalt.model.index import ModelFile, ModelIndex
from stacksalt.model.locate import locate_in_chain
from stacksalt.model.translate import NodeContext, translate

MAX_RESUMES = 100  # per node: give up resuming interpolation after this many errors


@dataclass
class RenderedNode:
    """A node that rendered cleanly: reclass's nodeinfo plus where its data came from."""

    name: str
    file: str  # the node file, relative to the inventory base
    deployment: str | None
    chain: tuple[str, ...]  # class and node files in merge order (node file last)
    info: dict[str, Any]  # reclass nodeinfo: classes, applications, parameters, exports, ...
    index: ModelIndex = field(repr=False)

    @property
    def parameters(self) -> dict[str, Any]:
        return self.info["parameters"]

    def locate(self, key_path: str) -> str | None:
        """The file that last set ``key_path`` (``parameters:a:b`` or ``a:b``) for this node."""
        return locate_in_chain(self.index, self.chain, key_path)


@dataclass
class RenderedDeployment:
    """The nodes of a deployment that rendered cleanly, for the semantic checks."""

    inventory: Path
    deployment: str | None
    nodes: dict[str, RenderedNode]
    index: ModelIndex = field(repr=False)

    def error(self, node: RenderedNode, key: str, kind: str, message: str) -> ModelError:
        """A ModelError about ``key`` of ``node``, blamed on the file that set the key."""
        if not key.startswith(("parameters:", "exports:")) and key not in ("parameters", "exports"):
            key = f"parameters:{key}"
        return ModelError(kind, node.locate(key) or node.file, key, message, [node.name])


class _RepairingStorage:
    """reclass storage that serves repaired data for the files the static pass refused.

    Wraps the Core's own (caching) storage; every other class and node is loaded by
    reclass as usual. ``repairs`` maps a file (relative path) to its repaired data.
    """

    def __init__(self, real: Any, index: ModelIndex, repairs: dict[str, dict[str, Any]]):
        self._real = real
        self._index = index
        self._repairs = repairs
        self._entities: dict[tuple[str, str], Any] = {}

    name = property(lambda self: self._real.name)

    def _repaired(self, mf: ModelFile | None, settings: Any) -> Any:
        if mf is None or mf.rel not in self._repairs:
            return None
        entity = self._entities.get((mf.kind, mf.name))
        if entity is None:
            root = self._index.classes_dir if mf.kind == "class" else self._index.nodes_dir
            yaml_data = YamlData(f"yaml_fs://{mf.path}")
            yaml_data._data = self._repairs[mf.rel]
            pathname = os.path.splitext(mf.path.relative_to(root).as_posix())[0]
            entity = yaml_data.get_entity(mf.name, pathname, settings)
            self._entities[(mf.kind, mf.name)] = entity
        return entity

    def get_class(self, name: str, environment: Any, settings: Any) -> Any:
        repaired = self._repaired(self._index.classes.get(name), settings)
        if repaired is not None:
            return repaired
        return self._real.get_class(name, environment, settings)

    def get_node(self, name: str, settings: Any) -> Any:
        repaired = self._repaired(self._index.nodes.get(name), settings)
        if repaired is not None:
            return repaired
        return self._real.get_node(name, settings)

    def enumerate_nodes(self) -> Any:
        return self._real.enumerate_nodes()


class _Inventory:
    """The exports of every node, computed once and only if some node queries them."""

    def __init__(self, core: Any):
        self._core = core
        self._value: dict | None = None
        self._error: BaseException | None = None

    def get(self) -> dict:
        if self._error is not None:
            raise self._error
        if self._value is None:
            try:
                self._value = self._core._get_inventory(True, "", None)
            except rerr.ReclassException as exc:
                self._error = exc
                raise
        return self._value


def _resume_after(params: Any, exc: BaseException, delimiter: str) -> bool:
    """Drop the key an interpolation error stopped at, so interpolation can resume.

    Returns False when there is nothing sensible to drop.
    """
    unrendered = getattr(params, "_unrendered", None)
    context = getattr(exc, "context", None)
    if unrendered is None or context is None:
        return False
    drop = [context if isinstance(context, DictPath) else DictPath(delimiter, str(context))]
    if isinstance(exc, rerr.InfiniteRecursionError):
        drop.append(DictPath(delimiter, str(exc.ref)))  # breaks the cycle
    dropped = False
    for path in drop:
        if path in unrendered:
            del unrendered[path]
            dropped = True
        with contextlib.suppress(Exception):
            path.set_value(params._base, None)
    # keys that were waiting for the failed one are retried from scratch
    for path, state in list(unrendered.items()):
        if state is False:
            unrendered[path] = True
    return dropped


def _interpolate(entity: Any, inventory: _Inventory, delimiter: str) -> list[BaseException]:
    """Interpolate a node entity's parameters and exports; every error met."""
    errors: list[BaseException] = []
    params = entity.parameters
    try:
        entity.initialise_interpolation()
        inv = inventory.get() if params.has_inv_query else None
    except rerr.ReclassException as exc:
        return [exc]
    for _ in range(MAX_RESUMES):
        try:
            params.interpolate(inv)
            break
        except rerr.ResolveErrorList:
            break
        except rerr.InterpolationError as exc:
            errors.append(exc)
            if not _resume_after(params, exc, entity.parameters._settings.delimiter):
                break
        except Exception as exc:  # reclass's own bugs (RuntimeError from merge_over, ...)
            errors.append(exc)
            break
    errors.extend(params.resolve_errors.resolve_errors)
    if not errors and len(entity.exports):  # (it re-walks the parameters: skip if unused)
        try:
            entity.interpolate_exports()
        except rerr.InterpolationError as exc:
            exc.stacksalt_section = "exports"
            errors.append(exc)
    return errors


def render_one(core: Any, name: str, inventory: _Inventory) -> tuple[dict | None, list]:
    """(nodeinfo or None, errors) for one node, with a shared Core."""
    try:
        entity = core._node_entity(name)
    except Exception as exc:  # class not found, reference syntax, reclass bugs
        return None, [exc]
    errors = _interpolate(entity, inventory, core._settings.delimiter)
    if errors:
        return None, errors
    return core._nodeinfo_as_dict(name, entity), []


def render_nodes(
    index: ModelIndex,
    nodes: Sequence[tuple[ModelFile, Sequence[str]]],
    settings: reclass.settings.Settings,
    repairs: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, RenderedNode], list[ModelError]]:
    """Render ``nodes`` (each with its chain of files); the clean ones and every error.

    ``repairs`` (file -> data) replaces files the static pass refused, so that the
    nodes using them can still be rendered for their other errors.
    """
    try:
        core = engine.core(index.base)
    except rerr.ReclassException as exc:
        message = f"reclass cannot load the inventory: {exc.message}"
        return {}, [ModelError(ENGINE_ERROR, None, None, message, [n.name for n, _ in nodes])]
    if repairs:
        core._storage = _RepairingStorage(core._storage, index, repairs)
    inventory = _Inventory(core)
    rendered: dict[str, RenderedNode] = {}
    errors: list[ModelError] = []
    # reclass prints warnings (overwritten unresolved references) to stderr
    with contextlib.redirect_stderr(io.StringIO()):
        for node, chain in nodes:
            info, failures = render_one(core, node.name, inventory)
            if info is not None:
                rendered[node.name] = RenderedNode(
                    node.name, node.rel, node.deployment, tuple(chain), info, index
                )
                continue
            ctx = NodeContext(index, node, chain, settings)
            for exc in failures:
                errors.append(translate(exc, ctx, getattr(exc, "stacksalt_section", "parameters")))
    return rendered, errors
