"""`stacksalt images freeze RELEASE`: make images/openstack-base/constraints/<release>.txt.

Installs the release's pins (releases.yml) into a fresh venv inside the image's own
`builddeps` stage (bookworm, Debian's python3, the same compilers as the real build),
then writes `pip freeze` as the constraints file.
"""

from __future__ import annotations

import time
from pathlib import Path

import docker
from rich.console import Console

from stacksalt.images import releases
from stacksalt.images.base import base_context
from stacksalt.images.dockerbuild import build
from stacksalt.images.errors import ImagesError
from stacksalt.lab.images import BASE_IMAGE

BEGIN, END = "----- freeze begin -----", "----- freeze end -----"


def freeze(client: docker.DockerClient, console: Console, release: str,
           root: Path | None = None) -> Path:
    rel = releases.get(release, root=root)
    tag = f"stacksalt/openstack-base-builddeps:{release}"
    build(
        client,
        console,
        name="openstack-base builddeps",
        tag=tag,
        context=base_context(release, root, with_constraints=False).tar(),
        buildargs={"BASE_IMAGE": BASE_IMAGE},
        target="builddeps",
    )
    script = (
        "set -e; /opt/openstack/bin/pip install -q " + rel.pins_arg
        + f"; /opt/openstack/bin/pip check; echo '{BEGIN}'; /opt/openstack/bin/pip freeze;"
        f" echo '{END}'"
    )
    console.print(f"[bold]freeze {release}[/bold]: pip install {rel.pins_arg}")
    started = time.monotonic()
    container = client.containers.run(tag, ["bash", "-c", script], detach=True,
                                      name=f"stacksalt-images-freeze-{release}")
    try:
        with console.status(f"pip install ({release})"):
            result = container.wait()
        out = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    if result.get("StatusCode") != 0 or BEGIN not in out:
        tail = "\n".join(out.splitlines()[-30:])
        raise ImagesError(f"pip install of release {release} failed:\n{tail}\n"
                          f"fix the pins in {releases.releases_file(root)}")
    lines = out.split(BEGIN, 1)[1].split(END, 1)[0].strip().splitlines()
    pins = sorted((ln.strip() for ln in lines if "==" in ln), key=str.lower)
    path = releases.constraints_file(release, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# OpenStack {release}: pip freeze of {rel.pins_arg}\n"
        f"# on Debian bookworm's python3; made by 'stacksalt images freeze {release}'.\n"
        + "\n".join(pins) + "\n"
    )
    console.print(f"[bold]freeze {release}[/bold]: {len(pins)} packages -> {path} "
                  f"({time.monotonic() - started:.0f}s)")
    return path
