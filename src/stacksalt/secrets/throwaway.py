"""Throwaway secrets for test deployments (``stacksalt secrets generate``), and the rule
that makes a new value for a name (also used by ``rotate``).

:func:`generate` makes a throwaway gpg key under ``.stacksalt/<deployment>/gpgkeys``, pins
its fingerprint like ``import-key`` pins a master's, and encrypts a random value for every
referenced name that has none (a name ending in ``_hash`` gets a crypt(3) hash, one
containing ``_encryption_key`` 32 random bytes in base64, one ending in ``_key`` an RSA
private key PEM); values already present are kept, so converging again changes nothing.
A deployment whose pinned key is a real master's (no secret key here) is refused.
"""

from __future__ import annotations

import base64
import secrets as pysecrets
import subprocess
from pathlib import Path

from stacksalt import saltmodules
from stacksalt.deployment import Deployment
from stacksalt.secrets import keys, store

SECRETS_PILLAR = Path("_pillar") / "stacksalt_secrets.py"


def references(dep: Deployment) -> dict[str, list[str]]:
    """{secret name: ['node: key:path', ...]} for every secret a node's formula keys
    reference (the rule of the master's secrets ext_pillar, formulas/_pillar/)."""
    rule = saltmodules.load(SECRETS_PILLAR)
    refs: dict[str, list[str]] = {}
    for node in dep.node_names:
        for name, keys_ in rule.referenced(dep.parameters(node)).items():
            refs.setdefault(name, []).extend(f"{node}: {key}" for key in keys_)
    return refs


def _new_value(name: str) -> str:
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


def generate(deployment: str) -> tuple[list[str], list[str]]:
    """Make sure every referenced secret exists; returns (added, kept) names."""
    dep = Deployment.load(deployment)
    fingerprint = keys.ensure_key(deployment)
    current = store.read_encrypted(deployment)
    where = store.shown(store.secrets_file(deployment))
    added = []
    for name in sorted(references(dep)):
        if name in current:
            continue
        current[name] = keys.encrypt(deployment, _new_value(name), fingerprint,
                                     f"{where}: secrets:{name}")
        added.append(name)
    if added or not store.secrets_file(deployment).exists():
        store.write_entries(deployment, current)
    return added, sorted(set(current) - set(added))
