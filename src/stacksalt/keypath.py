"""The one reader of a colon path (``docker:registry:ssl:ca_server``) in a tree of the model.

Rendered parameters, a node's pillar and a class file's raw data are all nested mappings
(and lists); every module that needs a value by its key path reads it here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MISSING: Any = object()  # what :func:`lookup` returns for a path that is not there


def parts(path: str | Sequence[str]) -> list[str]:
    """``"a:b:c"`` (or ``("a", "b", "c")``) as its parts; empty parts are dropped."""
    items = path.split(":") if isinstance(path, str) else [str(p) for p in path]
    return [p for p in items if p != ""]


def lookup(tree: Any, path: str | Sequence[str], default: Any = MISSING, *,
           prefixes: str = "") -> Any:
    """The value at ``path`` of ``tree``, or ``default`` (:data:`MISSING` unless given).

    A list is entered by a numeric part (``ports:0``). ``prefixes`` are characters a
    mapping's keys may start with and still match (``"~="``: reclass's override and
    constant markers, in a class file's raw data)."""
    value = tree
    for part in parts(path):
        if isinstance(value, dict):
            if part in value:
                value = value[part]
                continue
            if prefixes:
                key = next((k for k in value if str(k).lstrip(prefixes) == part), MISSING)
                if key is not MISSING:
                    value = value[key]
                    continue
            return default
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
            continue
        return default
    return value
