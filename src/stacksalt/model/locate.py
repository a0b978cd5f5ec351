"""Which file of a node's class chain set (or referenced) a given parameter key.

reclass forgets where a rendered value came from, so this walks the node's files in
merge order over the raw YAML: the last file that sets a key is the one whose value
won. List items are attributed to the file that contributed them (lists are extended
by every class that sets them, unless a ``~`` override starts them afresh).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stacksalt.model.classfiles import strip_prefix
from stacksalt.model.index import ModelIndex

SECTIONS = ("parameters", "exports")


def split_key(key_path: str) -> tuple[str, list[str]]:
    """``parameters:a:b`` -> ("parameters", ["a", "b"]); a bare ``a:b`` means parameters."""
    parts = [p for p in key_path.split(":") if p != ""]
    if parts and parts[0] in SECTIONS:
        return parts[0], parts[1:]
    return "parameters", parts


def _child(mapping: dict, part: str) -> tuple[bool, Any, bool]:
    """(found, value, overridden) for ``part`` in a raw mapping (``~``/``=`` prefixes ok)."""
    for key, value in mapping.items():
        if strip_prefix(key) == part:
            return True, value, str(key).startswith("~")
    return False, None, False


def _depth(value: Any, parts: Sequence[str], offsets: dict[tuple[str, ...], int]) -> int:
    """How many leading ``parts`` this raw value sets.

    ``offsets`` carries, per list, how many items earlier files contributed, so that a
    rendered list index maps to the file that contributed that item.
    """
    prefix: tuple[str, ...] = ()
    depth = 0
    for part in parts:
        if isinstance(value, dict):
            found, sub, overridden = _child(value, part)
            if not found:
                break
            prefix = (*prefix, part)
            if overridden:
                offsets[prefix] = 0
            value = sub
        elif isinstance(value, list):
            start = offsets.get(prefix, 0)
            offsets[prefix] = start + len(value)
            if not part.isdigit() or not start <= int(part) < start + len(value):
                break
            value = value[int(part) - start]
            prefix = (*prefix, part)
        else:
            break
        depth += 1
    else:
        if isinstance(value, list):
            offsets[prefix] = offsets.get(prefix, 0) + len(value)
    return depth


def raw_value(index: ModelIndex, rel: str, key_path: str) -> tuple[bool, Any]:
    """(found, value) of ``key_path`` as written in one file (no list offsets)."""
    section, parts = split_key(key_path)
    data = index.data(rel)
    if section not in data:
        return False, None
    value: Any = data[section]
    for part in parts:
        if isinstance(value, dict):
            found, value, _ = _child(value, part)
            if not found:
                return False, None
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def locate_in_chain(index: ModelIndex, chain: Sequence[str], key_path: str) -> str | None:
    """The file (relative to the inventory base) that last set ``key_path``.

    ``chain`` is the node's files in merge order. When no file sets the full path (the
    value came in through a reference higher up, say), the file that last set the
    longest leading part of it is returned; None when not even the first key is set.
    """
    section, parts = split_key(key_path)
    if not parts:
        return None
    best, best_depth = None, 0
    offsets: dict[tuple[str, ...], int] = {}
    for rel in chain:
        root = index.data(rel).get(section)
        depth = _depth(root, parts, offsets)
        if depth >= best_depth and depth > 0:
            best, best_depth = rel, depth
    return best


def locate_reference(
    index: ModelIndex, chain: Sequence[str], key_path: str, reference: str
) -> str | None:
    """The file whose value at ``key_path`` holds ``reference`` (e.g. ``${_param:x}``).

    Falls back to ``locate_in_chain`` when no file has that text at that key (the
    reference was built from other references, or came in through one).
    """
    for rel in reversed(chain):
        found, value = raw_value(index, rel, key_path)
        if found and isinstance(value, str) and reference in value:
            return rel
    return locate_in_chain(index, chain, key_path)
