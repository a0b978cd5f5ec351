"""Deterministic build contexts: a tar whose bytes depend only on the files' content.

Fixed mtime, uid/gid 0, sorted entries: an unchanged image sends the same context, so the
classic builder's cache matches every layer.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from stacksalt.images.errors import ImagesError

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CONTEXT_CA_BUNDLE = "files/host-ca-certificates.crt"
MTIME = 0


class Context:
    """Files of one build context, by path inside the context."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, int]] = {}

    def add_bytes(self, arcname: str, data: bytes, mode: int = 0o644) -> None:
        self.files[arcname] = (data, mode)

    def add_file(self, arcname: str, path: Path) -> None:
        mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
        self.add_bytes(arcname, path.read_bytes(), mode)

    def add_tree(self, arcname: str, directory: Path) -> None:
        """Every file under directory (no caches, no editor droppings)."""
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory)
            if path.is_dir() or any(p in ("__pycache__", ".git") for p in rel.parts):
                continue
            if path.name.endswith((".pyc", "~", ".swp")):
                continue
            self.add_file(f"{arcname}/{rel.as_posix()}" if arcname else rel.as_posix(), path)

    def add_host_ca(self) -> None:
        if not HOST_CA_BUNDLE.is_file():
            raise ImagesError(f"{HOST_CA_BUNDLE} is missing: apt-get install ca-certificates")
        self.add_bytes(CONTEXT_CA_BUNDLE, HOST_CA_BUNDLE.read_bytes())

    def tar(self) -> bytes:
        """The context as an uncompressed tar, byte-for-byte reproducible."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            dirs: set[str] = set()
            for name in sorted(self.files):
                parts = name.split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    d = "/".join(parts[:i])
                    if d not in dirs:
                        dirs.add(d)
                        tar.addfile(_info(d, 0, 0o755, tarfile.DIRTYPE))
                data, mode = self.files[name]
                tar.addfile(_info(name, len(data), mode, tarfile.REGTYPE), io.BytesIO(data))
        return buf.getvalue()


def _info(name: str, size: int, mode: int, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type, info.mtime = size, mode, kind, MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
