"""Where things live: the deployment repository a command works on, and the stacksalt
checkout (the product) whose formulas, classes and images it uses.

A *deployment repository* is a folder with a ``stacksalt.yml`` at its root (see
:mod:`stacksalt.repo`): its ``reclass/`` (cluster classes and nodes; ``classes/service`` and
``classes/system`` are symlinks into the product), its ``pillar/`` (encrypted secrets) and
``stacksalt/``, the product pinned to one commit (a git submodule; in the examples shipped
under ``deployments/``, a symlink to the enclosing checkout).

The CLI finds the repository from the current directory (or ``-C DIR``) and activates it;
everything below then works on that one. Library callers (tests) that name a deployment
without activating one get the product's shipped example of that name.
"""

from __future__ import annotations

import os
from pathlib import Path

from stacksalt.errors import StacksaltError

CONFIG = "stacksalt.yml"
PRODUCT_LINK = "stacksalt"
EXAMPLES = "deployments"

_active: Path | None = None


def package_checkout() -> Path:
    """The stacksalt checkout this package is installed from (or STACKSALT_ROOT)."""
    env = os.environ.get("STACKSALT_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "setup.cfg").is_file() and (parent / "formulas").is_dir():
            return parent
    raise StacksaltError(
        f"{here}: the stacksalt package is not installed from a stacksalt checkout "
        "(no setup.cfg next to formulas/); install it with `pip install -e` from one"
    )


def find_repository(start: Path) -> Path:
    """The deployment repository holding ``start`` (the nearest ``stacksalt.yml`` above)."""
    start = start.resolve()
    for parent in (start, *start.parents):
        if (parent / CONFIG).is_file():
            return parent
    raise StacksaltError(
        f"{start}: not inside a stacksalt deployment repository (no {CONFIG} here or "
        "above); cd into one, pass -C DIR, or make one with `stacksalt init NAME`"
    )


def activate(root: Path | None) -> None:
    """Make ``root`` the deployment repository every path below refers to (None: none)."""
    global _active
    _active = Path(root).resolve() if root is not None else None


def active() -> Path | None:
    return _active


def example(name: str) -> Path:
    """The product's shipped example deployment repository ``deployments/<name>``."""
    return package_checkout() / EXAMPLES / name


def examples() -> list[str]:
    base = package_checkout() / EXAMPLES
    return sorted(p.name for p in base.iterdir() if (p / CONFIG).is_file())


def deployment_root(name: str | Path | None = None) -> Path:
    """The deployment repository of ``name``: the active one, else the shipped example
    (a Path is a deployment repository's root already, e.g. a test's copy)."""
    if isinstance(name, Path):
        return name
    if _active is not None:
        return _active
    if name is None:
        raise StacksaltError(
            "no deployment repository is active; run stacksalt inside one or pass -C DIR"
        )
    return example(name)


def product_root(name: str | Path | None = None) -> Path:
    """The stacksalt checkout a deployment uses: its pinned ``stacksalt/`` (resolved)."""
    if _active is None and name is None:
        return package_checkout()
    link = deployment_root(name) / PRODUCT_LINK
    if not (link / "formulas").is_dir():
        raise StacksaltError(
            f"{link}: the deployment's stacksalt checkout is missing "
            "(run `git submodule update --init` in the deployment repository)"
        )
    return link.resolve()


# The product's folders.
def repo_root() -> Path:
    """The product checkout in use (kept for callers that want formulas, images, setup.cfg)."""
    return product_root()


def product_of(root: Path) -> Path:
    """The product tree of ``root``: a deployment repository's ``stacksalt/``, or ``root``
    itself when it is a stacksalt checkout (or an export of one)."""
    return root / PRODUCT_LINK if (root / CONFIG).is_file() else root


def formulas_dir(root: Path | None = None) -> Path:
    return (product_of(root) if root else product_root()) / "formulas"


def images_dir(root: Path | None = None) -> Path:
    return (product_of(root) if root else product_root()) / "images"


# The deployment repository's folders.
def reclass_dir(name: str | Path | None = None) -> Path:
    return deployment_root(name) / "reclass"


def pillar_dir(name: str | Path | None = None) -> Path:
    return deployment_root(name) / "pillar"


STATE_DIR_ENV = "STACKSALT_STATE_DIR"


def state_dir(name: str | Path | None = None) -> Path:
    """Per-machine generated state (throwaway gpg keyring, ssh keys, lab bookkeeping);
    git-ignored. ``$STACKSALT_STATE_DIR`` names it for a checkout that has none of its own:
    a CI build's clone of a lab deployment uses the lab's, on the same machine."""
    env = os.environ.get(STATE_DIR_ENV)
    if env:
        return Path(env)
    return deployment_root(name) / ".stacksalt"
