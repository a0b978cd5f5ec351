"""Throwaway secrets for test deployments (``stacksalt secrets generate``), and the rule
that makes a new value for a name (also used by ``rotate``).

:func:`generate` makes a throwaway gpg key under ``.stacksalt/<deployment>/gpgkeys``, pins
its fingerprint like ``import-key`` pins a master's, and encrypts a new value for every
referenced name that has none, by the name's suffix:

- ``_ssh_public_key``: an ed25519 key pair made by ssh-keygen; the value is the public key
  line, the private key stays on this machine in ``.stacksalt/ssh/<name>`` (0600, dir
  0700, git-ignored; :func:`ssh_key_file`) and is never printed nor encrypted;
- containing ``_encryption_key``: 32 random bytes in base64;
- ``_key`` (any other): an RSA private key PEM;
- ``_hash``: a crypt(3) SHA-512 hash of a random password;
- anything else: a random password.

Values already present are kept, so converging again changes nothing; except an
``_ssh_public_key`` whose private key file is missing (a fresh clone): a new pair replaces
it. A deployment whose pinned key is a real master's (no secret key here) is refused.
"""

from __future__ import annotations

import base64
import os
import secrets as pysecrets
import subprocess
import tempfile
from pathlib import Path

from stacksalt import paths, saltmodules
from stacksalt.deployment import Deployment
from stacksalt.secrets import keys, store

SECRETS_PILLAR = Path("_pillar") / "stacksalt_secrets.py"
SSH_PUBLIC_KEY = "_ssh_public_key"


def references(dep: Deployment) -> dict[str, list[str]]:
    """{secret name: ['node: key:path', ...]} for every secret a node's formula keys
    reference (the rule of the master's secrets ext_pillar, formulas/_pillar/)."""
    rule = saltmodules.load(SECRETS_PILLAR)
    refs: dict[str, list[str]] = {}
    for node in dep.node_names:
        for name, keys_ in rule.referenced(dep.parameters(node)).items():
            refs.setdefault(name, []).extend(f"{node}: {key}" for key in keys_)
    return refs


def ssh_key_file(deployment: str | Path, name: str) -> Path:
    """Where the private half of secret ``name`` (an ``_ssh_public_key``) is kept on this
    machine: ``<deployment root>/.stacksalt/ssh/<name>`` (git-ignored)."""
    return paths.state_dir(deployment) / "ssh" / name


def _new_ssh_key(deployment: str | Path, name: str) -> str:
    """A new ed25519 pair: the private key replaces ``ssh_key_file`` (0600), the public
    line is returned. ssh-keygen writes into a scratch folder beside it (it would ask
    before overwriting), then the key is moved into place."""
    dest = ssh_key_file(deployment, name)
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest.parent.chmod(0o700)
    with tempfile.TemporaryDirectory(prefix=".new-", dir=dest.parent) as scratch:
        key = Path(scratch) / name
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@stacksalt-lab",
             "-f", str(key)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True,
        )
        public = key.with_name(name + ".pub").read_text().strip()
        key.chmod(0o600)
        os.replace(key, dest)
    return public


def _lost_ssh_key(deployment: str | Path, name: str) -> bool:
    return name.endswith(SSH_PUBLIC_KEY) and not ssh_key_file(deployment, name).is_file()


def _new_value(deployment: str | Path, name: str) -> str:
    """A new value for secret ``name`` of ``deployment``, by the name's suffix (see the
    module's docstring)."""
    if name.endswith(SSH_PUBLIC_KEY):
        return _new_ssh_key(deployment, name)
    if "_encryption_key" in name:
        # an AES-256 key for Kubernetes' EncryptionConfiguration: 32 random bytes, base64
        return base64.b64encode(pysecrets.token_bytes(32)).decode()
    if name.endswith("_key"):
        # an RSA private key (PEM), e.g. the Kubernetes service-account signing key
        out = subprocess.run(
            ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            capture_output=True, text=True, check=True,
        )
        return out.stdout
    password = pysecrets.token_urlsafe(24)
    if name.endswith("_hash"):
        # a crypt(3) SHA-512 hash, as /etc/shadow wants it
        out = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"],
            input=password, capture_output=True, text=True, check=True,
        )
        return out.stdout.strip()
    return password


def decrypt_all(deployment: str) -> dict[str, str]:
    """Decrypt every secret of a deployment with its local keyring (tests, operators)."""
    gpg = keys.gpg_for(deployment)
    out = {}
    for name, armored in store.read_encrypted(deployment).items():
        result = gpg.decrypt(armored)
        if not result.ok:
            raise RuntimeError(
                f"{store.secrets_file(deployment)}: secrets:{name}: {result.status}")
        out[name] = str(result)
    return out


def generate(deployment: str, dep: Deployment | None = None) -> tuple[list[str], list[str]]:
    """Make sure every referenced secret exists; returns (added, kept) names. ``added``
    also holds an ``_ssh_public_key`` whose private key file was missing, replaced by a new
    pair. ``dep``: the deployment's model when the caller has rendered it already."""
    dep = dep or Deployment.load(deployment)
    fingerprint = keys.ensure_key(deployment)
    current = store.read_encrypted(deployment)
    where = store.shown(store.secrets_file(deployment))
    added = []
    for name in sorted(references(dep)):
        if name in current and not _lost_ssh_key(deployment, name):
            continue
        current[name] = keys.encrypt(deployment, _new_value(deployment, name), fingerprint,
                                     f"{where}: secrets:{name}")
        added.append(name)
    if added or not store.secrets_file(deployment).exists():
        store.write_entries(deployment, current)
    return added, sorted(set(current) - set(added))
