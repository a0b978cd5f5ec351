"""The cluster's objects as the salt master's minions build them, on this host.

The builder is the Salt execution module ``formulas/_modules/stacksalt_objects.py``
(pure functions, pillar in, objects and apply plan out). This module loads that very
file from the checkout (or another root), reads the formulas' defaults it names, and
gives it a node's pillar as the master would: the reclass parameters of the node and,
under ``secrets``, the deployment's secrets. `stacksalt model check`, `stacksalt images
demo` and the tests read the objects from here; none of them reads the role schema
itself.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from stacksalt import paths, saltmodules
from stacksalt.deployment import Deployment

MODULE = Path("_modules") / "stacksalt_objects.py"
SECRETS_PILLAR = Path("_pillar") / "stacksalt_secrets.py"


def builder(root: Path | None = None) -> ModuleType:
    """The builder module of ``root`` (default: this checkout), loaded once per file."""
    return saltmodules.load(MODULE, root)


def defaults(root: Path | None = None) -> dict[str, Any]:
    """The formulas' defaults files the builder merges the pillar over."""
    return _defaults(paths.formulas_dir(root).resolve())


@cache
def _defaults(formulas: Path) -> dict[str, Any]:
    return {key: yaml.safe_load((formulas / rel).read_text())
            for key, rel in saltmodules.load(MODULE, formulas.parent).DEFAULTS.items()}


def pillar(dep: Deployment, node: str, secrets: dict[str, str] | None = None) -> dict[str, Any]:
    """What the salt master gives ``node``: its reclass parameters and, of ``secrets``,
    those its model references (the master's secrets ext_pillar, same rule)."""
    out = dict(dep.parameters(node))
    if secrets is not None:
        wanted = saltmodules.load(SECRETS_PILLAR).referenced(out)
        out["secrets"] = {k: v for k, v in secrets.items() if k in wanted}
    return out


def build(dep: Deployment, node: str, secrets: dict[str, str] | None = None,
          root: Path | None = None) -> dict[str, Any]:
    """The builder's output for ``node``: {dir, files, dirs, plan, apply, applier,
    components}; the builder's ObjectError (message names the pillar key) on bad input."""
    return builder(root).build(pillar(dep, node, secrets), defaults(root))


def control_masters(dep: Deployment) -> list[str]:
    """The nodes that render the OpenStack roles (kubernetes:control:enabled)."""
    return [n for n in dep.node_names
            if dep.parameters(n).get("kubernetes", {}).get("control", {}).get("enabled")]


def error_type(root: Path | None = None) -> type[Exception]:
    return builder(root).ObjectError
