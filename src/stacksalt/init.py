"""`stacksalt init NAME [--from EXAMPLE] [--product URL] [DIR]`: a new deployment repository.

It copies one of the examples shipped under ``deployments/`` (its cluster classes, nodes and
pillar top file, renamed to NAME), pins the stacksalt checkout as a git submodule at
``stacksalt/`` (the commit this package's checkout is at, or ``--product``'s HEAD), links
``reclass/classes/service`` and ``system`` into it, and commits. Nothing of the product's
classes or formulas is copied: they are reached through the submodule, so a stacksalt
upgrade is one ``git -C stacksalt checkout`` and a commit of the new pin.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from stacksalt import paths
from stacksalt.errors import StacksaltError
from stacksalt.repo import DeploymentRepo, check_name

SHARED = ("service", "system")

README = """\
# Deployment {name}

A stacksalt deployment repository: the reclass model and the encrypted secrets of the
deployment `{name}`. Made by `stacksalt init {name} --from {source}`.

| path | what it is | whose |
|---|---|---|
| `stacksalt.yml` | the deployment's name, the salt master key's fingerprint | deployment |
| `reclass/classes/cluster/{name}/` | addresses, versions, secret references, once | deployment |
| `reclass/nodes/{name}/` | one file per node: its role class and hostname | deployment |
| `pillar/secrets/{name}.sls` | secrets, gpg-encrypted to the salt master's key | deployment |
| `stacksalt/` | stacksalt (formulas, images, service/system classes), a git submodule | product |
| `reclass/classes/service`, `system` | symlinks into `stacksalt/` | product |

Every `stacksalt` command run in this folder works on this deployment:

```sh
git submodule update --init      # after a clone: fetch the pinned stacksalt
stacksalt model check            # every error of the model, one line each
stacksalt secrets import-key master.asc   # the salt master's public key (gpg --export --armor)
printf %s "$VALUE" | stacksalt secrets set NAME   # a secret, from stdin, encrypted to it
stacksalt secrets list | check   # names only; every referenced secret present
```

Before the first push, set the addresses in `reclass/classes/cluster/{name}/nodes.yml` and
`init.yml` (copied from the `{source}` example: its domain, networks and hosts).

To move to another stacksalt release: `git -C stacksalt fetch && git -C stacksalt checkout
REV && git add stacksalt && git commit`, then `stacksalt upgrade plan HEAD~1 HEAD`.
"""

# A new repository's stacksalt.yml: no master key yet (`stacksalt secrets import-key` pins
# it; until then `secrets generate` uses a throwaway key of this machine).
CONFIG = """\
# A stacksalt deployment repository: this file marks its root.
# Every `stacksalt` command run in this folder (or with `-C` pointing here) works on it.
deployment: {name}
# ./stacksalt is the stacksalt checkout whose formulas, service and system classes and
# image definitions this deployment uses: a git submodule, pinned to one commit.
secrets:
  # fingerprint of the salt master's gpg key the secrets are encrypted to
  # (`stacksalt secrets import-key`); null: a throwaway key of this machine
  master_key: null
