"""Install chosen members of a downloaded release archive (tar, gzip or not).

State ``stacksalt_archive.installed`` takes a local archive (downloaded and checked
against its pinned sha256 by a ``file.managed`` it requires) and a map
``{member: destination}``; for each member it compares the sha256 of the member's bytes
with the installed file's, and its mode and owner, and writes only what differs
(a temporary file in the destination's directory, then a rename: a running binary is
replaced, never truncated). Nothing else of the archive is extracted. An archive that
lacks a member fails the state before anything is written. A second run with the same
archive changes nothing; ``test=True`` lists what would be written.

The functions above ``installed`` are pure (no Salt): the fast tests run them on
archives they build.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile

__virtualname__ = "stacksalt_archive"


def __virtual__():
    return __virtualname__


def member_name(name: str) -> str:
    """A member's path without a leading ``./`` (upstream CNI archives have one)."""
    while name.startswith("./"):
        name = name[2:]
    return name


def read_members(archive: str, wanted: list[str]) -> dict[str, bytes]:
    """{member: its bytes} for each of ``wanted``; ValueError naming what is missing."""
    want = {member_name(m) for m in wanted}
    found: dict[str, bytes] = {}
    with tarfile.open(archive, "r:*") as tar:
        for info in tar:
            name = member_name(info.name)
            if name in want and info.isfile():
                found[name] = tar.extractfile(info).read()
    missing = sorted(want - set(found))
    if missing:
        raise ValueError(f"{archive} has no member {', '.join(missing)}")
    return found


def sha256_file(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None


def differences(data: bytes, dest: str, mode: int, uid: int, gid: int) -> list[str]:
    """What is wrong with the installed ``dest`` (empty: it is current)."""
    try:
        st = os.stat(dest)
    except FileNotFoundError:
        return ["missing"]
    out = []
    if sha256_file(dest) != hashlib.sha256(data).hexdigest():
        out.append("content")
    if st.st_mode & 0o7777 != mode:
        out.append(f"mode {st.st_mode & 0o7777:04o}")
    if (st.st_uid, st.st_gid) != (uid, gid):
        out.append(f"owner {st.st_uid}:{st.st_gid}")
    return out


def write(data: bytes, dest: str, mode: int, uid: int, gid: int) -> None:
    """``dest`` with ``data``, atomically (a temporary file beside it, then a rename)."""
    directory = os.path.dirname(dest) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.chown(tmp, uid, gid)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def install(archive: str, members: dict[str, str], mode: int = 0o755, uid: int = 0,
            gid: int = 0, test: bool = False) -> dict[str, str]:
    """{destination: why it was (or, with test, would be) written}; ValueError if the
    archive lacks a member (nothing is written then)."""
    data = read_members(archive, list(members))
    changes = {}
    for member, dest in sorted(members.items(), key=lambda kv: kv[1]):
        wrong = differences(data[member_name(member)], dest, mode, uid, gid)
        if not wrong:
            continue
        if not test:
            write(data[member_name(member)], dest, mode, uid, gid)
        changes[dest] = f"{member} ({', '.join(wrong)})"
    return changes


def installed(name, archive, members, mode="0755"):
    """Install ``members`` ({member path in the archive: destination}) of ``archive``.

    name
        what is installed (for the state's comment), e.g. ``containerd 1.7.28``
    archive
        the local archive file
    mode
        of every installed file (owner root:root)
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    test = bool(__opts__.get("test"))  # noqa: F821 - Salt's dunder
    try:
        changes = install(archive, dict(members), int(str(mode), 8), test=test)
    except (OSError, ValueError, tarfile.TarError) as exc:
        ret.update(result=False, comment=f"{name}: {exc}")
        return ret
    if not changes:
        ret["comment"] = f"{name}: {len(members)} files installed and current"
    elif test:
        ret.update(result=None, changes={"would install": changes},
                   comment=f"{name}: {len(changes)} files would be installed")
    else:
        ret.update(changes={"installed": changes},
                   comment=f"{name}: {len(changes)} files installed")
    return ret
