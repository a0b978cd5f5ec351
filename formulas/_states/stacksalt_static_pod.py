"""Write a static pod's manifest with a fingerprint of the host files the pod reads.

State ``stacksalt_static_pod.manifest`` takes the pod (``dataset``, as ``file.serialize``
would) and writes it to ``name`` (the kubelet's staticPodPath) with the annotation
``stacksalt.io/config-hash``: the sha256 of every host file the pod reads, as those
files are **when the state runs**. Its ``require`` puts it after the states that write
them, so on the run that renews a certificate (or rewrites a kubeconfig, the encryption
config, kube-proxy's configuration) the manifest changes on that same run and the
kubelet restarts the pod. A hash made while Salt renders the SLS would see the old files
on that run and lag one run behind; this state reads them at apply time instead.

The files a pod reads are found in the pod itself (``host_files``): every hostPath
volume of type File or FileOrCreate that a container mounts read-only (a kubeconfig; a
lock file is mounted read-write), and every absolute path named in a
container's command or args (``--flag=/path``) that lies in a hostPath volume the
container mounts (the certificates, keys and configuration files in the PKI or config
directory). ``files`` adds more. A file that is not there yet counts as absent (a
first test run), never as an error.

Unchanged files give the same annotation, so a second run writes nothing. The file is
written through a temporary file beside it whose name starts with a dot (the kubelet
skips those), then renamed. ``test=True`` reports what would change.

The functions above ``manifest`` are pure (no Salt): the fast tests run them.
"""

from __future__ import annotations

import copy
import hashlib
import os
import tempfile
from collections.abc import Mapping

try:
    import yaml
except ImportError:  # pragma: no cover - Salt always ships PyYAML
    yaml = None

__virtualname__ = "stacksalt_static_pod"

ANNOTATION = "stacksalt.io/config-hash"
FILE_TYPES = ("File", "FileOrCreate")


def __virtual__():
    return __virtualname__


def _under(path: str, directory: str) -> bool:
    directory = directory.rstrip("/")
    return path == directory or path.startswith(directory + "/")


def host_files(pod: dict) -> list[str]:
    """The host paths of the files ``pod`` reads (module docstring), sorted, unique."""
    spec = plain(pod).get("spec") or {}
    host = {v["name"]: v["hostPath"] for v in spec.get("volumes") or []
            if isinstance(v, dict) and isinstance(v.get("hostPath"), dict)}
    out = set()
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        # a file mounted read-only is one the pod reads (a lock file is mounted read-write)
        out |= {host[m["name"]]["path"] for m in c.get("volumeMounts") or []
                if m.get("name") in host and host[m["name"]].get("type") in FILE_TYPES
                and m.get("readOnly")}
        # (path in the container, path on the host) of the hostPath directories it mounts
        # read-only: a path in a read-write one is one it writes (the audit log), and a
        # fingerprint of that would change on every run
        mounts = [(m["mountPath"], host[m["name"]]["path"]) for m in c.get("volumeMounts") or []
                  if m.get("name") in host and host[m["name"]].get("type") not in FILE_TYPES
                  and m.get("readOnly")]
        for arg in list(c.get("command") or []) + list(c.get("args") or []):
            value = str(arg).split("=", 1)[1] if str(arg).startswith("--") and "=" in str(arg) \
                else str(arg)
            if not value.startswith("/"):
                continue
            for inside, outside in mounts:
                if _under(value, inside) and value != inside.rstrip("/"):
                    out.add(outside.rstrip("/") + value[len(inside.rstrip("/")):])
                    break
    return sorted(out)


def fingerprint(paths: list[str], root: str = "") -> str:
    """sha256 over (path, sha256 of its content or "absent") of every path, sorted;
    ``root`` is prepended to each path when reading (the tests' stand-in host)."""
    h = hashlib.sha256()
    for path in sorted(set(paths)):
        try:
            with open(root + path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        except FileNotFoundError:
            digest = "absent"
        h.update(f"{path}\0{digest}\n".encode())
    return h.hexdigest()


def plain(value):
    """``value`` with every mapping a dict and every sequence a list: Salt's SLS loader
    hands OrderedDicts, which YAML's safe dumper refuses."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def annotated(pod: dict, digest: str) -> dict:
    """A copy of ``pod`` with the fingerprint in its annotations."""
    out = copy.deepcopy(plain(pod))
    meta = out.setdefault("metadata", {})
    meta["annotations"] = dict(meta.get("annotations") or {}, **{ANNOTATION: digest})
    return out


def render(pod: dict) -> str:
    """The manifest's text: YAML, keys sorted, so equal pods give equal files."""
    return yaml.safe_dump(pod, default_flow_style=False, sort_keys=True)


def current(path: str) -> tuple[str | None, int | None]:
    """(text, mode) of the manifest on disk, (None, None) when there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        return text, os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None, None


def old_hash(text: str | None) -> str | None:
    try:
        data = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return None
    return (((data or {}).get("metadata") or {}).get("annotations") or {}).get(ANNOTATION) \
        if isinstance(data, dict) else None


def write(path: str, text: str, mode: int) -> None:
    """``path`` with ``text``, atomically (a hidden temporary file beside it, a rename)."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        if os.geteuid() == 0:
            os.chown(tmp, 0, 0)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def plan(path: str, pod: dict, mode: int, files: list[str] | None = None,
         root: str = "") -> dict:
    """What the state does: {text, hash, old_hash, changes: [what differs]} (empty changes:
    the manifest on disk is current)."""
    digest = fingerprint(host_files(pod) + list(files or []), root)
    text = render(annotated(pod, digest))
    old, old_mode = current(path)
    changes = []
    if old is None:
        changes.append("missing")
    else:
        previous = old_hash(old)
        if previous != digest:
            changes.append(f"{ANNOTATION} {previous or '(none)'} -> {digest}")
        if render(annotated(yaml.safe_load(old) or {}, digest)) != text:
            changes.append("spec")
        elif old != text:
            changes.append("format")
        if old_mode != mode:
            changes.append(f"mode {old_mode:04o}")
    return {"text": text, "hash": digest, "old_hash": old_hash(old), "changes": changes}


def manifest(name, dataset, mode="0600", files=None):
    """Write the static pod ``dataset`` to ``name`` with its fingerprint annotation.

    name
        the manifest's path (in the kubelet's staticPodPath)
    dataset
        the pod (a mapping)
    mode
        of the manifest (owner root)
    files
        host files to fingerprint besides those found in the pod
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        p = plan(name, plain(dataset), int(str(mode), 8), files)
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError) as exc:
        ret.update(result=False, comment=f"{name}: {exc}")
        return ret
    if not p["changes"]:
        ret["comment"] = f"{name} is current ({ANNOTATION} {p['hash']})"
        return ret
    changes = {"manifest": ", ".join(p["changes"]), ANNOTATION: p["hash"]}
    if __opts__.get("test"):  # noqa: F821 - Salt's dunder
        ret.update(result=None, changes=changes, comment=f"{name} would be written")
        return ret
    try:
        write(name, p["text"], int(str(mode), 8))
    except OSError as exc:
        ret.update(result=False, comment=f"{name}: {exc}")
        return ret
    ret.update(changes=changes, comment=f"{name} written")
    return ret
