"""Semantic checks over rendered nodes: the registry, and ``locate`` to blame a file.

A semantic check is a function taking the ``RenderedDeployment`` (only the nodes whose
static and rendering passes were clean) and yielding ``ModelError``s. Register it with
the ``@semantic_check`` decorator in a module under ``stacksalt/model/checks/`` (every
module there is imported before the checks run)::

    from stacksalt.model.semantic import semantic_check

    @semantic_check
    def as_numbers_in_range(deployment):
        for node in deployment.nodes.values():
            asn = node.parameters.get("calico", {}).get("asn")
            if asn is not None and not 1 <= asn <= 4294967295:
                yield deployment.error(
                    node, "parameters:calico:asn", "as-number", f"{asn} is out of range"
                )

``deployment.error(node, key, kind, message)`` (or ``locate(node, key)``) finds the
class or node file that last set the key for that node. The same error from many nodes
is reported once, listing the nodes.
"""

from __future__ import annotations

import importlib
import pkgutil
import traceback
from collections.abc import Callable, Iterable

from stacksalt.model.errors import CHECK_CRASHED, ModelError
from stacksalt.model.render import RenderedDeployment, RenderedNode

SemanticCheck = Callable[[RenderedDeployment], Iterable[ModelError]]

SEMANTIC_CHECKS: list[SemanticCheck] = []


def semantic_check(func: SemanticCheck) -> SemanticCheck:
    """Register ``func`` as a semantic check (a decorator; returns ``func`` unchanged)."""
    if func not in SEMANTIC_CHECKS:
        SEMANTIC_CHECKS.append(func)
    return func


def locate(node: RenderedNode, key_path: str) -> str | None:
    """The class or node file (relative to the inventory base) that last set ``key_path``.

    ``key_path`` is a colon path, ``parameters:etcd:server:bind:host`` (a bare
    ``etcd:server:bind:host`` means parameters too). The node's files are walked in
    reclass merge order over their raw YAML; a list item is blamed on the file that
    contributed it; a key that no file sets literally (it came in through a reference)
    is blamed on the file that set its nearest parent. None if no file sets even the
    first key (e.g. reclass's automatic ``_reclass_`` parameters).
    """
    return node.locate(key_path)


def load_checks() -> None:
    """Import every module of ``stacksalt.model.checks`` (they register themselves)."""
    from stacksalt.model import checks

    for module in pkgutil.iter_modules(checks.__path__, checks.__name__ + "."):
        importlib.import_module(module.name)


def run_semantic_checks(
    deployment: RenderedDeployment, check_list: Iterable[SemanticCheck] | None = None
) -> list[ModelError]:
    """Run the registered checks; a check that crashes is reported, not raised."""
    if check_list is None:
        load_checks()
        check_list = list(SEMANTIC_CHECKS)
    errors: list[ModelError] = []
    for check in check_list:
        name = f"{check.__module__}.{getattr(check, '__qualname__', check)}"
        try:
            errors.extend(check(deployment))
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            errors.append(
                ModelError(
                    CHECK_CRASHED,
                    None,
                    None,
                    f"semantic check {name} crashed: {type(exc).__name__}: {exc} "
                    f"({where.filename}:{where.lineno})",
                )
            )
    return errors
