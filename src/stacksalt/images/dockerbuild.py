"""One `docker build` through the SDK's low-level API, with progress and a clear error."""

from __future__ import annotations

import io
import re
import time
from collections import deque
from dataclasses import dataclass

import docker
from rich.console import Console

from stacksalt.images.errors import ImagesError

LABEL = "io.stacksalt.image"
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_STEP_DONE = re.compile(r"^ ---> ([0-9a-f]{12})$")


@dataclass
class Built:
    name: str
    tag: str
    image_id: str
    cached: bool  # every step came from the layer cache
    seconds: float
    steps: int
    cache_hits: int
    size: int = 0
    digest: str = ""


def build(
    client: docker.DockerClient,
    console: Console,
    *,
    name: str,
    tag: str,
    context: bytes,
    buildargs: dict[str, str],
    target: str | None = None,
    what_to_fix: str = "",
    labels: dict[str, str] | None = None,
) -> Built:
    """Build a tar context; print one line per finished step; raise ImagesError on failure."""
    started = time.monotonic()
    tail: deque[str] = deque(maxlen=40)
    steps = hits = 0
    step: str | None = None
    step_started = started
    cached = False
    image_id = ""
    with console.status(f"building {tag}") as status:
        stream = client.api.build(
            fileobj=io.BytesIO(context),
            custom_context=True,
            tag=tag,
            rm=True,
            forcerm=True,
            decode=True,
            buildargs=buildargs,
            target=target,
            labels={**(labels or {}), LABEL: name},
        )
        for chunk in stream:
            if "error" in chunk:
                raise ImagesError(
                    f"building {tag} failed: {chunk['error'].strip()}\n"
                    "last build output:\n" + "\n".join(tail) + "\n" + (what_to_fix or "")
                )
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            for line in chunk.get("stream", "").splitlines():
                tail.append(line)
                if _STEP.match(line):
                    step, cached, step_started = line, False, time.monotonic()
                    status.update(f"{tag}: {line[:100]}")
                elif line.strip() == "---> Using cache":
                    cached = True
                elif _STEP_DONE.match(line) and step:
                    took = time.monotonic() - step_started
                    if " : FROM " not in step:
                        steps += 1
                        hits += cached
                        if not cached:
                            console.print(f"  [dim]{name}[/dim] {step[:100]}  {took:.1f}s")
                    step = None
                elif step and line.strip():
                    status.update(f"{tag}: {step[:50]} | {line.strip()[:70]}")
    if not image_id:
        image_id = client.images.get(tag).id
    image = client.images.get(image_id)
    return Built(
        name=name,
        tag=tag,
        image_id=image_id,
        cached=steps == hits,
        seconds=time.monotonic() - started,
        steps=steps,
        cache_hits=hits,
        size=int(image.attrs.get("Size", 0)),
    )
