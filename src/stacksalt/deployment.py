"""A deployment: the nodes under reclass/nodes/<deployment>/ and their rendered parameters."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from stacksalt import engine, paths
from stacksalt.errors import StacksaltError


@dataclass
class Deployment:
    name: str
    inventory: Path

    @classmethod
    def load(cls, name: str, inventory: Path | None = None) -> Deployment:
        inv = Path(inventory or paths.reclass_dir(name))
        if not (inv / "nodes" / name).is_dir():
            known = sorted(p.name for p in (inv / "nodes").iterdir() if p.is_dir()) \
                if (inv / "nodes").is_dir() else []
            raise StacksaltError(
                f"no deployment {name!r}: {inv / 'nodes' / name} does not exist "
                f"(deployments: {', '.join(known) or 'none'})"
            )
        return cls(name, inv)

    @cached_property
    def node_names(self) -> list[str]:
        folder = self.inventory / "nodes" / self.name
        return sorted(p.stem for p in folder.rglob("*.yml"))

    @cached_property
    def rendered(self) -> dict[str, dict[str, Any]]:
        """{node: nodeinfo} for this deployment's nodes only (one Core: classes are loaded
        once), so that another deployment's errors never stop this one."""
        core = engine.core(self.inventory)
        return {n: core.nodeinfo(n) for n in self.node_names}

    def parameters(self, node: str) -> dict[str, Any]:
        return self.rendered[node]["parameters"]
