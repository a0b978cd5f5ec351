"""The static pass: what is wrong in each class and node file, found without rendering.

YAML syntax, the shape of the file, every ``classes:`` entry (it must name an existing
class, literally: no ``${...}`` in class names) and the syntax of every reference.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Collection, Iterator
from typing import Any

import reclass.settings
from reclass.errors import ParseError
from reclass.values.parser import Parser

from stacksalt import engine
from stacksalt.model.errors import (
    CLASS_CYCLE,
    INVALID_CLASS_NAME,
    INVALID_STRUCTURE,
    MISSING_CLASS,
    REFERENCE_SYNTAX,
    ModelError,
)
from stacksalt.model.index import ModelFile, ModelIndex, has_reference

TOP_LEVEL_KEYS = ("classes", "applications", "parameters", "exports", "environment")
PARSER = Parser()


def engine_settings() -> reclass.settings.Settings:
    """reclass settings for ``engine.ENGINE_OPTIONS`` (what the engine parses with)."""
    return engine.settings()


_TYPE_NAMES = {dict: "a mapping", list: "a list", str: "a string"}


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _line_of(mf: ModelFile, pattern: str) -> int | None:
    """The first line of the file matching ``pattern`` (a regular expression), 1-based."""
    try:
        text = mf.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    rx = re.compile(pattern)
    for number, line in enumerate(text.splitlines(), 1):
        if rx.search(line):
            return number
    return None


def _entry_line(mf: ModelFile, raw: Any) -> int | None:
    return _line_of(mf, r"^\s*-\s*[\"']?" + re.escape(str(raw)) + r"[\"']?\s*(#.*)?$")


def strip_prefix(key: Any, settings: reclass.settings.Settings | None = None) -> str:
    """A parameter key without reclass's override (``~``) or constant (``=``) prefix."""
    key = str(key)
    prefixes = settings.dict_key_prefixes if settings else ("~", "=")
    return key[1:] if key[:1] in prefixes else key


