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


_STORAGE_OPTIONS = ("storage_type", "nodes_uri", "classes_uri")


# The ext_pillar that gives each minion only the secrets its model references
# (formulas/_pillar/stacksalt_secrets.py), after reclass. The salt formula renders the same
# list for the real master from the model (a fast test checks they agree).
SECRETS_EXT_PILLAR = "stacksalt_secrets"
# ... and the one that expands the CA minion's per-node signing policy templates.
POLICIES_EXT_PILLAR = "stacksalt_signing_policies"


def pillar_options(formulas: str | Path, pillar: str | Path,
                   inventory: str | Path) -> dict[str, Any]:
    """The pillar half of a master (or `salt-call --local`) configuration for a checkout
    whose formulas, pillar and reclass folders are at these paths."""
    return {
        "pillar_roots": {"base": [str(pillar)]},
        "pillar_dirs": [f"{formulas}/_pillar"],
        "ext_pillar": [
            {"reclass": {"inventory_base_uri": str(inventory)}},
            {SECRETS_EXT_PILLAR: {"secrets_dir": f"{pillar}/secrets"}},
            {POLICIES_EXT_PILLAR: {}},
        ],
    }


def settings(inventory_base_uri: Path | None = None, **overrides: Any) -> reclass.settings.Settings:
    """reclass Settings for ENGINE_OPTIONS (plus overrides)."""
    opts = {k: v for k, v in {**ENGINE_OPTIONS, **overrides}.items()
            if k not in _STORAGE_OPTIONS}
    if inventory_base_uri is not None:
        opts["inventory_base_uri"] = str(Path(inventory_base_uri).resolve())
    return reclass.settings.Settings(opts)


def core(inventory_base_uri: Path, **overrides: Any) -> reclass.core.Core:
    """A reclass Core over the inventory; one Core caches classes across nodes."""
    opts = {**ENGINE_OPTIONS, **overrides}
    base = Path(inventory_base_uri).resolve()
    sett = settings(base, **overrides)
    storage = reclass.get_storage(
        opts["storage_type"], str(base / opts["nodes_uri"]), str(base / opts["classes_uri"]),
        sett.compose_node_name,
    )
    return reclass.core.Core(storage, None, sett)


def render_node(inventory_base_uri: Path, node: str, **overrides: Any) -> dict[str, Any]:
    """Render one node: {'classes', 'applications', 'parameters', 'environment', ...}."""
    return core(inventory_base_uri, **overrides).nodeinfo(node)
