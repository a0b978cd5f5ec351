"""One `docker build` through the SDK's low-level API, with progress and a clear error."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import docker
from rich.console import Console

from stacksalt.buildstream import BuildStream
from stacksalt.images.errors import ImagesError

LABEL = "io.stacksalt.image"


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
    with console.status(f"building {tag}") as status:
        def step_done(step: str, cached: bool, took: float, is_from: bool) -> None:
            if not (is_from or cached):
                console.print(f"  [dim]{name}[/dim] {step[:100]}  {took:.1f}s")

        log = BuildStream(step_done, lambda text: status.update(f"{tag}: {text[:120]}"))
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
            error = log.feed(chunk)
            if error:
                raise ImagesError(
                    f"building {tag} failed: {error}\n"
                    "last build output:\n" + "\n".join(log.tail) + "\n" + (what_to_fix or "")
                )
    image_id = log.image_id
    if not image_id:
        image_id = client.images.get(tag).id
    image = client.images.get(image_id)
    return Built(
        name=name,
        tag=tag,
        image_id=image_id,
        cached=log.all_cached,
        seconds=time.monotonic() - started,
        steps=log.steps,
        cache_hits=log.cache_hits,
        size=int(image.attrs.get("Size", 0)),
    )