def _strings(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    """(key path, string) for every string below ``value``."""
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _strings(sub, (*path, strip_prefix(key)))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _strings(sub, (*path, str(i)))
    elif isinstance(value, str):
        yield path, value


def _class_entry_errors(index: ModelIndex, mf: ModelFile) -> Iterator[ModelError]:
    for entry in index.entries(mf):
        raw = entry.raw
        if entry.name is None:
            yield ModelError(
                INVALID_CLASS_NAME,
                mf.rel,
                "classes",
                f"class entry {raw!r} is not a class name",
                line=_entry_line(mf, raw),
            )
        elif has_reference(raw):
            yield ModelError(
                INVALID_CLASS_NAME,
                mf.rel,
                "classes",
                f"class name {raw!r} holds a reference; class names must be literal",
                line=_entry_line(mf, raw),
            )
        elif " " in raw or os.sep in raw:
            yield ModelError(
                INVALID_CLASS_NAME,
                mf.rel,
                "classes",
                f"class name {raw!r} contains a space or {os.sep!r}",
                line=_entry_line(mf, raw),
            )
        elif entry.name not in index.classes:
            how = f" ({raw!r} relative to {mf.name})" if raw != entry.name else ""
            close = difflib.get_close_matches(entry.name, index.classes, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            yield ModelError(
                MISSING_CLASS,
                mf.rel,
                "classes",
                f"class {entry.name!r} does not exist{how}{hint}",
                line=_entry_line(mf, raw),
            )


def _structure_errors(index: ModelIndex, mf: ModelFile) -> Iterator[ModelError]:
    top = index.top_level_type(mf)
    if top not in ("dict", "NoneType"):
        yield ModelError(
            INVALID_STRUCTURE, mf.rel, None, f"the file holds {top}, not a mapping", line=1
        )
        return
    data = index.data(mf)
    for key in data:
        if str(key) not in TOP_LEVEL_KEYS:
            yield ModelError(
                INVALID_STRUCTURE,
                mf.rel,
                str(key),
                f"unknown top-level key {str(key)!r} (reclass ignores it); "
                f"expected one of {', '.join(TOP_LEVEL_KEYS)}",
                line=_line_of(mf, r"^" + re.escape(str(key)) + r"\s*:"),
            )
    expected = {
        "classes": list,
        "applications": list,
        "parameters": dict,
        "exports": dict,
        "environment": str,
    }
    for key, kind in expected.items():
        value = data.get(key)
        if value is not None and not isinstance(value, kind):
            yield ModelError(
                INVALID_STRUCTURE,
                mf.rel,
                key,
                f"{key} must be {_type_name(kind())}, not {_type_name(value)}",
                line=_line_of(mf, r"^" + key + r"\s*:"),
            )


def _reference_errors(
    index: ModelIndex, mf: ModelFile, settings: reclass.settings.Settings
) -> Iterator[ModelError]:
    data = index.data(mf)
    for section in ("parameters", "exports"):
        value = data.get(section)
        if not isinstance(value, dict):
            continue
        for path, text in _strings(value, (section,)):
            if not has_reference(text):
                continue
            try:
                PARSER.parse(text, settings)
            except ParseError as exc:
                opened = text.count(settings.reference_sentinels[0]) + text.count(
                    settings.export_sentinels[0]
                )
                closed = text.count(settings.reference_sentinels[1]) + text.count(
                    settings.export_sentinels[1]
                )
                hint = "; a reference is not closed" if opened > closed else ""
                yield ModelError(
                    REFERENCE_SYNTAX,
                    mf.rel,
                    ":".join(path),
                    f"cannot parse {text!r}: {exc._err} at character {exc._col - 1}{hint}",
                )


def file_errors(
    index: ModelIndex, mf: ModelFile, settings: reclass.settings.Settings
) -> list[ModelError]:
    """Every static error of one class or node file (``nodes`` left empty)."""
    load_error = index.load_error(mf)
    if load_error is not None:
        return [load_error]
    return [
        *_structure_errors(index, mf),
        *_class_entry_errors(index, mf),
        *_reference_errors(index, mf, settings),
    ]


def cycle_errors(index: ModelIndex, cycles: list[tuple[ModelFile, list[str]]]) -> list[ModelError]:
    """Errors for classes that include themselves (found while walking a node's chain)."""
    errors = []
    for mf, names in cycles:
        raws = [e.raw for e in index.entries(mf) if e.name == names[-1]]
        errors.append(
            ModelError(
                CLASS_CYCLE,
                mf.rel,
                "classes",
                "classes include each other in a cycle: " + " -> ".join(names),
                line=_entry_line(mf, raws[0] if raws else names[-1]),
            )
        )
    return errors


def _without_bad_references(value: Any, settings: reclass.settings.Settings) -> Any:
    """``value`` minus every string whose references do not parse."""
    if isinstance(value, dict):
        result = {}
        for key, sub in value.items():
            sub = _without_bad_references(sub, settings)
            if sub is not _DROP:
                result[key] = sub
        return result
    if isinstance(value, list):
        kept = (_without_bad_references(sub, settings) for sub in value)
        return [sub for sub in kept if sub is not _DROP]
    if isinstance(value, str) and has_reference(value):
        try:
            PARSER.parse(value, settings)
        except ParseError:
            return _DROP
    return value


_DROP = object()


def repaired_data(
    index: ModelIndex,
    mf: ModelFile,
    settings: reclass.settings.Settings,
    drop_classes: Collection[str] = (),
) -> dict[str, Any]:
    """The file's data with everything the static pass refused taken out.

    Unreadable files become empty; unknown or mistyped top-level keys, ``classes:``
    entries that are not usable (missing, with references, invalid, or in
    ``drop_classes`` because they close a cycle) and values with unparsable references
    are dropped. The rendering pass renders nodes that use broken files with this
    data, so that their other errors are found too.
    """
    if index.load_error(mf) is not None or index.top_level_type(mf) not in ("dict", "NoneType"):
        return {}
    data = index.data(mf)
    kinds = {"classes": list, "applications": list, "parameters": dict, "exports": dict}
    result: dict[str, Any] = {}
    for key, kind in kinds.items():
        if isinstance(data.get(key), kind):
            result[key] = data[key]
    if isinstance(data.get("environment"), str):
        result["environment"] = data["environment"]
    if "classes" in result:
        result["classes"] = [
            entry.raw
            for entry in index.entries(mf)
            if entry.name is not None
            and not has_reference(entry.raw)
            and not (" " in entry.raw or os.sep in entry.raw)
            and entry.name in index.classes
            and entry.name not in drop_classes
        ]
    for key in ("parameters", "exports"):
        if key in result:
            result[key] = _without_bad_references(result[key], settings)
    return result
