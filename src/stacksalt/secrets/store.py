"""Where a deployment's secrets live, the pinned master key, and atomic writes.

* ``secrets_file(deployment)``: ``pillar/secrets/<deployment>.sls`` (``#!yaml|gpg``, armored
  gpg messages under ``secrets:``), written 0600 through a temporary file and a rename;
* ``keyring_dir(deployment)``: the local gpg keyring (the master's public key, or the
  throwaway key pair of a test deployment);
* ``config_file(deployment)``: the YAML file whose ``secrets: {master_key: FPR}`` pins the
  fingerprint every secret is encrypted to. This function is the one place that says where
  the file is.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import ruamel.yaml
import yaml

from stacksalt import paths
from stacksalt.errors import StacksaltError

HEADER = "#!yaml|gpg\n"
PIN_KEY = ("secrets", "master_key")
FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")


class SecretsError(StacksaltError):
    """Bad input or state: one line naming the file and key; nothing was written."""


def keyring_dir(deployment: str) -> Path:
    return paths.state_dir(deployment) / "gpgkeys"


def secrets_file(deployment: str) -> Path:
    return paths.pillar_dir(deployment) / "secrets" / f"{deployment}.sls"


def config_file(deployment: str) -> Path:
    """The deployment repository's stacksalt.yml: ``secrets: {master_key: FPR}`` pins the
    real salt master's key (committed, so every clone encrypts to the same key)."""
    return paths.deployment_root(deployment) / paths.CONFIG


def throwaway_pin_file(deployment: str) -> Path:
    """Where a test deployment's throwaway key is pinned: per machine, git-ignored (the
    throwaway key exists on this machine only; the committed stacksalt.yml says null)."""
    return paths.state_dir(deployment) / "throwaway-key.yml"


def shown(path: Path) -> str:
    """A path as messages show it: relative to the deployment repository when inside."""
    for base in (paths.active(), paths.package_checkout()):
        if base is None:
            continue
        try:
            return str(path.resolve().relative_to(base))
        except ValueError:
            continue
    return str(path)


def write_atomic(path: Path, text: str, mode: int) -> None:
    """Write through a temporary file in the same folder (created with ``mode``), then
    rename over ``path``; the temporary file is removed if anything fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _load_config(deployment: str, path: Path | None = None) -> dict[str, Any]:
    path = path or config_file(deployment)
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SecretsError(f"{shown(path)}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise SecretsError(f"{shown(path)}: must be a mapping")
    section = data.get(PIN_KEY[0])
    if section is not None and not isinstance(section, dict):
        raise SecretsError(f"{shown(path)}: {PIN_KEY[0]}: must be a mapping")
    return data


def pinned_fingerprint(deployment: str) -> str | None:
    """The fingerprint every secret of the deployment is encrypted to, or None: the real
    master's from stacksalt.yml, else this machine's throwaway key's."""
    value = (_load_config(deployment).get(PIN_KEY[0]) or {}).get(PIN_KEY[1])
    if value is None and throwaway_pin_file(deployment).is_file():
        path = throwaway_pin_file(deployment)
        value = (_load_config(deployment, path).get(PIN_KEY[0]) or {}).get(PIN_KEY[1])
    if value is None:
        return None
    if not isinstance(value, str) or not FINGERPRINT.match(value.replace(" ", "").upper()):
        raise SecretsError(f"{shown(config_file(deployment))}: {':'.join(PIN_KEY)}: "
                           f"must be a 40-hex-digit gpg fingerprint, not {value!r}")
    return value.replace(" ", "").upper()


def pin_fingerprint(deployment: str, fpr: str, throwaway: bool = False) -> None:
    """Pin ``fpr`` under ``secrets:master_key``, keeping every other key of the file and
    its comments (ruamel.yaml's round trip: the file may be a hand-written one). A real
    master's key goes into the repository's stacksalt.yml (and its secrets file is then
    committed: the .gitignore line `stacksalt init` wrote for throwaway secrets goes); a
    throwaway key into this machine's pin file."""
    fpr = fpr.replace(" ", "").upper()
    path = throwaway_pin_file(deployment) if throwaway else config_file(deployment)
    if not FINGERPRINT.match(fpr):
        raise SecretsError(f"{shown(path)}: {':'.join(PIN_KEY)}: "
                           f"{fpr!r} is not a 40-hex-digit gpg fingerprint")
    _load_config(deployment)  # one-line errors for a broken file, before anything is written
    rt = ruamel.yaml.YAML()
    rt.preserve_quotes = True
    data = (rt.load(path.read_text()) if path.exists() else None) or {}
    if data.get(PIN_KEY[0]) is None:
        data[PIN_KEY[0]] = {}
    data[PIN_KEY[0]][PIN_KEY[1]] = fpr
    out = io.StringIO()
    rt.dump(data, out)
    write_atomic(path, out.getvalue(), 0o644)
    if not throwaway:
        _commit_secrets_file(deployment)


def _commit_secrets_file(deployment: str) -> None:
    """Drop the .gitignore lines that kept throwaway secrets out of git."""
    ignore = paths.deployment_root(deployment) / ".gitignore"
    if not ignore.is_file():
        return
    lines = ignore.read_text().splitlines(keepends=True)
    target = f"pillar/secrets/{deployment}.sls"
    kept = [line for i, line in enumerate(lines)
            if line.strip() != target
            and not (line.startswith("# secrets encrypted to this machine's throwaway key")
                     and i + 1 < len(lines) and lines[i + 1].strip() == target)]
    if kept != lines:
        ignore.write_text("".join(kept))


def load_entries(deployment: str) -> dict[str, Any]:
    """{name: entry} of the secrets file as YAML gives them (nothing decrypted, no entry
    checked); {} when the file does not exist."""
    path = secrets_file(deployment)
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text().removeprefix(HEADER)) or {}
    except yaml.YAMLError as exc:
        raise SecretsError(f"{shown(path)}: not valid YAML ({exc.__class__.__name__})") from None
    section = data.get("secrets") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(section, dict | None):
        raise SecretsError(f"{shown(path)}: secrets: must be a mapping of name to gpg message")
    return {str(k): v for k, v in (section or {}).items()}


def read_encrypted(deployment: str) -> dict[str, str]:
    """{name: armored PGP message} from the deployment's secrets file (not decrypted)."""
    return {k: str(v) for k, v in load_entries(deployment).items()}


def write_entries(deployment: str, entries: dict[str, str]) -> None:
    """Replace the secrets file with ``entries`` (ciphertext only), 0600, atomically."""
    body = yaml.safe_dump({"secrets": dict(sorted(entries.items()))}, default_style="|")
    write_atomic(secrets_file(deployment), HEADER + body, 0o600)
