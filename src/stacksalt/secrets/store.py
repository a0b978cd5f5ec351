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

HEADER = "#!yaml|gpg\n"
PIN_KEY = ("secrets", "master_key")
FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")


class SecretsError(Exception):
    """Bad input or state: one line naming the file and key; nothing was written."""


def keyring_dir(deployment: str) -> Path:
    return paths.state_dir() / deployment / "gpgkeys"


def secrets_file(deployment: str) -> Path:
    return paths.pillar_dir() / "secrets" / f"{deployment}.sls"


def config_file(deployment: str) -> Path:
    """The deployment's stacksalt.yml (the pinned master key lives under ``secrets:``)."""
    return paths.state_dir() / deployment / "stacksalt.yml"


def shown(path: Path) -> str:
    """A path as messages show it: relative to the checkout when it is inside."""
    try:
        return str(path.resolve().relative_to(paths.repo_root()))
    except ValueError:
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


def _load_config(deployment: str) -> dict[str, Any]:
    path = config_file(deployment)
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
    """The fingerprint every secret of the deployment is encrypted to, or None."""
    value = (_load_config(deployment).get(PIN_KEY[0]) or {}).get(PIN_KEY[1])
    if value is None:
        return None
    if not isinstance(value, str) or not FINGERPRINT.match(value.replace(" ", "").upper()):
        raise SecretsError(f"{shown(config_file(deployment))}: {':'.join(PIN_KEY)}: "
                           f"must be a 40-hex-digit gpg fingerprint, not {value!r}")
    return value.replace(" ", "").upper()


def pin_fingerprint(deployment: str, fpr: str) -> None:
    """Pin ``fpr`` under ``secrets:master_key``, keeping every other key of the file and
    its comments (ruamel.yaml's round trip: the file may be a hand-written one)."""
    fpr = fpr.replace(" ", "").upper()
    path = config_file(deployment)
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
