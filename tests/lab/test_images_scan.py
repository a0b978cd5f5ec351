"""Secret scan: no decrypted lab secret is in any image of the lab (every file of every
layer, the config, the history); and the scan does find a secret planted in a
throwaway image, in each of those places."""

from __future__ import annotations

import docker
import pytest
from rich.console import Console

from stacksalt.images import definitions, releases
from stacksalt.images.build import build_images
from stacksalt.images.context import Context
from stacksalt.images.dockerbuild import build
from stacksalt.images.scan import scan_images
from stacksalt.lab.images import BASE_IMAGE, ensure_base_image

pytestmark = pytest.mark.lab

PLANTED = "stacksalt-test/planted:{}"


@pytest.fixture(scope="module")
def client():
    client = docker.from_env()
    yield client
    for kind in ("file", "env", "run"):
        try:
            client.images.remove(PLANTED.format(kind), force=True)
        except docker.errors.ImageNotFound:
            pass


def test_no_lab_secret_in_any_lab_image(client, lab_secrets):
    built = build_images(client, Console(), "lab")
    defs = definitions.load("lab")
    tags = [d.tag for d in defs.enabled()]
    assert {b.tag for b in built} >= set(tags)
    bases = sorted({releases.base_tag(d.release) for d in defs.enabled() if d.release})
    findings = scan_images(client, tags + bases, lab_secrets)
    assert findings == [], "\n".join(map(str, findings))


def test_scan_finds_a_planted_secret_in_layer_config_and_history(client, lab_secrets):
    ensure_base_image(client, Console())
    name, value = sorted(lab_secrets.items())[0]
    dockerfiles = {
        # in a file of a layer only (COPY leaves no value in the history)
        "file": f"FROM {BASE_IMAGE}\nCOPY leaked.conf /etc/leaked.conf\n",
        # in the image config (environment)
        "env": f"FROM {BASE_IMAGE}\nENV LEAKED={value}\n",
        # in the history (the RUN command line) and in a layer
        "run": f"FROM {BASE_IMAGE}\nRUN echo '{value}' > /root/leak\n",
    }
    tags = []
    for kind, dockerfile in dockerfiles.items():
        ctx = Context()
        ctx.add_bytes("Dockerfile", dockerfile.encode())
        ctx.add_bytes("leaked.conf", f"password = {value}\n".encode())
        tags.append(PLANTED.format(kind))
        build(client, Console(), name=f"planted-{kind}", tag=tags[-1], context=ctx.tar(),
              buildargs={})
    findings = scan_images(client, tags, lab_secrets)
    places = {(f.image, f.where.split(":")[0].split(" ")[0]) for f in findings
              if f.secret == name}
    assert (PLANTED.format("file"), "layer") in places
    assert any(f.image == PLANTED.format("file") and f.where.endswith("/etc/leaked.conf")
               for f in findings)
    assert (PLANTED.format("env"), "config") in places
    assert (PLANTED.format("run"), "history") in places
    assert (PLANTED.format("run"), "layer") in places
    assert not any(value in str(f) for f in findings)  # a finding names, never shows
