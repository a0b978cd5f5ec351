"""Where things live in a stacksalt checkout."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout this package runs from (or STACKSALT_ROOT)."""
    env = os.environ.get("STACKSALT_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "setup.cfg").is_file() and (parent / "reclass").is_dir():
            return parent
    cwd = Path.cwd().resolve()
    for parent in (cwd, *cwd.parents):
        if (parent / "setup.cfg").is_file() and (parent / "reclass").is_dir():
            return parent
    raise RuntimeError(
        "cannot find the stacksalt checkout (no setup.cfg next to reclass/); "
        "run from inside it or set STACKSALT_ROOT"
    )


def reclass_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "reclass"


def formulas_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "formulas"


def pillar_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "pillar"


def images_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "images"


def state_dir(root: Path | None = None) -> Path:
    """Per-machine generated state (throwaway gpg keyring, lab bookkeeping); git-ignored."""
    return (root or repo_root()) / ".stacksalt"
