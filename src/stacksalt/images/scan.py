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


def _save(client: docker.DockerClient, images: list[str], dest: Path) -> None:
    """`docker save IMAGE...` into one tar (layers shared by images appear once)."""
    resp = client.api._get(client.api._url("/images/get"), params={"names": images},
                           stream=True)
    client.api._raise_for_status(resp)
    with dest.open("wb") as fh:
        for chunk in resp.iter_content(chunk_size=CHUNK):
            fh.write(chunk)


def _scan_layer(matcher: _Matcher, layer_fh) -> set[tuple[str, str]]:
    hits: set[tuple[str, str]] = set()
    with tarfile.open(fileobj=layer_fh, mode="r|") as inner:
        for entry in inner:
            if entry.isfile():
                fh = inner.extractfile(entry)
                if fh is not None:
                    hits |= {(n, entry.name) for n in matcher.names_in_stream(fh)}
            elif entry.issym() or entry.islnk():
                hits |= {(n, entry.name) for n in matcher.names_in(entry.linkname.encode())}
    return hits


def scan_images(client: docker.DockerClient, images: list[str], values: dict[str, str],
                console: Console | None = None) -> list[Finding]:
    """Every place a value of `values` ({secret name: value}) appears in the images."""
    console = console or Console()
    matcher = _Matcher(values)
    findings: list[Finding] = []
    ids = {ref: client.images.get(ref).id for ref in images}
    for ref in images:
        inspect = json.dumps(client.images.get(ref).attrs, sort_keys=True).encode()
        findings += [Finding(ref, n, "config (docker inspect)")
                     for n in sorted(matcher.names_in(inspect))]
        history = json.dumps(client.api.history(ids[ref])).encode()
        findings += [Finding(ref, n, "history") for n in sorted(matcher.names_in(history))]
    tmp = Path(tempfile.mkdtemp(prefix="stacksalt-scan-", dir="/var/tmp"))
    try:
        saved = tmp / "images.tar"
        with console.status(f"docker save of {len(images)} images"):
            _save(client, images, saved)
        with tarfile.open(saved) as outer:
            manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
            layers_of: dict[str, list[str]] = {}
            for entry in manifest:
                for layer in entry["Layers"]:
                    layers_of.setdefault(layer, []).extend(entry.get("RepoTags") or [])
            for member in outer.getmembers():
                if member.isfile() and member.name not in layers_of:
                    data = outer.extractfile(member).read()  # type: ignore[union-attr]
                    findings += [Finding("(docker save)", n, f"image metadata {member.name}")
                                 for n in sorted(matcher.names_in(data))]
            for i, (layer, tags) in enumerate(sorted(layers_of.items()), 1):
                with console.status(f"scanning layer {i}/{len(layers_of)}"):
                    hits = _scan_layer(matcher, outer.extractfile(layer))
                for n, path in sorted(hits):
                    for tag in sorted(set(tags)) or ["(untagged)"]:
                        findings.append(Finding(tag, n, f"layer {layer}: /{path}"))
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
