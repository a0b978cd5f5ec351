"""The build context of one image (images/README.md): its Dockerfile and commands, the
shared entrypoint, the formulas of its pillar subtrees and the formulas they require
(formulas/<name>/requires.yaml), its pillar, the host CA bundle."""

from __future__ import annotations

from pathlib import Path

import yaml

from stacksalt import paths
from stacksalt.images.context import CONTEXT_CA_BUNDLE, Context
from stacksalt.images.definitions import ImageDef
from stacksalt.images.errors import ImagesError

ENTRYPOINT = "entrypoint/stacksalt-entrypoint"
PILLAR_TOP = "base:\n  '*':\n    - image\n"
# formulas/<name>/requires.yaml: the other formulas whose files <name>'s states read
REQUIRES = "requires.yaml"


def source_dir(image: ImageDef, root: Path | None = None) -> Path:
    return paths.images_dir(root) / image.source


def pillar_sls(image: ImageDef) -> str:
    """pillar/image.sls: exactly the image's subtrees, in a stable order."""
    header = (
        f"# The pillar of image {image.name}: the subtrees {', '.join(image.pillar_keys)} of\n"
        f"# node {image.node}'s pillar (static values only). Made by stacksalt images build.\n"
    )
    return header + yaml.safe_dump(image.pillar, sort_keys=True, default_flow_style=False)


def _requires(fdir: Path) -> list[str]:
    path = fdir / REQUIRES
    if not path.is_file():
        return []
    try:
        names = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ImagesError(f"{path}: not YAML: {exc}") from exc
    if names is None:
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ImagesError(f"{path}: must be a list of formula names (folders of formulas/)")
    return names


def context_formulas(image: ImageDef, root: Path | None = None) -> list[str]:
    """The formulas of the image's context, sorted: those of its pillar subtrees and,
    transitively, every formula their requires.yaml names."""
    base = paths.formulas_dir(root)
    for formula in image.formulas:
        if not (base / formula).is_dir():
            raise ImagesError(
                f"{base / formula} is missing: image {image.name} bakes in pillar "
                f"{', '.join(k for k in image.pillar_keys if k.split(':')[0] == formula)} "
                f"(model key parameters:{image.key}:pillar, set in {image.file}) and so "
                f"needs the formula {formula}"
            )
    seen: set[str] = set()
    todo = list(image.formulas)
    while todo:
        formula = todo.pop()
        if formula in seen:
            continue
        seen.add(formula)
        for needed in _requires(base / formula):
            if not (base / needed).is_dir():
                raise ImagesError(
                    f"{base / needed} is missing: {base / formula / REQUIRES} names it, "
                    f"and image {image.name} bakes the formula {formula}"
                )
            todo.append(needed)
    return sorted(seen)


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
    for formula in context_formulas(image, root):
        ctx.add_tree(f"formulas/{formula}", paths.formulas_dir(root) / formula)
    ctx.add_bytes("pillar/top.sls", PILLAR_TOP.encode())
    ctx.add_bytes("pillar/image.sls", pillar_sls(image).encode())
    ctx.add_host_ca()
    return ctx
