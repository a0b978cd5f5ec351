"""gpg keys: the deployment's local keyring, the master's imported public key, the
throwaway key of a test deployment, encryption to the pinned key and recipient listing.

Values only travel on stdin: python-gnupg feeds gpg's stdin from memory, and the recipient
(a fingerprint, which is public) is the only thing on gpg's command line.
"""

from __future__ import annotations

import tempfile

import gnupg

from stacksalt.secrets.store import (
    SecretsError,
    config_file,
    keyring_dir,
    pin_fingerprint,
    pinned_fingerprint,
    shown,
)

PUBLIC_ARMOR = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
PRIVATE_ARMOR = "-----BEGIN PGP PRIVATE KEY BLOCK-----"
MESSAGE_ARMOR = "-----BEGIN PGP MESSAGE-----"
IMPORT_HINT = "run `stacksalt secrets import-key` first"


def gpg_for(deployment: str) -> gnupg.GPG:
    home = keyring_dir(deployment)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    home.chmod(0o700)
    return gnupg.GPG(gnupghome=str(home))


def _scratch(fn):
    """Run ``fn(gpg)`` with an empty throwaway gnupg home: nothing it reads can use, or
    land in, the deployment's keyring."""
    with tempfile.TemporaryDirectory(prefix="stacksalt-gpg-") as home:
        return fn(gnupg.GPG(gnupghome=home))


def secret_fingerprints(deployment: str) -> set[str]:
    return {k["fingerprint"] for k in gpg_for(deployment).list_keys(secret=True)}


def is_throwaway(deployment: str, fpr: str) -> bool:
    """A key whose secret half is in the local keyring: only test deployments have one."""
    return fpr in secret_fingerprints(deployment)


def key_ids(deployment: str, fpr: str) -> set[str]:
    """The long key IDs (primary and subkeys) a message to ``fpr`` can name."""
    found = [k for k in gpg_for(deployment).list_keys() if k["fingerprint"] == fpr]
    if not found:
        raise SecretsError(
            f"{shown(config_file(deployment))}: secrets:master_key: the pinned key {fpr} is "
            f"not in {shown(keyring_dir(deployment))}: {IMPORT_HINT}")
    key = found[0]
    return {key["keyid"], *(sub[0] for sub in key.get("subkeys", []))}


def import_key(deployment: str, armored: str, source: str, replace: bool = False) -> str:
    """Import the salt master's public key into the deployment's keyring and pin it;
    returns its fingerprint. Refuses private keys, several keys, keys that cannot encrypt,
    and a different key than the pinned one unless ``replace``."""
    if PRIVATE_ARMOR in armored:
        raise SecretsError(f"{source}: holds a private key: import only the master's public "
                           "key (`gpg --export --armor` on the master)")
    scanned = _scratch(lambda g: list(g.scan_keys_mem(armored)))
    if any(k.get("type") == "sec" for k in scanned):
        raise SecretsError(f"{source}: holds a private key: import only the master's public "
                           "key (`gpg --export --armor` on the master)")
    if not scanned or PUBLIC_ARMOR not in armored:
        raise SecretsError(f"{source}: no armored gpg public key found "
                           "(`gpg --export --armor` on the master prints one)")
    if len(scanned) > 1:
        fprs = ", ".join(k["fingerprint"] for k in scanned)
        raise SecretsError(f"{source}: holds {len(scanned)} keys ({fprs}): "
                           "export only the salt master's key")
    key = scanned[0]
    fpr = key["fingerprint"]
    if key.get("trust") in ("e", "r") or "E" not in key.get("cap", ""):
        state = {"e": "is expired", "r": "is revoked"}.get(key.get("trust"), "cannot encrypt")
        raise SecretsError(f"{source}: key {fpr} {state}")
    pinned = pinned_fingerprint(deployment)
    if pinned and pinned != fpr and not replace:
        raise SecretsError(
            f"{shown(config_file(deployment))}: secrets:master_key: already pins {pinned}; "
            f"{source} holds {fpr}: pass --replace to pin the new key (then re-encrypt "
            "every secret with `stacksalt secrets set` or `rotate`)")
    result = gpg_for(deployment).import_keys(armored)
    if fpr not in (result.fingerprints or []):
        raise SecretsError(f"{source}: gpg could not import key {fpr} into "
                           f"{shown(keyring_dir(deployment))}: {result.summary()}")
    pin_fingerprint(deployment, fpr)
    return fpr


def ensure_key(deployment: str) -> str:
    """The fingerprint of the deployment's throwaway key (made on first use), pinned.

    Refuses a deployment whose pinned key has no secret half here: that is a real master's
    key, and random values for it are not what an operator wants."""
    gpg = gpg_for(deployment)
    own = [k["fingerprint"] for k in gpg.list_keys(secret=True)]
    pinned = pinned_fingerprint(deployment)
    if pinned:
        if pinned not in own:
            raise SecretsError(
                f"{shown(config_file(deployment))}: secrets:master_key: {pinned} is the salt "
                "master's key (no secret key in the local keyring): generate makes throwaway "
                "keys for test deployments only; use `stacksalt secrets set` or `rotate`")
        return pinned
    if own:
        fpr = own[0]
    else:
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
            raise RuntimeError(
                f"gpg could not make a key in {keyring_dir(deployment)}: {key.stderr}")
        fpr = key.fingerprint
    pin_fingerprint(deployment, fpr, throwaway=True)
    return fpr


def recipient(deployment: str, throwaway_ok: bool = False) -> str:
    """The fingerprint to encrypt to: the pinned one (with ``throwaway_ok``, an unpinned
    test deployment's throwaway key, which is then pinned)."""
    pinned = pinned_fingerprint(deployment)
    if pinned:
        key_ids(deployment, pinned)  # the key must be in the keyring
        return pinned
    if throwaway_ok and secret_fingerprints(deployment):
        return ensure_key(deployment)
    raise SecretsError(f"{shown(config_file(deployment))}: secrets:master_key: no master key "
                       f"is pinned: {IMPORT_HINT}")


def encrypt(deployment: str, value: str, fpr: str, where: str) -> str:
    """An armored message of ``value`` to ``fpr`` only (no encrypt-to of any gpg.conf)."""
    enc = gpg_for(deployment).encrypt(value, [fpr], always_trust=True, armor=True,
                                      extra_args=["--no-encrypt-to"])
    if not enc.ok:
        raise SecretsError(f"{where}: gpg could not encrypt to {fpr}: {enc.status}")
    armored = str(enc)
    got = recipients(armored)
    if not got or not set(got) <= key_ids(deployment, fpr):
        raise SecretsError(f"{where}: gpg encrypted to {got}, not only to {fpr}")
    return armored


def recipients(armored: str) -> list[str]:
    """The long key IDs an armored message is encrypted to, read from its packets without
    decrypting (``gpg --decrypt --list-only`` in an empty gnupg home); [] when it is no
    valid OpenPGP message (bad armor, CRC error)."""
    return _scratch(lambda g: list(g.get_recipients(armored)))
