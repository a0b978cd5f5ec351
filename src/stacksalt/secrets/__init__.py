"""Secrets: gpg-encrypted pillar files, encrypted to the salt master's own key.

A key of the model whose name ends in ``_secret`` (or a value of a ``secret_env`` map,
``{ENV_VAR: name}``) names an entry of the deployment's ``secrets`` pillar
(``pillar/secrets/<deployment>.sls``, rendered ``#!yaml|gpg``: armored gpg messages).

For a real deployment, ``import-key`` imports the master's public key into the local
keyring (``keyring_dir``) and pins its fingerprint (``config_file``: ``secrets:
master_key``); ``set`` and ``rotate`` encrypt to that key only; ``list`` and ``check``
report names, references and problems, never values. For a test deployment such as
``lab``, ``generate`` makes a throwaway key pair (pinned the same way) and random values.
No secret and no private key is ever written into the git tree's tracked files, and no
plaintext into any file.

Modules: ``store`` (files, pin, atomic writes), ``keys`` (gpg), ``throwaway`` (generate's
key and values, references), ``check``, ``commands`` (the CLI's subcommands).
"""

from __future__ import annotations

from stacksalt.secrets.check import gnupg_decryptor, problems
from stacksalt.secrets.commands import (
    list_lines,
    main_check,
    main_generate,
    main_import_key,
    main_list,
    main_rotate,
    main_set,
    read_value,
    rotate,
    set_secret,
)
from stacksalt.secrets.keys import ensure_key, import_key, recipients
from stacksalt.secrets.store import (
    HEADER,
    SecretsError,
    config_file,
    keyring_dir,
    pin_fingerprint,
    pinned_fingerprint,
    read_encrypted,
    secrets_file,
    throwaway_pin_file,
)
from stacksalt.secrets.throwaway import (
    SECRETS_PILLAR,
    _new_value,
    decrypt_all,
    generate,
    references,
    ssh_key_file,
)

__all__ = [
    "HEADER", "SECRETS_PILLAR", "SecretsError", "_new_value", "config_file", "decrypt_all",
    "ensure_key", "generate", "gnupg_decryptor", "import_key", "keyring_dir", "list_lines",
    "main_check", "main_generate", "main_import_key", "main_list", "main_rotate", "main_set",
    "pin_fingerprint", "pinned_fingerprint", "problems", "read_encrypted", "read_value",
    "recipients", "references", "rotate", "secrets_file", "set_secret", "ssh_key_file",
    "throwaway_pin_file",
]
