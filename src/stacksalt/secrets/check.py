"""``stacksalt secrets check``: every referenced secret is there, parses, and is encrypted
to the pinned master key only; with a decrypt callable, each one also decrypts.

The two halves are separate so that the decrypt half can run where the private key is
(the salt master, with :func:`gnupg_decryptor` on its ``/etc/salt/gpgkeys``), while the
first half needs only the public key: recipients are read from the messages' packets
without decrypting (:func:`stacksalt.secrets.keys.recipients`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stacksalt import saltmodules
from stacksalt.secrets import keys, store
from stacksalt.secrets.throwaway import SECRETS_PILLAR

# decrypt(armored, where) -> plaintext; raises with a one-line message naming ``where``
Decrypt = Callable[[str, str], str]


def gnupg_decryptor(gnupg_home: str) -> Decrypt:
    """A decrypt callable with the keyring at ``gnupg_home``: the master's own ext_pillar
    code (formulas/_pillar/stacksalt_secrets.py: ciphertext on stdin, plaintext on stdout)."""
    rule = saltmodules.load(SECRETS_PILLAR)

    def decrypt(armored: str, where: str) -> str:
        return rule.decrypt(armored, gnupg_home, where)

    return decrypt


def missing_problems(entries: Mapping[str, Any], refs: Mapping[str, list[str]],
                     where: str) -> list[str]:
    out = []
    for name in sorted(set(refs) - set(entries)):
        users = refs[name]
        more = f" and {len(users) - 1} more" if len(users) > 1 else ""
        out.append(f"{where}: secrets:{name}: missing (referenced by {users[0]}{more})")
    return out


def entry_problem(name: str, entry: Any, pinned_ids: set[str] | None, pinned: str | None,
                  where: str) -> str | None:
    """What is wrong with one entry without any private key: it does not parse, or it is
    not encrypted to exactly the pinned key (``pinned_ids``: its long key IDs; None skips
    that part)."""
    key = f"{where}: secrets:{name}"
    if not isinstance(entry, str) or keys.MESSAGE_ARMOR not in entry:
        return f"{key}: does not parse: not an armored gpg message"
    got = set(keys.recipients(entry))
    if not got:
        return f"{key}: does not parse: gpg finds no valid OpenPGP data in it"
    if pinned_ids is not None and not got <= pinned_ids:
        others = ", ".join(sorted(got - pinned_ids))
        also = "also " if got & pinned_ids else ""
        return (f"{key}: {also}encrypted to key ID {others}, not only to the pinned master "
                f"key {pinned}")
    return None


def decrypt_problems(entries: Mapping[str, Any], decrypt: Decrypt, where: str) -> list[str]:
    """Problems of decrypting each entry with ``decrypt`` (the values are dropped)."""
    out = []
    for name, entry in sorted(entries.items()):
        if not isinstance(entry, str):
            continue
        key = f"{where}: secrets:{name}"
        try:
            value = decrypt(entry, key)
        except Exception as exc:  # noqa: BLE001 - any decrypt failure is one line of the report
            out.append(str(exc).splitlines()[0] if str(exc) else f"{key}: does not decrypt")
            continue
        if not value:
            out.append(f"{key}: decrypts to an empty value")
    return out


def problems(deployment: str, refs: Mapping[str, list[str]],
             decrypt: Decrypt | None = None) -> list[str]:
    """Every problem of the deployment's secrets, one line each. Without ``decrypt``, a
    deployment whose pinned key is a throwaway key here is decrypted locally."""
    where = store.shown(store.secrets_file(deployment))
    out: list[str] = []
    try:
        entries = store.load_entries(deployment)
    except store.SecretsError as exc:
        return [str(exc)]
    pinned = pinned_ids = None
    try:
        pinned = store.pinned_fingerprint(deployment)
        if pinned is None:
            out.append(f"{store.shown(store.config_file(deployment))}: secrets:master_key: "
                       f"no master key is pinned: {keys.IMPORT_HINT}")
        else:
            pinned_ids = keys.key_ids(deployment, pinned)
    except store.SecretsError as exc:
        out.append(str(exc))
    out += missing_problems(entries, refs, where)
    sound = {}
    for name, entry in sorted(entries.items()):
        problem = entry_problem(name, entry, pinned_ids, pinned, where)
        if problem:
            out.append(problem)
        else:
            sound[name] = entry
    if decrypt is None and pinned and keys.is_throwaway(deployment, pinned):
        decrypt = gnupg_decryptor(str(store.keyring_dir(deployment)))
    if decrypt is not None:
        out += decrypt_problems(sound, decrypt, where)
    return out
