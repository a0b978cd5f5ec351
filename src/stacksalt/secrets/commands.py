"""The ``stacksalt secrets`` subcommands: import-key, set, rotate, list, check, generate.

Every ``main_*`` returns the exit code and prints errors as one line on stderr. No value
and no ciphertext is ever printed; a value is read from stdin (or a no-echo prompt on a
terminal), never from the command line.
"""

from __future__ import annotations

import difflib
import getpass
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TextIO

from stacksalt.deployment import Deployment
from stacksalt.secrets import check as check_mod
from stacksalt.secrets import keys, store
from stacksalt.secrets.throwaway import (
    _lost_ssh_key,
    _new_value,
    generate,
    references,
    ssh_key_file,
)


def read_value(name: str, stream: TextIO | None = None) -> str:
    """The value from stdin, one trailing newline stripped; refuses an empty value."""
    stream = stream or sys.stdin
    if stream.isatty():
        value = getpass.getpass(f"value of {name}: ", stream=sys.stderr)
    else:
        value = stream.read()
    if value.endswith("\r\n"):
        value = value[:-2]
    elif value.endswith("\n"):
        value = value[:-1]
    if not value:
        raise store.SecretsError(f"stdin: secrets:{name}: the value is empty: nothing written")
    return value


def _known_name(deployment: str, name: str, refs: dict[str, list[str]],
                current: dict[str, str], force: bool) -> None:
    if name in refs or force:
        return
    close = difflib.get_close_matches(name, sorted(set(refs) | set(current)), n=3)
    hint = f" (close: {', '.join(close)})" if close else ""
    raise store.SecretsError(
        f"{store.shown(store.secrets_file(deployment))}: secrets:{name}: no node of "
        f"{deployment} references it{hint}; --force writes it anyway")


def _write_one(deployment: str, name: str, value: str, fpr: str) -> None:
    current = store.read_encrypted(deployment)
    where = f"{store.shown(store.secrets_file(deployment))}: secrets:{name}"
    current[name] = keys.encrypt(deployment, value, fpr, where)
    store.write_entries(deployment, current)


def set_secret(deployment: str, name: str, value: str, force: bool = False) -> None:
    """Encrypt ``value`` to the pinned master key and store it as ``secrets:NAME``."""
    fpr = keys.recipient(deployment)
    refs = references(Deployment.load(deployment))
    _known_name(deployment, name, refs, store.read_encrypted(deployment), force)
    _write_one(deployment, name, value, fpr)


def rotate(deployment: str, name: str, value: str | None = None,
           force: bool = False) -> None:
    """A new value for ``secrets:NAME`` (generated like ``generate`` does, or ``value``),
    encrypted to the pinned key (a test deployment's throwaway key)."""
    fpr = keys.recipient(deployment, throwaway_ok=True)
    refs = references(Deployment.load(deployment))
    current = store.read_encrypted(deployment)
    _known_name(deployment, name, refs, current, force or name in current)
    _write_one(deployment, name, _new_value(deployment, name) if value is None else value, fpr)


def list_lines(deployment: str) -> list[str]:
    """One line per name (present, missing or unreferenced) with who references it, then
    the missing names. Only names, keys and nodes: no value, no ciphertext."""
    refs = references(Deployment.load(deployment))
    present = set(store.load_entries(deployment))
    lines = []
    for name in sorted(set(refs) | present):
        status = "missing" if name not in present else (
            "present" if name in refs else "unreferenced")
        by_key: dict[str, list[str]] = {}
        for ref in refs.get(name, []):
            node, _, key = ref.partition(": ")
            by_key.setdefault(key, []).append(node.split(".")[0])
        users = "; ".join(f"{key} ({', '.join(nodes)})" for key, nodes in by_key.items())
        lines.append(f"{name}  {status}  {users or '-'}")
    missing = sorted(set(refs) - present)
    lines.append(f"missing: {', '.join(missing) if missing else 'none'}")
    return lines


def _one_line_errors(fn: Callable[..., int]) -> Callable[..., int]:
    @wraps(fn)
    def wrapper(*args, **kwargs) -> int:
        try:
            return fn(*args, **kwargs)
        except store.SecretsError as exc:
            print(f"stacksalt secrets: {exc}", file=sys.stderr)
            return 1

    return wrapper


@_one_line_errors
def main_import_key(deployment: str, file: str | None, replace: bool = False) -> int:
    if file in (None, "-"):
        source, armored = "stdin", sys.stdin.read()
    else:
        path = Path(file)
        try:
            source, armored = str(path), path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise store.SecretsError(f"{path}: cannot read it ({exc.__class__.__name__})") \
                from None
    fpr = keys.import_key(deployment, armored, source, replace=replace)
    print(f"{store.shown(store.config_file(deployment))}: secrets:master_key: {fpr} "
          f"(keyring {store.shown(store.keyring_dir(deployment))})")
    return 0


@_one_line_errors
def main_set(deployment: str, name: str, force: bool = False) -> int:
    # refused before any value is read: nothing pinned, or a name no node references
    fpr = keys.recipient(deployment)
    refs = references(Deployment.load(deployment))
    _known_name(deployment, name, refs, store.read_encrypted(deployment), force)
    _write_one(deployment, name, read_value(name), fpr)
    print(f"set {name} in {store.shown(store.secrets_file(deployment))}")
    return 0


@_one_line_errors
def main_rotate(deployment: str, name: str, from_stdin: bool = False,
                force: bool = False) -> int:
    fpr = keys.recipient(deployment, throwaway_ok=True)
    refs = references(Deployment.load(deployment))
    current = store.read_encrypted(deployment)
    _known_name(deployment, name, refs, current, force or name in current)
    value = read_value(name) if from_stdin else _new_value(deployment, name)
    _write_one(deployment, name, value, fpr)
    print(f"rotated {name}")
    return 0


@_one_line_errors
def main_list(deployment: str) -> int:
    for line in list_lines(deployment):
        print(line)
    return 0


@_one_line_errors
def main_check(deployment: str) -> int:
    refs = references(Deployment.load(deployment))
    found = check_mod.problems(deployment, refs)
    for line in found:
        print(line)
    print(f"{store.shown(store.secrets_file(deployment))}: {len(found)} problem(s)",
          file=sys.stderr)
    return 1 if found else 0


@_one_line_errors
def main_generate(deployment: str) -> int:
    lost = [name for name in store.read_encrypted(deployment)
            if _lost_ssh_key(deployment, name)]
    added, kept = generate(deployment)
    for name in sorted(set(lost) & set(added)):
        print(f"secrets:{name}: its private key {store.shown(ssh_key_file(deployment, name))} "
              "was missing here: a new key pair replaces the value")
    print(
        f"{store.secrets_file(deployment)}: {len(added)} added, {len(kept)} kept; "
        f"keyring {store.keyring_dir(deployment)}"
    )
    return 0