"""

GITIGNORE = """\
# per machine: throwaway gpg keyrings, bookkeeping
.stacksalt/
# half-written secrets files
pillar/secrets/*.tmp
"""
# Secrets encrypted to a throwaway key of this machine are useless anywhere else: ignored
# until `stacksalt secrets import-key` pins the real master's key (which drops this line).
THROWAWAY_IGNORE = ("# secrets encrypted to this machine's throwaway key (dropped by `stacksalt "
                    "secrets import-key`)\npillar/secrets/{name}.sls\n")


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "protocol.file.allow=always", "-c", "user.name=stacksalt init",
         "-c", "user.email=stacksalt@localhost", *args],
        cwd=cwd, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise StacksaltError(f"git {' '.join(args)} in {cwd} failed: "
                             f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return proc.stdout.strip()


def _renamed(text: str, old: str, new: str) -> str:
    text = re.sub(rf"\bcluster\.{re.escape(old)}(?=[.\s]|$)", f"cluster.{new}", text, flags=re.M)
    return re.sub(rf"^(\s*cluster_name:\s*){re.escape(old)}\s*$", rf"\g<1>{new}", text,
                  flags=re.M)


def _copy_renamed(src: Path, dest: Path, old: str, new: str) -> None:
    for path in sorted(src.rglob("*")):
        target = dest / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.suffix == ".yml":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_renamed(path.read_text(), old, new))


def _take_state(example: Path, dest: Path, name: str) -> bool:
    """A repository of the example's own deployment (``init lab --from lab``) serves the
    master that example's lab runs: it takes the example's secrets and this machine's
    state for them (the throwaway key the lab master decrypts with, the lab's admin ssh
    key), and commits the secrets (encrypted to that master's key, as a real repository's
    are to its master's). False when the example has no secrets yet (`stacksalt secrets
    generate` in it, or `stacksalt lab up`, makes them)."""
    secrets_file = example / "pillar" / "secrets" / f"{name}.sls"
    if not secrets_file.is_file():
        return False
    shutil.copy(secrets_file, dest / "pillar" / "secrets" / secrets_file.name)
    state = paths.state_dir(example)
    if state.is_dir():
        shutil.copytree(state, dest / ".stacksalt", symlinks=True,
                        ignore=lambda d, names: [n for n in names if n.startswith("S.")])
    return True


def init(name: str, source: str = "lab", directory: Path | None = None,
         product: str | None = None) -> DeploymentRepo:
    check_name(name, "stacksalt init NAME")
    example = paths.example(source)
    if not (example / paths.CONFIG).is_file():
        raise StacksaltError(f"--from {source}: no such example (examples: "
                             f"{', '.join(paths.examples())})")
    src = DeploymentRepo.load(example)
    dest = Path(directory or name).resolve()
    if dest.exists() and any(dest.iterdir()):
        raise StacksaltError(f"{dest}: exists and is not empty; pick a new folder")
    product_url = product or str(paths.package_checkout())
    dest.mkdir(parents=True, exist_ok=True)
    try:
        _git(dest, "init", "-q", "-b", "main")
        _git(dest, "submodule", "add", "-q", product_url, paths.PRODUCT_LINK)
        commit = _git(dest / paths.PRODUCT_LINK, "rev-parse", "HEAD")
        inv = dest / "reclass"
        _copy_renamed(example / "reclass" / "classes" / "cluster" / source,
                      inv / "classes" / "cluster" / name, source, name)
        _copy_renamed(example / "reclass" / "nodes" / source, inv / "nodes" / name, source, name)
        for shared in SHARED:
            (inv / "classes" / shared).symlink_to(
                Path("..") / ".." / paths.PRODUCT_LINK / "reclass" / "classes" / shared)
        (dest / "pillar" / "secrets").mkdir(parents=True)
        shutil.copy(example / "pillar" / "top.sls", dest / "pillar" / "top.sls")
        readme = example / "pillar" / "secrets" / "README.md"
        if readme.is_file():
            shutil.copy(readme, dest / "pillar" / "secrets" / "README.md")
        (dest / paths.CONFIG).write_text(CONFIG.format(name=name))
        same = name == source and _take_state(example, dest, name)
        (dest / ".gitignore").write_text(
            GITIGNORE + ("" if same else THROWAWAY_IGNORE.format(name=name)))
        (dest / "README.md").write_text(README.format(name=name, source=src.name))
        repo = DeploymentRepo.load(dest)
        _git(dest, "add", "-A")
        _git(dest, "commit", "-q", "-m",
             f"stacksalt init {name} --from {source} (stacksalt {commit[:12]})")
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return repo


def main(name: str, source: str, directory: Path | None, product: str | None) -> int:
    repo = init(name, source, directory, product)
    pin = _git(repo.root / paths.PRODUCT_LINK, "rev-parse", "--short=12", "HEAD")
    print(f"{repo.root}: deployment repository {name!r} made from the {source!r} example, "
          f"stacksalt pinned at {pin}; next: cd {repo.root} && stacksalt model check")
    return 0
