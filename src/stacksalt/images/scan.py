"""Secret scan: no secret value of the deployment may be in any of its images.

Scans, per image: every file of every layer (`docker save`; a layer shared by several
images is scanned once), the image config and the inspect data (env, labels, cmd), and
the build history (the commands of every layer).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
from rich.console import Console

from stacksalt import secrets
from stacksalt.images.errors import ImagesError

CHUNK = 8 << 20


@dataclass(frozen=True)
class Finding:
    image: str
    secret: str  # the secret's name, never its value
    where: str  # "layer <digest>: <path>", "config", "history"

    def __str__(self) -> str:
        return f"{self.image}: secret {self.secret} found in {self.where}"


class _Matcher:
    def __init__(self, values: dict[str, str]) -> None:
        usable = {n: v for n, v in values.items() if v and len(v) >= 8}
        short = sorted(set(values) - set(usable))
        if short:
            raise ImagesError(f"secrets {', '.join(short)} are shorter than 8 characters: "
                              "too short to scan for (and to be a secret)")
        self.by_value = {v.encode(): n for n, v in usable.items()}
        self.longest = max((len(v) for v in self.by_value), default=1)
        pattern = b"|".join(re.escape(v) for v in sorted(self.by_value, key=len, reverse=True))
        self.regex = re.compile(pattern) if pattern else None

    def names_in(self, data: bytes) -> set[str]:
        if self.regex is None:
            return set()
        return {self.by_value[m.group(0)] for m in self.regex.finditer(data)}

    def names_in_stream(self, fh) -> set[str]:
        """Search a file object in chunks (with an overlap, so no value is cut)."""
        found: set[str] = set()
        tail = b""
        while True:
            block = fh.read(CHUNK)
            if not block:
                return found
            data = tail + block
            found |= self.names_in(data)
            tail = data[-(self.longest - 1):] if self.longest > 1 else b""


def _layer_names(outer: tarfile.TarFile) -> list[str]:
    manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
    return [layer for entry in manifest for layer in entry["Layers"]]


def scan_images(client: docker.DockerClient, images: list[str], values: dict[str, str],
                console: Console | None = None) -> list[Finding]:
    """Every place a value of `values` ({secret name: value}) appears in the images."""
    console = console or Console()
    matcher = _Matcher(values)
    findings: list[Finding] = []
    scanned: dict[str, set[tuple[str, str]]] = {}  # layer -> {(secret, path)}
    tmp = Path(tempfile.mkdtemp(prefix="stacksalt-scan-", dir="/var/tmp"))
    try:
        for ref in images:
            image = client.images.get(ref)
            inspect = json.dumps(image.attrs, sort_keys=True).encode()
            findings += [Finding(ref, n, "config (docker inspect)")
                         for n in sorted(matcher.names_in(inspect))]
            history = json.dumps(client.api.history(image.id)).encode()
            findings += [Finding(ref, n, "history") for n in sorted(matcher.names_in(history))]
            saved = tmp / "image.tar"
            with console.status(f"scan {ref}: docker save"), saved.open("wb") as fh:
                for chunk in image.save(named=False):
                    fh.write(chunk)
            with tarfile.open(saved) as outer:
                layers = _layer_names(outer)
                for member in outer.getmembers():
                    if not member.isfile() or member.name in layers:
                        continue
                    # the config JSON and manifests
                    for n in matcher.names_in(outer.extractfile(member).read()):  # type: ignore[union-attr]
                        findings.append(Finding(ref, n, f"image metadata {member.name}"))
                for layer in layers:
                    if layer not in scanned:
                        hits: set[tuple[str, str]] = set()
                        with console.status(f"scan {ref}: {layer[:40]}"):
                            inner = tarfile.open(fileobj=outer.extractfile(layer), mode="r|")
                            for entry in inner:
                                if entry.isfile():
                                    fh = inner.extractfile(entry)
                                    if fh is not None:
                                        for n in matcher.names_in_stream(fh):
                                            hits.add((n, entry.name))
                                elif entry.issym() or entry.islnk():
                                    for n in matcher.names_in(entry.linkname.encode()):
                                        hits.add((n, entry.name))
                        scanned[layer] = hits
                    for n, path in sorted(scanned[layer]):
                        findings.append(Finding(ref, n, f"layer {layer}: /{path}"))
            saved.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return findings


def main(deployment: str, names: list[str]) -> int:
    from stacksalt.images import definitions

    console = Console()
    try:
        defs = definitions.load(deployment, only=names or None)
        tags = [d.tag for d in defs.select(names)]
        values = secrets.decrypt_all(deployment)
        findings = scan_images(docker.from_env(), tags, values, console)
    except (ImagesError, docker.errors.ImageNotFound) as exc:
        print(f"stacksalt images scan: {exc}", file=sys.stderr)
        return 1
    for f in findings:
        print(f"SECRET FOUND: {f}", file=sys.stderr)
    console.print(f"scanned {len(tags)} images for {len(values)} secrets: "
                  f"{len(findings)} finding(s)")
    return 1 if findings else 0
