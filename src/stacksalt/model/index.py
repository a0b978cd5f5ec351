"""The inventory's files: which classes and nodes exist, where, and what they include.

This mirrors what reclass's ``yaml_fs`` storage does (the same directory walk, the same
name manglers, the same relative class names and the same merge order) but reads the
raw YAML itself, so that problems can be pinned to a file and line before reclass gets
to see the model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from reclass.defaults import EXPORT_SENTINELS, REFERENCE_SENTINELS
from reclass.storage.common import NameMangler
from reclass.storage.yamldata import YamlData

from stacksalt import engine
from stacksalt.model.errors import DUPLICATE_NAME, YAML_SYNTAX, ModelError

FILE_EXTENSIONS = (".yml", ".yaml")
SKIP_DIRS = ("CVS", "SCCS")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class ModelFile:
    """One class or node file of the inventory."""

    rel: str  # path relative to the inventory base, with "/" separators
    path: Path  # absolute path
    kind: str  # "class" or "node"
    name: str  # the class name, or the node name
    deployment: str | None = None  # nodes only: the folder under nodes/


@dataclass
class ClassEntry:
    """One entry of a file's ``classes:`` list."""

    raw: Any  # as written (not necessarily a string)
    name: str | None  # absolute class name (None when raw is not a usable string)


@dataclass
class Chain:
    """A node's files in reclass merge order (its own file last), and the cycles met."""

    files: list[ModelFile]
    cycles: list[tuple[ModelFile, list[str]]] = field(default_factory=list)


def has_reference(text: str) -> bool:
    """Whether a string holds a reclass reference or inventory query sentinel."""
    return REFERENCE_SENTINELS[0] in text or EXPORT_SENTINELS[0] in text


