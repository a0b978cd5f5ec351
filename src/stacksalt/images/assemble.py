"""The build context of one image (images/README.md): its Dockerfile and commands, the
shared entrypoint, the formulas of its pillar subtrees, its pillar, the host CA bundle."""

from __future__ import annotations

from pathlib import Path

import yaml

from stacksalt import paths
from stacksalt.images.context import CONTEXT_CA_BUNDLE, Context
from stacksalt.images.definitions import ImageDef
from stacksalt.images.errors import ImagesError

ENTRYPOINT = "entrypoint/stacksalt-entrypoint"
PILLAR_TOP = "base:\n  '*':\n    - image\n"


def source_dir(image: ImageDef, root: Path | None = None) -> Path:
    return paths.images_dir(root) / image.source


def pillar_sls(image: ImageDef) -> str:
    """pillar/image.sls: exactly the image's subtrees, in a stable order."""
    header = (
        f"# The pillar of image {image.name}: the subtrees {', '.join(image.pillar_keys)} of\n"
        f"# node {image.node}'s pillar (static values only). Made by stacksalt images build.\n"
    )
    return header + yaml.safe_dump(image.pillar, sort_keys=True, default_flow_style=False)


def image_context(image: ImageDef, root: Path | None = None) -> Context:
    src = source_dir(image, root)
    if not (src / "Dockerfile").is_file():
        raise ImagesError(
            f"{src}/Dockerfile is missing: image {image.name} (model key "
            f"parameters:{image.key}:source = {image.source}, set in {image.file}) has no "
            f"source; add images/{image.source}/ or fix the key"
        )
    ctx = Context()
    ctx.add_tree("", src)
    ctx.files.pop(CONTEXT_CA_BUNDLE, None)
    ctx.add_file(ENTRYPOINT, paths.images_dir(root) / ENTRYPOINT)
    for formula in image.formulas:
        fdir = paths.formulas_dir(root) / formula
        if not fdir.is_dir():
            raise ImagesError(
                f"{fdir} is missing: image {image.name} bakes in pillar "
                f"{', '.join(k for k in image.pillar_keys if k.split(':')[0] == formula)} "
                f"(model key parameters:{image.key}:pillar, set in {image.file}) and so "
                f"needs the formula {formula}"
            )
        ctx.add_tree(f"formulas/{formula}", fdir)
    ctx.add_bytes("pillar/top.sls", PILLAR_TOP.encode())
    ctx.add_bytes("pillar/image.sls", pillar_sls(image).encode())
    ctx.add_host_ca()
    return ctx
