"""Secrets: gpg-encrypted pillar files, and throwaway ones for test deployments.

A key of the model whose name ends in ``_secret`` (or a value of a ``secret_env`` map,
``{ENV_VAR: name}``) names an entry of the deployment's
``secrets`` pillar (``pillar/secrets/<deployment>.sls``, rendered ``#!yaml|gpg``).
For a test deployment such as ``lab``, :func:`generate` makes a throwaway gpg key under
``.stacksalt/<deployment>/gpgkeys`` and a random value for every referenced name (a name
ending in ``_hash`` gets a crypt(3) hash, one containing ``_encryption_key`` 32 random bytes
in base64, one ending in ``_key`` an RSA private key PEM); values
already present are kept, so converging again changes nothing. No secret and no private
key is ever written into the git tree's tracked files.
"""

from __future__ import annotations

import base64
import secrets as pysecrets
import subprocess
from pathlib import Path

import gnupg
import yaml

from stacksalt import paths, saltmodules
from stacksalt.deployment import Deployment

SECRETS_PILLAR = Path("_pillar") / "stacksalt_secrets.py"
HEADER = "#!yaml|gpg\n"


def keyring_dir(deployment: str) -> Path:
    return paths.state_dir(deployment) / "gpgkeys"


def secrets_file(deployment: str) -> Path:
    return paths.pillar_dir(deployment) / "secrets" / f"{deployment}.sls"


def references(dep: Deployment) -> dict[str, list[str]]:
    """{secret name: ['node: key:path', ...]} for every secret a node's formula keys
    reference (the rule of the master's secrets ext_pillar, formulas/_pillar/)."""
    rule = saltmodules.load(SECRETS_PILLAR)
    refs: dict[str, list[str]] = {}
    for node in dep.node_names:
        for name, keys in rule.referenced(dep.parameters(node)).items():
            refs.setdefault(name, []).extend(f"{node}: {key}" for key in keys)
    return refs


def _gpg(deployment: str) -> gnupg.GPG:
    home = keyring_dir(deployment)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    home.chmod(0o700)
    return gnupg.GPG(gnupghome=str(home))


def ensure_key(deployment: str) -> str:
    """The fingerprint of the deployment's throwaway key, made on first use."""
    gpg = _gpg(deployment)
    keys = gpg.list_keys(secret=True)
    if keys:
        return keys[0]["fingerprint"]
    params = gpg.gen_key_input(
        key_type="RSA",
        key_length=2048,
        name_real=f"stacksalt {deployment} salt master (throwaway)",
        name_email=f"salt@{deployment}.invalid",
        expire_date=0,
        no_protection=True,
    )
    key = gpg.gen_key(params)
    if not key.fingerprint:
        raise RuntimeError(f"gpg could not make a key in {keyring_dir(deployment)}: {key.stderr}")
    return key.fingerprint


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


def read_encrypted(deployment: str) -> dict[str, str]:
    """{name: armored PGP message} from the deployment's secrets file (not decrypted)."""
    path = secrets_file(deployment)
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text().removeprefix(HEADER)) or {}
    return dict(data.get("secrets") or {})


def decrypt_all(deployment: str) -> dict[str, str]:
    """Decrypt every secret of a deployment with its local keyring (tests, operators)."""
    gpg = _gpg(deployment)
    out = {}
    for name, armored in read_encrypted(deployment).items():
        result = gpg.decrypt(armored)
        if not result.ok:
            raise RuntimeError(f"{secrets_file(deployment)}: secrets:{name}: {result.status}")
        out[name] = str(result)
    return out


def generate(deployment: str) -> tuple[list[str], list[str]]:
    """Make sure every referenced secret exists; returns (added, kept) names."""
    dep = Deployment.load(deployment)
    fingerprint = ensure_key(deployment)
    gpg = _gpg(deployment)
    current = read_encrypted(deployment)
    added = []
    for name in sorted(references(dep)):
        if name in current:
            continue
        enc = gpg.encrypt(_new_value(name), fingerprint, always_trust=True, armor=True)
        if not enc.ok:
            raise RuntimeError(f"gpg could not encrypt secret {name}: {enc.status}")
        current[name] = str(enc)
        added.append(name)
    if added or not secrets_file(deployment).exists():
        path = secrets_file(deployment)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = yaml.safe_dump({"secrets": dict(sorted(current.items()))}, default_style="|")
        path.write_text(HEADER + body)
        path.chmod(0o600)
    return added, sorted(set(current) - set(added))


def main_generate(deployment: str) -> int:
    added, kept = generate(deployment)
    print(
        f"{secrets_file(deployment)}: {len(added)} added, {len(kept)} kept; "
        f"keyring {keyring_dir(deployment)}"
    )
    return 0
