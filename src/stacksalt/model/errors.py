"""The error type every model check reports, and how errors are merged and sorted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# Kinds of errors. Semantic checks may add their own (short, kebab-case).
YAML_SYNTAX = "yaml-syntax"
INVALID_STRUCTURE = "invalid-structure"
MISSING_CLASS = "missing-class"
INVALID_CLASS_NAME = "invalid-class-name"
CLASS_CYCLE = "class-cycle"
DUPLICATE_NAME = "duplicate-name"
REFERENCE_SYNTAX = "reference-syntax"
UNRESOLVED_REFERENCE = "unresolved-reference"
TYPE_CONFLICT = "type-conflict"
INFINITE_RECURSION = "infinite-recursion"
BAD_REFERENCE = "bad-reference"
CHANGED_CONSTANT = "changed-constant"
INVENTORY_QUERY = "inventory-query"
ENGINE_ERROR = "engine-error"
CHECK_CRASHED = "check-crashed"


@dataclass
class ModelError:
    """One problem in the model, pinned to the file (and key) to fix.

    ``file`` is relative to the inventory base (``classes/...`` or ``nodes/...``); it
    is None only when no file can be blamed (an engine failure). ``key`` is a colon
    path such as ``parameters:etcd:server:bind:host`` (``classes`` for a bad entry in
    a ``classes:`` list) or None for whole-file problems. ``nodes`` lists the nodes the
    error affects (empty for a file no node of the deployment uses). ``line`` is the
    1-based line in ``file`` when it is known.
    """

    kind: str
    file: str | None
    key: str | None
    message: str
    nodes: list[str] = field(default_factory=list)
    line: int | None = None

    def __str__(self) -> str:
        """``file[:line]: key: message (nodes: a, b)``, the file relative to the inventory."""
        where = (self.file or "(inventory)") + (f":{self.line}" if self.line else "")
        key = f"{self.key}: " if self.key else ""
        nodes = f" (nodes: {', '.join(self.nodes)})" if self.nodes else ""
        return f"{where}: {key}{self.message}{nodes}"

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """What makes two reports the same error (the nodes aside)."""
        return (self.kind, self.file or "", self.key or "", self.message)

    def sort_key(self) -> tuple:
        return (self.file or "~", self.line or 0, self.key or "", self.kind, self.message)


def merge_errors(errors: Iterable[ModelError]) -> list[ModelError]:
    """Fold errors that are the same but for the node into one, listing every node.

    The result is sorted by file, line and key; node lists are sorted and unique.
    """
    merged: dict[tuple[str, str, str, str], ModelError] = {}
    for error in errors:
        seen = merged.get(error.identity)
        if seen is None:
            merged[error.identity] = ModelError(
                error.kind, error.file, error.key, error.message, list(error.nodes), error.line
            )
        else:
            seen.nodes.extend(error.nodes)
            if seen.line is None:
                seen.line = error.line
    result = list(merged.values())
    for error in result:
        error.nodes = sorted(set(error.nodes))
    return sorted(result, key=ModelError.sort_key)
