"""Turn reclass's exceptions into ModelErrors that name the file and the key to fix.

What reclass gives (kapicorp-reclass 2.0): most errors derive from
``InterpolationError`` and carry ``uri`` (``yaml_fs:///abs/path``, or several joined
by ``"; "`` when the value was merged from several files) and ``context`` (the
parameter path being rendered, a ``DictPath``). ``ResolveError`` carries the
``reference``; ``TypeMergeError`` only the two type names (``type1`` merged over
``type2``) and every file that set the key, not which one clashed; ``ChangedConstantError``
only the two files. Where the file is ambiguous or missing it is reconstructed from the
node's class chain (see ``locate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import reclass.errors as rerr
import reclass.settings
from reclass.defaults import REFERENCE_SENTINELS

from stacksalt.model.classfiles import PARSER
from stacksalt.model.errors import (
    BAD_REFERENCE,
    CHANGED_CONSTANT,
    ENGINE_ERROR,
    INFINITE_RECURSION,
    INVALID_CLASS_NAME,
    INVENTORY_QUERY,
    MISSING_CLASS,
    REFERENCE_SYNTAX,
    TYPE_CONFLICT,
    UNRESOLVED_REFERENCE,
    ModelError,
)
from stacksalt.model.index import ModelFile, ModelIndex, has_reference
from stacksalt.model.locate import locate_in_chain, locate_reference, raw_value

_URI_SCHEME = "yaml_fs://"
_ARTICLES = {"dictionary": "a dictionary", "list": "a list", "scalar": "a scalar"}


@dataclass
class NodeContext:
    """What a translation needs to know about the node that failed."""

    index: ModelIndex
    node: ModelFile
    chain: Sequence[str]  # the node's files in merge order (relative paths)
    settings: reclass.settings.Settings


def uri_files(index: ModelIndex, uri: Any) -> list[str]:
    """The files named in a reclass ``uri`` (relative to the inventory base, in order)."""
    files = []
    for part in str(uri or "").split(";"):
        part = part.strip()
        if part.startswith(_URI_SCHEME):
            rel = index.relative(part[len(_URI_SCHEME) :])
            if rel not in files:
                files.append(rel)
    return files


def _ref(text: str) -> str:
    return REFERENCE_SENTINELS[0] + text + REFERENCE_SENTINELS[1]


def _key(section: str, context: Any) -> str | None:
    context = str(context) if context is not None else ""
    return f"{section}:{context}" if context else section


def _flat_message(exc: BaseException) -> str:
    """reclass's message for an exception, on one line, without the node name."""
    getter = getattr(exc, "_get_error_message", None)
    if getter is None:
        return getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"

    def flatten(items: Any) -> list[str]:
        if isinstance(items, list):
            return [s for item in items for s in flatten(item)]
        return [str(items).strip()]

    try:
        return "; ".join(s for s in flatten(getter()) if s and not s.startswith("->"))
    except Exception:  # a message that cannot be built is still an error to report
        return f"{type(exc).__name__}"


def _item_type(value: Any, settings: reclass.settings.Settings) -> str:
    """reclass's item type name for a raw YAML value (as TypeMergeError names them)."""
    if isinstance(value, dict):
        return "dictionary"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str) and has_reference(value):
        try:
            return PARSER.parse(value, settings).type_str()
        except Exception:
            return "scalar"
    return "scalar"


def _a(type_name: str) -> str:
    return _ARTICLES.get(type_name, f"a {type_name}")


def _one_file(ctx: NodeContext, exc: BaseException, key: str | None, ref: str | None) -> str:
    """The single file to blame: the exception's own if unambiguous, else reconstructed."""
    files = uri_files(ctx.index, getattr(exc, "uri", None))
    if len(files) == 1:
        return files[0]
    chain = [f for f in ctx.chain if not files or f in files] or list(ctx.chain)
    located = None
    if key is not None:
        if ref is not None:
            located = locate_reference(ctx.index, chain, key, ref)
        else:
            located = locate_in_chain(ctx.index, chain, key)
    return located or (files[-1] if files else ctx.node.rel)


