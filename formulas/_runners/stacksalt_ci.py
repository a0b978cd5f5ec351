"""Salt runner stacksalt_ci: the master's side of the release pipeline.

The pipeline (``stacksalt ci run``) calls it through salt-api after the model check, the
image builds and the pushes passed:

- ``stacksalt_ci.deploy revision=SHA``: moves the master's model checkout to ``SHA``
  atomically. The revision is exported from the git server's bare repository of the
  deployment (``reclass/``, ``pillar/``, ``stacksalt.yml``) and the product it pins (the
  gitlink ``stacksalt`` of that revision, exported from the product's bare repository)
  into ``<ci_dir>/revisions/<SHA>/``; then the master's base dir, a symlink, is replaced
  by one to the new tree with rename(2). A reader sees the old tree or the new one, never
  a mix; a failed export leaves the base dir where it was. One lock (flock on
  ``<ci_dir>/lock``) serialises every writer, so two pipelines never write at once.
- ``stacksalt_ci.status``: the revision the master serves and the history of moves.
- ``stacksalt_ci.report deployment=NAME report=JSON``: keeps the pipeline's report on the
  master (``<ci_dir>/reports/<SHA>.json`` and ``.txt``, mode 0640) and fires the event
  ``stacksalt/ci/<deployment>/result``.

Configuration, from the master's config (rendered by the salt formula from the model)::

    stacksalt_ci:
      base_dir: /srv/stacksalt          # what file_roots / inventory_base_uri point into
      ci_dir: /srv/stacksalt-ci         # revisions/, reports/, lock, history
      git_dir: /srv/git/<deployment>.git
      product_git_dir: /srv/git/stacksalt.git
      keep: 5                           # revision trees kept (the current one always)

The functions below the Salt entry points take plain paths, so the package's tests run
them against real git repositories.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

__virtualname__ = "stacksalt_ci"

REVISION = re.compile(r"^[0-9a-f]{40}$")
PRODUCT_LINK = "stacksalt"
OWN_PARTS = ("reclass", "pillar", "stacksalt.yml")
PRODUCT_PARTS = ("formulas", "reclass/classes", "images")


class CiError(Exception):
    """One line: what failed, and that the master was left where it was."""


def __virtual__():
    return __virtualname__


# -- the Salt entry points ------------------------------------------------------------------


def _config() -> dict[str, Any]:
    conf = dict(__opts__.get("stacksalt_ci") or {})  # noqa: F821 (injected by Salt)
    missing = [k for k in ("base_dir", "ci_dir", "git_dir", "product_git_dir") if not conf.get(k)]
    if missing:
        raise CiError(f"master config stacksalt_ci: {', '.join(missing)} not set (the salt "
                      "formula renders them from salt:master:ci)")
    return conf


def deploy(revision: str) -> dict[str, Any]:
    conf = _config()
    return move_to(revision, Path(conf["base_dir"]), Path(conf["ci_dir"]),
                   Path(conf["git_dir"]), Path(conf["product_git_dir"]),
                   keep=int(conf.get("keep", 5)))


def status() -> dict[str, Any]:
    conf = _config()
    return current(Path(conf["base_dir"]), Path(conf["ci_dir"]))


def report(deployment: str, report: Any) -> dict[str, Any]:
    conf = _config()
    data = json.loads(report) if isinstance(report, str) else dict(report)
    kept = keep_report(Path(conf["ci_dir"]), data)
    import salt.utils.event  # only on the master

    with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"],  # noqa: F821
                                           listen=False) as event:
        event.fire_event(data, f"stacksalt/ci/{deployment}/result")
    return kept


# -- the work, on plain paths ---------------------------------------------------------------


def _git(git_dir: Path, *args: str) -> bytes:
    proc = subprocess.run(["git", f"--git-dir={git_dir}", *args], capture_output=True)
    if proc.returncode != 0:
        raise CiError(f"git {' '.join(args)} in {git_dir} failed: "
                      f"{proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def _extract(data: bytes, dest: Path) -> None:
    """git archive's tar into ``dest``, refusing any member that would land (or link)
    outside it: tarfile's "data" filter where Python has it (3.11.4+), the same checks by
    hand where it does not (Debian 12's 3.11.2, which the salt master may run)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
            return
        root = os.path.realpath(dest)
        for member in tar.getmembers():
            _check_member(member, root)
        tar.extractall(dest)


def _check_member(member: tarfile.TarInfo, root: str) -> None:
    def inside(path: str) -> bool:
        return os.path.commonpath([root, os.path.realpath(path)]) == root

    target = os.path.join(root, member.name)
    ok = not os.path.isabs(member.name) and inside(target)
    if member.issym():
        ok = ok and not os.path.isabs(member.linkname) and \
            inside(os.path.join(os.path.dirname(target), member.linkname))
    elif member.islnk():
        ok = ok and inside(os.path.join(root, member.linkname))
    elif not (member.isfile() or member.isdir()):
        ok = False
    if not ok:
        raise CiError(f"archive member {member.name!r} would land outside {root}; nothing "
                      "was moved")


@contextlib.contextmanager
def locked(ci_dir: Path, wait_s: float = 600):
    """The one writer of the master's checkout (flock; waits for a running pipeline)."""
    ci_dir.mkdir(parents=True, exist_ok=True)
    with open(ci_dir / "lock", "w") as fh:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise CiError(f"{ci_dir}/lock: another pipeline has held it for "
                                  f"{wait_s:.0f} s; the master was left where it was") from None
                time.sleep(0.2)
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def export(revision: str, dest: Path, git_dir: Path, product_git_dir: Path) -> str:
    """The deployment repository at ``revision`` with its pinned product under ``dest``;
    returns the product commit it pins."""
    own = [p for p in OWN_PARTS
           if _git(git_dir, "ls-tree", revision, p).strip()]
    if "reclass" not in own:
        raise CiError(f"revision {revision} of {git_dir} has no reclass/: not a deployment "
                      "repository")
    gitlink = _git(git_dir, "ls-tree", revision, PRODUCT_LINK).decode().split()
    if len(gitlink) < 3 or gitlink[1] != "commit":
        raise CiError(f"revision {revision} of {git_dir} pins no stacksalt (no submodule "
                      f"{PRODUCT_LINK})")
    pin = gitlink[2]
    _extract(_git(git_dir, "archive", "--format=tar", revision, *own), dest)
    product = dest / PRODUCT_LINK
    product.mkdir()
    try:
        data = _git(product_git_dir, "archive", "--format=tar", pin, *PRODUCT_PARTS)
    except CiError as exc:
        raise CiError(f"stacksalt commit {pin} pinned by {revision} is not in "
                      f"{product_git_dir}: push it there first ({exc})") from None
    _extract(data, product)
    return pin


def current(base_dir: Path, ci_dir: Path) -> dict[str, Any]:
    target = os.readlink(base_dir) if base_dir.is_symlink() else None
    if target and Path(target).parent != ci_dir / "revisions":
        target = None  # a checkout the pipeline did not deploy (the lab's, before a push)
    history = []
    if (ci_dir / "history").is_file():
        history = [json.loads(line) for line in (ci_dir / "history").read_text().splitlines()
                   if line.strip()]
    return {"revision": Path(target).name if target else None, "history": history}


def move_to(revision: str, base_dir: Path, ci_dir: Path, git_dir: Path,
            product_git_dir: Path, keep: int = 5) -> dict[str, Any]:
    """Export ``revision`` (if not yet there) and switch ``base_dir`` to it atomically."""
    if not REVISION.match(revision or ""):
        raise CiError(f"revision {revision!r}: give the full 40-hex commit id")
    if base_dir.exists() and not base_dir.is_symlink():
        raise CiError(f"{base_dir} is a real directory, not the pipeline's symlink: move it "
                      "away once (the pipeline then owns it)")
    with locked(ci_dir):
        revisions = ci_dir / "revisions"
        revisions.mkdir(parents=True, exist_ok=True)
        tree = revisions / revision
        pin = None
        if not tree.is_dir():
            tmp = revisions / f".{revision}.{os.getpid()}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            try:
                pin = export(revision, tmp, git_dir, product_git_dir)
                os.chmod(tmp, 0o750)
                os.rename(tmp, tree)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        before = current(base_dir, ci_dir)["revision"]
        link = base_dir.with_name(f".{base_dir.name}.{os.getpid()}.new")
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(tree)
        os.replace(link, base_dir)  # rename(2): atomic for every reader
        entry = {"time": time.time(), "from": before, "to": revision, "product": pin}
        with open(ci_dir / "history", "a") as fh:
            fh.write(json.dumps(entry) + "\n")
        _prune(revisions, revision, keep)
    return {"previous": before, "revision": revision, "changed": before != revision}


def _prune(revisions: Path, keep_rev: str, keep: int) -> None:
    trees = sorted((p for p in revisions.iterdir() if p.is_dir() and REVISION.match(p.name)),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [t for t in trees if t.name != keep_rev][max(keep - 1, 0):]:
        shutil.rmtree(old, ignore_errors=True)


def keep_report(ci_dir: Path, data: dict[str, Any]) -> dict[str, str]:
    """Write the report as JSON and as text (the ``text`` field, or a JSON dump)."""
    rev = str(data.get("revision") or "unknown")
    if not re.match(r"^[0-9a-f]{7,40}$|^unknown$", rev):
        raise CiError(f"report revision {rev!r} is not a commit id")
    reports = ci_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    out = {}
    for suffix, body in (("json", json.dumps(data, indent=2, sort_keys=True) + "\n"),
                         ("txt", str(data.get("text") or json.dumps(data, indent=2)) + "\n")):
        path = reports / f"{rev}.{suffix}"
        tmp = path.with_suffix(f".{suffix}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w") as fh:
            fh.write(body)
        os.replace(tmp, path)
        out[suffix] = str(path)
    latest = reports / "latest.json"
    with contextlib.suppress(FileNotFoundError):
        latest.unlink()
    latest.symlink_to(f"{rev}.json")
    return out
