"""ext_pillar: each minion's ``secrets`` pillar holds only the secrets its own model uses.

Runs on the salt master after the reclass ext_pillar (Salt passes it the pillar compiled so
far). A secret is *referenced* by a formula key of the minion's pillar: a key ending in
``_secret`` whose value is the secret's name, or a value of a ``secret_env: {ENV_VAR:
name}`` map (a Kubernetes service-role's environment, rendered into its Secret by the
masters). Keys under ``_param`` (reclass' parameters, which name every secret of the
deployment on every node) and ``_reclass_`` are not references.

Only the referenced entries of ``<secrets_dir>/<cluster name>.sls`` (armored gpg messages,
``#!yaml|gpg``) are decrypted, each once per compile, with the master's keyring
(``gpg_keydir``); a referenced name the file lacks is left out, and the formula that needs
it fails its render naming the model key. The ciphertext goes to gpg on stdin and the
plaintext comes back on stdout: nothing secret is on a command line or in a file.

The same rule serves ``stacksalt secrets`` (which names to generate) and the fast test that
compares every node's secrets with its references: this file is loaded by path there.

Master configuration (rendered by the salt formula from the model)::

    pillar_dirs: [/srv/stacksalt/formulas/_pillar]
    ext_pillar:
      - reclass: {...}
      - stacksalt_secrets: {secrets_dir: /srv/stacksalt/pillar/secrets}
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import yaml

log = logging.getLogger(__name__)

SUFFIX = "_secret"
SECRET_ENV = "secret_env"
CLUSTER_NAME = ("_param", "cluster_name")


class SecretsError(Exception):
    """One line naming the file and key."""


def _walk(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, (*path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, (*path, str(i)))
    else:
        yield path, value


def referenced(pillar: dict[str, Any]) -> dict[str, list[str]]:
    """{secret name: ['formula:key:path', ...]} that this pillar's formula keys reference."""
    refs: dict[str, list[str]] = {}
    for top, value in pillar.items():
        if str(top).startswith("_"):
            continue
        for path, leaf in _walk(value, (str(top),)):
            if not isinstance(leaf, str) or not leaf:
                continue
            if path[-1].endswith(SUFFIX) or (len(path) > 1 and path[-2] == SECRET_ENV):
                refs.setdefault(leaf, []).append(":".join(path))
    return refs


def read_encrypted(path: str) -> dict[str, str]:
    """{name: armored message} of a secrets file (nothing decrypted); {} when absent."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return {}
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SecretsError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    secrets = data.get("secrets") if isinstance(data, dict) else None
    if secrets is None:
        return {}
    if not isinstance(secrets, dict):
        raise SecretsError(f"{path}: secrets: must be a mapping of name to gpg message")
    return {str(k): str(v) for k, v in secrets.items()}


def decrypt(armored: str, gpg_keydir: str, where: str) -> str:
    """One armored gpg message to its plaintext (ciphertext on stdin, never argv)."""
    proc = subprocess.run(
        ["gpg", "--homedir", gpg_keydir, "--batch", "--quiet", "--no-tty", "--decrypt"],
        input=armored.encode(), capture_output=True, check=False,
        env={**os.environ, "GNUPGHOME": gpg_keydir},
    )
    if proc.returncode != 0:
        first = (proc.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise SecretsError(f"{where}: gpg could not decrypt it with {gpg_keydir} ({first})")
    return proc.stdout.decode()


def cluster_name(pillar: dict[str, Any]) -> str:
    value: Any = pillar
    for key in CLUSTER_NAME:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, str) or not value:
        raise SecretsError(
            f"pillar {':'.join(CLUSTER_NAME)} is not set: the cluster class must name the "
            "deployment (it picks the secrets file)")
    return value


def secrets_for(pillar: dict[str, Any], secrets_dir: str, gpg_keydir: str) -> dict[str, str]:
    """The decrypted secrets this pillar references, and no other."""
    refs = referenced(pillar)
    if not refs:
        return {}
    path = os.path.join(secrets_dir, f"{cluster_name(pillar)}.sls")
    encrypted = read_encrypted(path)
    return {name: decrypt(encrypted[name], gpg_keydir, f"{path}: secrets:{name}")
            for name in sorted(refs) if name in encrypted}


def ext_pillar(minion_id: str, pillar: dict[str, Any], secrets_dir: str = "",
               **_: Any) -> dict[str, Any]:
    """Salt's entry point: {'secrets': {...}} for this minion."""
    gpg_keydir = __opts__.get("gpg_keydir", "/etc/salt/gpgkeys")  # type: ignore[name-defined]  # noqa: F821
    if not secrets_dir:
        raise SecretsError("ext_pillar stacksalt_secrets: secrets_dir is not configured")
    values = secrets_for(pillar, secrets_dir, gpg_keydir)
    log.debug("stacksalt_secrets: %s receives %d secrets", minion_id, len(values))
    return {"secrets": values} if values else {}
