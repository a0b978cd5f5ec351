"""Temporary deployment repositories for tests: a copy of a shipped example that a test
may edit, with the product (formulas, images, classes) linked or copied beside it."""

from __future__ import annotations

import shutil
from pathlib import Path

from stacksalt import paths

PRODUCT_PARTS = ("formulas", "images", "reclass", "setup.cfg", "src")


def copy_deployment(name: str, dest: Path, copy_product: tuple[str, ...] = ()) -> Path:
    """``dest`` as a deployment repository: the example's ``stacksalt.yml``, ``reclass/``
    (its service/system symlinks followed, so a test may edit those classes too) and
    ``pillar/`` (with the machine's git-ignored secrets); ``stacksalt/`` links to the
    product, or is a copy of the product's parts named in ``copy_product`` (the others
    linked) for a test that edits formulas."""
    src = paths.example(name)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / paths.CONFIG, dest / paths.CONFIG)
    shutil.copytree(src / "reclass", dest / "reclass")
    shutil.copytree(src / "pillar", dest / "pillar")
    product = paths.package_checkout()
    if not copy_product:
        (dest / paths.PRODUCT_LINK).symlink_to(product)
        return dest
    link = dest / paths.PRODUCT_LINK
    link.mkdir()
    for part in PRODUCT_PARTS:
        if part in copy_product:
            if (product / part).is_dir():
                shutil.copytree(product / part, link / part)
            else:
                shutil.copy(product / part, link / part)
        else:
            (link / part).symlink_to(product / part)
    return dest


def combined_inventory(dest: Path) -> Path:
    """One inventory holding every shipped example (``dest/reclass``: the product's service
    and system classes, each example's cluster classes and nodes), with the product's
    ``formulas/`` and ``images/`` linked beside it: a model copy tests edit by class path
    (``cluster/lab/...``, ``service/...``) and check deployment by deployment."""
    product = paths.package_checkout()
    inv = dest / "reclass"
    shutil.copytree(product / "reclass" / "classes", inv / "classes")
    for name in paths.examples():
        src = paths.reclass_dir(name)
        shutil.copytree(src / "classes" / "cluster" / name, inv / "classes" / "cluster" / name)
        shutil.copytree(src / "nodes" / name, inv / "nodes" / name)
    for part in ("formulas", "images"):
        (dest / part).symlink_to(product / part)
    return inv
