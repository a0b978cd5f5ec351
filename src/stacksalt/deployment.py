"""A deployment: the nodes under reclass/nodes/<deployment>/, rendered once.

One :class:`Deployment` is made per command and passed down: it carries the repository
root, the rendered parameters of every node, where each value was set (the file/key
locator) and typed accessors for what several modules read (the image registry). A
command that checks the model first (``lab up``, ``images build``) makes it from the
check's render with :meth:`Deployment.check`, so the model is rendered once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stacksalt import engine, paths
from stacksalt.errors import StacksaltError
from stacksalt.keypath import MISSING, lookup
from stacksalt.registry import Registry
from stacksalt.registry import read as read_registry

if TYPE_CHECKING:
    from stacksalt.model.check import CheckResult
    from stacksalt.model.errors import ModelError
    from stacksalt.model.index import ModelIndex
    from stacksalt.model.render import RenderedNode


@dataclass
class Deployment:
    name: str
    inventory: Path
    # the nodes a model check rendered (with their class chains); None: render on demand
    checked: dict[str, RenderedNode] | None = field(default=None, repr=False)

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

    @classmethod
    def from_check(cls, result: CheckResult) -> Deployment:
        """The deployment a model check rendered (its clean nodes)."""
        assert result.deployment is not None and result.rendered_deployment is not None
        return cls(result.deployment, Path(result.inventory),
                   dict(result.rendered_deployment.nodes))

    @classmethod
    def check(cls, name: str, inventory: Path | None = None
              ) -> tuple[Deployment, list[ModelError]]:
        """Check the model and keep its render: (deployment, every model error). Use the
        deployment only when there is no error."""
        from stacksalt.model import check

        dep = cls.load(name, inventory)
        result = check.run(dep.inventory, name)
        return cls.from_check(result), result.errors

    @property
    def root(self) -> Path:
        """The deployment repository's root (the inventory is its ``reclass/``)."""
        return self.inventory.parent

    @cached_property
    def node_names(self) -> list[str]:
        if self.checked is not None:
            return sorted(self.checked)
        folder = self.inventory / "nodes" / self.name
        return sorted(p.stem for p in folder.rglob("*.yml"))

    @cached_property
    def rendered(self) -> dict[str, dict[str, Any]]:
        """{node: nodeinfo} for this deployment's nodes only (one Core: classes are loaded
        once), so that another deployment's errors never stop this one."""
        if self.checked is not None:
            return {n: node.info for n, node in self.checked.items()}
        core = engine.core(self.inventory)
        return {n: core.nodeinfo(n) for n in self.node_names}

    def parameters(self, node: str) -> dict[str, Any]:
        return self.rendered[node]["parameters"]

    # -- where a value was set ---------------------------------------------------------

    @cached_property
    def _index(self) -> ModelIndex:
        from stacksalt.model.index import ModelIndex

        return ModelIndex(self.inventory)

    def locate(self, node: str, key: str) -> str | None:
        """The file (relative to the inventory) that last set ``key`` for ``node``."""
        if self.checked is not None and node in self.checked:
            return self.checked[node].locate(key)
        from stacksalt.model.locate import locate_in_chain

        mf = self._index.nodes.get(node)
        if mf is None:
            return None
        chain = [f.rel for f in self._index.chain(mf).files]
        return locate_in_chain(self._index, chain, key)

    def file_of(self, node: str) -> str:
        """The node's own file, relative to the inventory."""
        if self.checked is not None and node in self.checked:
            return self.checked[node].file
        mf = self._index.nodes.get(node)  # (node files may sit in subfolders)
        return mf.rel if mf is not None else f"nodes/{self.name}/{node}.yml"

    # -- values --------------------------------------------------------------------------

    def get(self, node: str, key: str, default: Any = MISSING, *, needed_by: str = "") -> Any:
        """The value at colon path ``key`` of the node's parameters. Missing, it is
        ``default`` when one is given, else a one-line error naming the file and key."""
        value = lookup(self.parameters(node), key)
        if value is not MISSING:
            return value
        if default is not MISSING:
            return default
        where = self.locate(node, key) or self.file_of(node)
        need = f", which {needed_by} needs" if needed_by else ""
        raise StacksaltError(f"{where}: parameters:{key}: missing (node {node}){need}")

    def first(self, key: str, default: Any = MISSING) -> Any:
        """The value at ``key`` of the first node (by name) that has it."""
        for node in self.node_names:
            value = lookup(self.parameters(node), key)
            if value is not MISSING:
                return value
        if default is not MISSING:
            return default
        raise StacksaltError(f"no node of deployment {self.name} has parameters:{key}")

    def nodes_with(self, key: str) -> list[str]:
        """The nodes whose ``key`` is true (``salt:master:enabled``, ...)."""
        return [n for n in self.node_names if lookup(self.parameters(n), key, None) is True]

    # -- typed accessors -------------------------------------------------------------------

    @cached_property
    def registry(self) -> Registry | None:
        """The image registry (None: no node builds images or runs a registry)."""
        return read_registry(self.parameters, self.node_names, self.locate)
