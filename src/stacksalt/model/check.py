"""``stacksalt model check``: every error of a deployment's model, at once.

Three passes, each reporting everything it finds:

1. static (``classfiles``): YAML syntax, file shape, every ``classes:`` entry (missing
   classes, ``${...}`` in class names, cycles), reference syntax;
2. rendering (``render``): every node whose files passed the static pass is rendered
   with one reclass Core; unresolved references, type conflicts, recursion, ... are
   pinned to the file and key;
3. semantic (``semantic``): registered checks over the cleanly rendered nodes.

An error that many nodes hit is reported once, listing the nodes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from stacksalt import paths
from stacksalt.model.classfiles import (
    cycle_errors,
    engine_settings,
    file_errors,
    repaired_data,
)
from stacksalt.model.errors import ModelError, merge_errors
from stacksalt.model.index import ModelFile, ModelIndex
from stacksalt.model.render import RenderedDeployment, render_nodes
from stacksalt.model.report import print_result
from stacksalt.model.semantic import run_semantic_checks


class DeploymentNotFound(ValueError):
    """The deployment has no nodes under ``nodes/<deployment>/``."""


@dataclass
class CheckResult:
    """Everything ``check`` found, with the numbers for the summary."""

    inventory: Path
    deployment: str | None
    errors: list[ModelError]
    nodes: int  # nodes of the deployment
    rendered: int  # nodes that rendered cleanly
    degraded: list[str]  # nodes rendered without the broken parts of their files
    classes: int  # class files checked
    seconds: float
    rendered_deployment: RenderedDeployment | None = field(default=None, repr=False)


def _files_to_check(
    index: ModelIndex, deployment: str | None, chains: dict[str, list[ModelFile]]
) -> list[ModelFile]:
    """Every file the deployment uses; with no deployment, every file of the inventory.

    A deployment's own cluster classes (``classes/cluster/<deployment>/``) are checked
    even when no node includes them.
    """
    files: dict[str, ModelFile] = {}
    for chain in chains.values():
        for mf in chain:
            files.setdefault(mf.rel, mf)
    if deployment is None:
        extra = [*index.classes.values(), *index.nodes.values()]
    else:
        own = f"{index.relative(index.classes_dir)}/cluster/{deployment}/"
        extra = [mf for mf in index.classes.values() if mf.rel.startswith(own)]
    for mf in extra:
        files.setdefault(mf.rel, mf)
    return list(files.values())


def run(inventory: Path, deployment: str | None = None, semantic: bool = True) -> CheckResult:
    """Check the deployment's model (every node if ``deployment`` is None)."""
    started = time.perf_counter()
    index = ModelIndex(Path(inventory))
    if not index.nodes_dir.is_dir():
        raise DeploymentNotFound(f"{index.nodes_dir} does not exist")
    nodes = index.nodes_of(deployment)
    if deployment is not None and not nodes:
        known = ", ".join(index.deployments) or "none"
        raise DeploymentNotFound(
            f"no nodes under {index.nodes_dir}/{deployment}/ (deployments: {known})"
        )
    settings = engine_settings()

    # 1. static pass
    chains = {n.name: index.chain(n) for n in nodes}
    chain_files = {name: chain.files for name, chain in chains.items()}
    chain_rels = {name: [mf.rel for mf in files] for name, files in chain_files.items()}
    files = _files_to_check(index, deployment, chain_files)
    static: list[ModelError] = list(index.errors)
    for mf in files:
        static.extend(file_errors(index, mf, settings))
    for chain in chains.values():
        static.extend(cycle_errors(index, chain.cycles))
    users: dict[str, list[str]] = {}
    for name, rels in chain_rels.items():
        for rel in rels:
            users.setdefault(rel, []).append(name)
    for error in static:
        error.nodes = list(users.get(error.file or "", error.nodes))
    broken = {e.file for e in static}

    # 2. rendering pass. Nodes that use a broken file are rendered too, with the
    # broken parts taken out, so that their other errors show up in the same run;
    # they are "degraded" and left out of the semantic checks.
    degraded = {n.name for n in nodes if broken.intersection(chain_rels[n.name])}
    drop: dict[str, set[str]] = {}
    for chain in chains.values():
        for mf, names in chain.cycles:
            drop.setdefault(mf.rel, set()).add(names[-1])
    repairs = {
        rel: repaired_data(index, index.files[rel], settings, drop.get(rel, ()))
        for rel in broken
        if rel in index.files
    }
    to_render = [(n, chain_rels[n.name]) for n in nodes]
    if index.errors:  # duplicate names: reclass cannot load the inventory at all
        rendered, render_errors = {}, []
    else:
        rendered, render_errors = render_nodes(index, to_render, settings, repairs)
    clean = {name: node for name, node in rendered.items() if name not in degraded}
    result_deployment = RenderedDeployment(index.base, deployment, clean, index)

    # 3. semantic checks, over the clean nodes only
    semantic_errors = run_semantic_checks(result_deployment) if semantic and clean else []

    return CheckResult(
        inventory=Path(inventory),
        deployment=deployment,
        errors=merge_errors([*static, *render_errors, *semantic_errors]),
        nodes=len(nodes),
        rendered=len(clean),
        degraded=sorted(degraded),
        classes=sum(1 for mf in files if mf.kind == "class"),
        seconds=time.perf_counter() - started,
        rendered_deployment=result_deployment,
    )


def check(inventory: Path, deployment: str | None = None) -> list[ModelError]:
    """Every error of the deployment's model (of every node if ``deployment`` is None)."""
    return run(inventory, deployment).errors


def main(deployment: str | None = None, inventory: Path | None = None) -> int:
    """The CLI entry point: print every error; 0 if the model is clean, 1 if not, 2 if
    the deployment does not exist."""
    inventory = Path(inventory) if inventory is not None else paths.reclass_dir(deployment)
    try:
        result = run(inventory, deployment)
    except DeploymentNotFound as exc:
        print(f"stacksalt model check: {exc}", file=sys.stderr)
        return 2
    print_result(result)
    return 1 if result.errors else 0
