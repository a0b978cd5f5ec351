"""The project's custom Salt modules (formulas/_modules, _states, _pillar), loaded by path.

The package runs the very files the salt master syncs to its minions (the objects builder,
the secrets ext_pillar's reference rule), so each rule is written once.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

from stacksalt import paths


def load(relative: str | Path, root: Path | None = None) -> ModuleType:
    """``formulas/<relative>`` of ``root`` (default: this checkout), loaded once per file."""
    return _load((paths.formulas_dir(root) / relative).resolve())


@cache
def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{path.stem}_{abs(hash(path))}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"{path}: the custom Salt module is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
