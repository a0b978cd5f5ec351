"""`stacksalt images build`: an unchanged image rebuilds entirely from the layer cache;
--push goes to a registry with htpasswd auth only after a pre-flight login, and a refused
login pushes nothing. The registry is a throwaway one (Debian's docker-registry in a
container built from stacksalt/base) on 127.0.0.1, which needs no TLS."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import urllib.error
import urllib.request

import docker
import pytest
from rich.console import Console

from stacksalt import secrets
from stacksalt.images import assemble, definitions
from stacksalt.images.build import build_images, buildargs
from stacksalt.images.context import Context
from stacksalt.images.dockerbuild import build
from stacksalt.images.errors import ImagesError
from stacksalt.lab.images import BASE_IMAGE, ensure_base_image
from tests.netutil import free_port

pytestmark = pytest.mark.lab

PREFIX = "images-test-registry"
REGISTRY_IMAGE = "stacksalt-test/registry:bookworm"
REGISTRY_DOCKERFILE = f"""\
FROM {BASE_IMAGE}
RUN apt-get update && apt-get install -y docker-registry apache2-utils \\
 && rm -rf /var/lib/apt/lists/*
COPY config.yml /etc/docker/registry/config.yml
"""
REGISTRY_CONFIG = """\
version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
http:
  addr: :5000
auth:
  htpasswd:
    realm: stacksalt-test
    path: /etc/docker/registry/htpasswd
"""


@pytest.fixture(scope="module")
def client():
    client = docker.from_env()
    ensure_base_image(client, Console())
    ctx = Context()
    ctx.add_bytes("Dockerfile", REGISTRY_DOCKERFILE.encode())
    ctx.add_bytes("config.yml", REGISTRY_CONFIG.encode())
    build(client, Console(), name="test-registry", tag=REGISTRY_IMAGE, context=ctx.tar(),
          buildargs={})
    yield client
    for c in client.containers.list(all=True, filters={"name": PREFIX}):
        c.remove(force=True)


class Registry:
    def __init__(self, client, name: str, user: str, password: str, tmp_path):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.user, self.password = user, password
        pw = tmp_path / f"{name}.pw"
        pw.write_text(password + "\n")
        self.container = client.containers.run(
            REGISTRY_IMAGE,
            ["sh", "-c", f"htpasswd -iBc /etc/docker/registry/htpasswd {user} < /pw"
             " && exec docker-registry serve /etc/docker/registry/config.yml"],
            name=f"{PREFIX}-{name}", detach=True,
            ports={"5000/tcp": ("127.0.0.1", self.port)},
            volumes={str(pw): {"bind": "/pw", "mode": "ro"}},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.get("/v2/")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        raise AssertionError(self.container.logs().decode())

    def get(self, path: str) -> dict:
        req = urllib.request.Request(f"http://{self.address}{path}")
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"{}")

    def catalog(self) -> list[str]:
        return self.get("/v2/_catalog").get("repositories") or []


def registry_user() -> tuple[str, str]:
    """The model's registry user and its decrypted password (docker:registry)."""
    secrets.generate("lab")
    defs = definitions.load("lab", only=["memcached"])
    assert defs.registry and defs.registry.user and defs.registry.password_secret
    return defs.registry.user, secrets.decrypt_all("lab")[defs.registry.password_secret]


def test_unchanged_image_rebuilds_fully_cached(client):
    build_images(client, Console(), "lab", ["memcached"])
    again = build_images(client, Console(), "lab", ["memcached"])
    (memcached,) = [b for b in again if b.name == "memcached"]
    assert memcached.cached, f"{memcached.steps - memcached.cache_hits} steps not cached"
    assert memcached.steps > 5


def test_push_with_the_models_credentials(client, tmp_path):
    user, password = registry_user()
    reg = Registry(client, "ok", user, password, tmp_path)
    built = build_images(client, Console(), "lab", ["memcached"], do_push=True,
                         registry=reg.address)
    (memcached,) = [b for b in built if b.name == "memcached"]
    assert memcached.tag == f"{reg.address}/lab/memcached:1.6"
    assert memcached.digest.startswith("sha256:")
    assert reg.catalog() == ["lab/memcached"]
    assert reg.get("/v2/lab/memcached/tags/list")["tags"] == ["1.6"]


def test_refused_login_pushes_nothing(client, tmp_path):
    user, password = registry_user()
    # the registry knows the user with another password: the model's is refused
    reg = Registry(client, "refused", user, password + "-not", tmp_path)
    with pytest.raises(ImagesError, match=f"registry {reg.address} refused user {user}") as exc:
        build_images(client, Console(), "lab", ["memcached", "rabbitmq"], do_push=True,
                     registry=reg.address)
    assert password not in str(exc.value)
    assert reg.catalog() == []


def test_infra_image_refuses_a_package_of_another_version(client):
    defs = definitions.load("lab", only=["memcached"])
    image = dataclasses.replace(defs.images["memcached"], version="9.9")
    with pytest.raises(ImagesError) as exc:
        build(client, Console(), name="memcached", tag="stacksalt-test/memcached:9.9",
              context=assemble.image_context(image).tar(), buildargs=buildargs(image))
    msg = str(exc.value)
    assert "memcached is 1.6." in msg and "the model wants 9.9" in msg
    assert "_param:memcached_version" in msg


def test_openstack_base_dockerfile_refuses_a_release_without_constraints(client):
    from stacksalt.images.base import base_context

    ctx = base_context("nosuch", with_constraints=False)
    with pytest.raises(ImagesError) as exc:
        build(client, Console(), name="openstack-base", tag="stacksalt-test/base:nosuch",
              context=ctx.tar(),
              buildargs={"BASE_IMAGE": BASE_IMAGE, "RELEASE": "nosuch", "PINS": "keystone"})
    msg = str(exc.value)
    assert "images/openstack-base/constraints/nosuch.txt is missing" in msg
    assert "stacksalt images freeze nosuch" in msg