def _type_conflict(ctx: NodeContext, exc: rerr.TypeMergeError, key: str) -> ModelError:
    files = uri_files(ctx.index, exc.uri) or list(ctx.chain)
    setters = [f for f in files if raw_value(ctx.index, f, key)[0]] or files
    types = [_item_type(raw_value(ctx.index, f, key)[1], ctx.settings) for f in setters]
    blame, before = setters[-1], (setters[-2] if len(setters) > 1 else None)
    for n in range(1, len(setters)):
        if types[n] == exc.type1 and types[n - 1] == exc.type2:
            blame, before = setters[n], setters[n - 1]
            break
    where = f" (the {exc.type2} is set in {before})" if before else ""
    return ModelError(
        TYPE_CONFLICT, blame, key, f"cannot merge {_a(exc.type1)} over {_a(exc.type2)}{where}"
    )


def translate(exc: BaseException, ctx: NodeContext, section: str = "parameters") -> ModelError:
    """One ModelError (for ``ctx.node``) describing a reclass exception."""
    node = [ctx.node.name]
    context = getattr(exc, "context", None)
    key = _key(section, context) if context is not None else None

    if isinstance(exc, rerr.ResolveError):
        ref = _ref(str(exc.reference))
        file = _one_file(ctx, exc, key, ref)
        return ModelError(UNRESOLVED_REFERENCE, file, key, f"unresolved reference {ref}", node)
    if isinstance(exc, rerr.TypeMergeError) and key is not None:
        error = _type_conflict(ctx, exc, key)
        error.nodes = node
        return error
    if isinstance(exc, rerr.InfiniteRecursionError):
        ref = _ref(str(exc.ref))
        file = _one_file(ctx, exc, key, ref)
        return ModelError(
            INFINITE_RECURSION,
            file,
            key,
            f"reference {ref} leads back to this key (a reference cycle)",
            node,
        )
    if isinstance(exc, rerr.BadReferencesError):
        file = _one_file(ctx, exc, key, None)
        refs = ", ".join(exc.refs)
        return ModelError(BAD_REFERENCE, file, key, f"cannot resolve references {refs}", node)
    if isinstance(exc, rerr.ChangedConstantError):
        files = uri_files(ctx.index, exc.uri)
        file = files[-1] if files else _one_file(ctx, exc, key, None)
        where = f" set in {files[0]}" if len(files) > 1 else ""
        return ModelError(
            CHANGED_CONSTANT, file, key, f"changes the constant parameter{where}", node
        )
    if isinstance(exc, rerr.ParseError):
        file = _one_file(ctx, exc, key, None)
        return ModelError(
            REFERENCE_SYNTAX, file, key, f"cannot parse {exc._line!r}: {exc._err}", node
        )
    if isinstance(exc, rerr.ClassNotFound):
        file = (uri_files(ctx.index, exc.uri) or [ctx.node.rel])[0]
        return ModelError(
            MISSING_CLASS, file, "classes", f"class {exc.name!r} does not exist", node
        )
    if isinstance(exc, rerr.ClassNameResolveError):
        file = (uri_files(ctx.index, exc.uri) or [ctx.node.rel])[0]
        return ModelError(
            INVALID_CLASS_NAME, file, "classes", f"cannot resolve class name {exc.name!r}", node
        )
    if isinstance(exc, rerr.InterpolationError) and isinstance(
        exc,
        (
            rerr.InvQueryError,
            rerr.InvQueryClassNotFound,
            rerr.InvQueryClassNameResolveError,
            rerr.ExpressionError,
        ),
    ):
        file = _one_file(ctx, exc, key, None)
        return ModelError(INVENTORY_QUERY, file, key, _flat_message(exc), node)
    if isinstance(exc, rerr.InterpolationError):
        file = _one_file(ctx, exc, key, None)
        return ModelError(ENGINE_ERROR, file, key, _flat_message(exc), node)
    if isinstance(exc, RecursionError):
        message = "reclass recursed too deeply (a class cycle?)"
        return ModelError(ENGINE_ERROR, ctx.node.rel, None, message, node)
    return ModelError(ENGINE_ERROR, ctx.node.rel, key, _flat_message(exc), node)
