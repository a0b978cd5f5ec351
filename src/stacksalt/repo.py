"""The deployment repository: one git repository per deployment (its ``stacksalt.yml``).

Layout (what `stacksalt init` makes; the shipped examples under ``deployments/`` have the
same, with ``stacksalt`` a symlink to the enclosing checkout instead of a submodule)::

    stacksalt.yml                 deployment name, the master key's fingerprint
    stacksalt/                    the stacksalt checkout, a git submodule pinned to a commit
    reclass/classes/service  ->   stacksalt/reclass/classes/service (symlink)
    reclass/classes/system   ->   stacksalt/reclass/classes/system (symlink)
    reclass/classes/cluster/<name>/   this deployment's cluster classes
    reclass/nodes/<name>/         one file per node
    pillar/top.sls, pillar/secrets/<name>.sls   secrets, gpg-encrypted to the master's key
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stacksalt import paths
from stacksalt.errors import StacksaltError

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
FINGERPRINT = re.compile(r"^[0-9A-F]{40}$")
_KEYS = {"deployment", "secrets"}
_SECRETS_KEYS = {"master_key"}


def check_name(name: str, where: str = "deployment name") -> str:
    if not NAME.match(name or ""):
        raise StacksaltError(
            f"{where}: {name!r} is not a deployment name (lower-case letters, digits and '-', "
            "starting with a letter or digit, at most 31 characters)"
        )
    return name


@dataclass(frozen=True)
class DeploymentRepo:
    root: Path
    name: str

    @property
    def config_file(self) -> Path:
        return self.root / paths.CONFIG

    @classmethod
    def load(cls, root: Path) -> DeploymentRepo:
        root = Path(root).resolve()
        cfg = root / paths.CONFIG
        where = str(cfg)
        try:
            data: Any = yaml.safe_load(cfg.read_text())
        except OSError as exc:
            raise StacksaltError(f"{where}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise StacksaltError(f"{where}{line}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise StacksaltError(f"{where}: must be a mapping with the key 'deployment'")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise StacksaltError(f"{where}: {unknown[0]}: unknown key (known: "
                                 f"{', '.join(sorted(_KEYS))})")
        name = check_name(data.get("deployment"), f"{where}: deployment")
        sec = data.get("secrets") or {}
        if not isinstance(sec, dict) or set(sec) - _SECRETS_KEYS:
            raise StacksaltError(f"{where}: secrets: must be a mapping with only 'master_key'")
        key = sec.get("master_key")
        if key is not None and not FINGERPRINT.match(str(key)):
            raise StacksaltError(f"{where}: secrets:master_key: {key!r} is not a gpg "
                                 "fingerprint (40 upper-case hex digits)")
        nodes = root / "reclass" / "nodes" / name
        if not nodes.is_dir():
            raise StacksaltError(f"{where}: deployment: {name!r} has no nodes folder "
                                 f"({nodes.relative_to(root)})")
        return cls(root, name)

    @classmethod
    def find(cls, start: Path | None = None) -> DeploymentRepo:
        return cls.load(paths.find_repository(Path(start or Path.cwd())))

    def check_deployment(self, given: str | None) -> str:
        """The deployment a command names: this repository's, and no other."""
        if given is not None and given != self.name:
            raise StacksaltError(
                f"{self.config_file}: deployment: this repository is deployment "
                f"{self.name!r}, not {given!r}; run in {given!r}'s repository or -C DIR"
            )
        return self.name