def _walk(root: Path) -> Iterator[tuple[str, str]]:
    """(relative directory, file name) of every YAML file, like reclass's Directory."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
        rel = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            if name.endswith(FILE_EXTENSIONS):
                yield rel, name


class ModelIndex:
    """Every class and node file of an inventory, loaded lazily and cached."""

    def __init__(self, base: Path):
        self.base = Path(base).resolve()
        self.classes_dir = self.base / engine.ENGINE_OPTIONS["classes_uri"]
        self.nodes_dir = self.base / engine.ENGINE_OPTIONS["nodes_uri"]
        self.classes: dict[str, ModelFile] = {}
        self.nodes: dict[str, ModelFile] = {}
        self.errors: list[ModelError] = []  # duplicate names (reclass refuses to start)
        self._data: dict[str, dict[str, Any]] = {}
        self._load_errors: dict[str, ModelError] = {}
        self._raw_types: dict[str, str] = {}
        self._entries: dict[str, list[ClassEntry]] = {}
        self.files: dict[str, ModelFile] = {}  # by rel
        self._scan()

    # -- scanning ---------------------------------------------------------------

    def _scan(self) -> None:
        if self.classes_dir.is_dir():
            for rel_dir, fname in _walk(self.classes_dir):
                _, name = NameMangler.classes(rel_dir, os.path.splitext(fname)[0])
                self._register(self.classes, "class", self.classes_dir, rel_dir, fname, name)
        if engine.ENGINE_OPTIONS.get("compose_node_name"):
            mangle = NameMangler.composed_nodes
        else:
            mangle = NameMangler.nodes
        if self.nodes_dir.is_dir():
            for rel_dir, fname in _walk(self.nodes_dir):
                _, name = mangle(rel_dir, os.path.splitext(fname)[0])
                mf = self._register(self.nodes, "node", self.nodes_dir, rel_dir, fname, name)
                if mf is not None and rel_dir not in (".", ""):
                    mf.deployment = Path(rel_dir).parts[0]

    def _register(
        self,
        table: dict[str, ModelFile],
        kind: str,
        root: Path,
        rel_dir: str,
        fname: str,
        name: str,
    ) -> ModelFile | None:
        path = root / rel_dir / fname
        mf = ModelFile(self.relative(path), path, kind, name)
        other = table.get(name)
        if other is not None:
            self.errors.append(
                ModelError(
                    DUPLICATE_NAME,
                    mf.rel,
                    None,
                    f"{kind} {name!r} is also defined by {other.rel} "
                    f"(reclass refuses to load the inventory)",
                )
            )
            return None
        table[name] = mf
        self.files[mf.rel] = mf
        return mf

    def relative(self, path: Path | str) -> str:
        """``path`` relative to the inventory base (absolute if it lies outside)."""
        path = Path(os.path.abspath(path))
        try:
            return path.relative_to(self.base).as_posix()
        except ValueError:
            return str(path)

    @property
    def deployments(self) -> list[str]:
        return sorted({n.deployment for n in self.nodes.values() if n.deployment})

    def nodes_of(self, deployment: str | None) -> list[ModelFile]:
        """The deployment's node files (every node when ``deployment`` is None)."""
        return sorted(
            (n for n in self.nodes.values() if deployment is None or n.deployment == deployment),
            key=lambda n: n.name,
        )

    # -- loading ----------------------------------------------------------------

    def load_error(self, mf: ModelFile) -> ModelError | None:
        """The YAML error of a file, if it cannot be read."""
        self.data(mf)
        return self._load_errors.get(mf.rel)

    def data(self, mf: ModelFile | str) -> dict[str, Any]:
        """The file's top-level mapping ({} if the file is empty, unreadable or not a mapping)."""
        rel = mf if isinstance(mf, str) else mf.rel
        cached = self._data.get(rel)
        if cached is not None:
            return cached
        path = self.base / rel if isinstance(mf, str) else mf.path
        data: Any = {}
        try:
            with open(path, encoding="utf-8") as fp:
                data = yaml.load(fp, Loader=_LOADER)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            where = f"line {line}, column {mark.column + 1}: " if mark else ""
            problem = exc.problem or exc.context or "syntax error"
            if exc.problem and exc.context:
                started = exc.context_mark
                at = f" that starts at line {started.line + 1}" if started else ""
                problem += f" ({exc.context}{at})"
            self._load_errors[rel] = ModelError(
                YAML_SYNTAX, rel, None, f"invalid YAML: {where}{problem}", line=line
            )
            data = {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            self._load_errors[rel] = ModelError(YAML_SYNTAX, rel, None, f"cannot read: {exc}")
            data = {}
        if data is None:
            data = {}
        self._data[rel] = data if isinstance(data, dict) else {}
        self._raw_types[rel] = type(data).__name__
        return self._data[rel]

    def top_level_type(self, mf: ModelFile) -> str:
        """The Python type name of the file's YAML document ('dict' when fine)."""
        self.data(mf)
        return self._raw_types.get(mf.rel, "dict")

    # -- classes ----------------------------------------------------------------

    def entries(self, mf: ModelFile) -> list[ClassEntry]:
        """The file's ``classes:`` entries with relative names made absolute (as reclass)."""
        cached = self._entries.get(mf.rel)
        if cached is not None:
            return cached
        raw = self.data(mf).get("classes")
        result: list[ClassEntry] = []
        if isinstance(raw, list):
            for item in raw:
                if isinstance(item, str) and item:
                    (name,) = YamlData("").set_absolute_names(mf.name, [item])
                    result.append(ClassEntry(item, name))
                else:
                    result.append(ClassEntry(item, None))
        self._entries[mf.rel] = result
        return result

    def chain(self, node: ModelFile) -> Chain:
        """The node's class files in reclass merge order, its own file last.

        reclass merges depth-first: every class's own classes before the class itself,
        each class once (the first time it is met), the node last. Missing classes are
        skipped here (the static pass reports them); a class that includes itself
        (directly or not) would send reclass into endless recursion, so it is recorded
        in ``cycles`` and not followed. Names holding references are not followed either
        (they are refused by the static pass).
        """
        order: list[ModelFile] = []
        cycles: list[tuple[ModelFile, list[str]]] = []
        seen: set[str] = set()
        stack: list[str] = []

        def visit(mf: ModelFile) -> None:
            for entry in self.entries(mf):
                name = entry.name
                if name is None or name in seen or has_reference(name):
                    continue
                if name in stack:
                    cycles.append((mf, stack[stack.index(name) :] + [name]))
                    continue
                target = self.classes.get(name)
                if target is None:
                    continue
                stack.append(name)
                visit(target)
                stack.pop()
                seen.add(name)
            order.append(mf)

        visit(node)
        return Chain(order, cycles)
