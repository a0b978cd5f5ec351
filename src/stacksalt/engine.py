"""The reclass engine: the one place that knows which engine renders the model and how.

stacksalt uses PyPI ``kapicorp-reclass`` (import name ``reclass``). Salt's own
``reclass`` ext_pillar and master_tops adapters load the same package on the master;
``ENGINE_OPTIONS`` below is what both this module and the master's configuration pass
to it (the salt formula renders them from the model, see
``reclass/classes/service/salt/master/reclass.yml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import reclass.core
import reclass.errors
import reclass.settings

import reclass

ENGINE = "kapicorp-reclass"

# Options beyond the inventory location. Kept equal to the salt master's
# ext_pillar/master_tops configuration in the model (a fast test checks this).
ENGINE_OPTIONS: dict[str, Any] = {
    "storage_type": "yaml_fs",
    "nodes_uri": "nodes",
    "classes_uri": "classes",
    "compose_node_name": False,
    "ignore_class_notfound": False,
    "group_errors": True,
}

ReclassError = reclass.errors.ReclassException


def _core(inventory_base_uri: Path, **overrides: Any) -> reclass.core.Core:
    opts = {**ENGINE_OPTIONS, **overrides}
    base = str(Path(inventory_base_uri).resolve())
    nodes_uri = str(Path(base) / opts.pop("nodes_uri"))
    classes_uri = str(Path(base) / opts.pop("classes_uri"))
    storage_type = opts.pop("storage_type")
    settings = reclass.settings.Settings({**opts, "inventory_base_uri": base})
    storage = reclass.get_storage(
        storage_type, nodes_uri, classes_uri, settings.compose_node_name
    )
    return reclass.core.Core(storage, None, settings)


def render_node(inventory_base_uri: Path, node: str, **overrides: Any) -> dict[str, Any]:
    """Render one node: {'classes', 'applications', 'parameters', 'environment', ...}."""
    return _core(inventory_base_uri, **overrides).nodeinfo(node)


def node_names(inventory_base_uri: Path) -> list[str]:
    """Every node the inventory defines (without rendering them)."""
    core = _core(inventory_base_uri)
    return sorted(core._storage.enumerate_nodes())


def render_inventory(inventory_base_uri: Path) -> dict[str, dict[str, Any]]:
    """Render every node: {node: nodeinfo}."""
    return _core(inventory_base_uri).inventory()["nodes"]
