"""The lab's OpenStack images, really running (Docker tier; no Kubernetes needed).

`stacksalt images build lab` builds the images; then, on a throwaway network, mariadb,
rabbitmq, memcached, keystone, glance-api and nova-controller run as their Deployments
would run them (env and secret_env from the model and the lab's secrets, the Service
names as host names, the bootstrap jobs in order), and real HTTP proves the result:
a keystone token for the admin user, and authenticated GETs on glance and nova.
(stacksalt.images.demo does the work; `stacksalt images demo lab` shows the same.)
"""

from __future__ import annotations

import time

import docker
import pytest
from rich.console import Console

from stacksalt.images import assemble, definitions, demo, releases
from stacksalt.images.base import build_base
from stacksalt.images.build import build_images
from stacksalt.images.dockerbuild import build

pytestmark = pytest.mark.lab

PREFIX = "stacksalt-test-os"
IMAGES = ["mariadb", "rabbitmq", "memcached", "keystone", "glance-api", "nova-controller"]


@pytest.fixture(scope="module")
def built(lab_secrets):
    client = docker.from_env()
    started = time.monotonic()
    result = build_images(client, Console(), "lab", IMAGES)
    print(f"stacksalt images build lab {' '.join(IMAGES)}: {time.monotonic() - started:.0f}s")
    return {b.name: b for b in result}


@pytest.fixture(scope="module")
def live(built):
    with demo.running("lab", PREFIX, Console()) as (stack, proof):
        print(f"live stack up and proven in {proof.seconds:.0f}s")
        yield stack, proof
    client = docker.from_env()
    assert client.containers.list(all=True, filters={"label": f"{demo.LABEL}={PREFIX}"}) == []
    assert client.networks.list(names=[f"{PREFIX}-net"]) == []


def test_keystone_issues_an_admin_token(live):
    _, proof = live
    token = proof.token
    assert token["user"]["name"] == "admin"
    assert token["project"]["name"] == "admin"
    assert "admin" in {r["name"] for r in token["roles"]}
    # bootstrap and ks_register put the model's endpoints into the catalog
    assert proof.catalog["identity"] == ["admin", "internal", "public"]
    assert proof.catalog["image"] == ["admin", "internal", "public"]
    assert proof.catalog["compute"] == ["admin", "internal", "public"]


def test_glance_and_nova_answer_authenticated_requests(live):
    _, proof = live
    assert proof.images == {"images": [], "first": "/v2/images", "schema": "/v2/schemas/images"}
    assert "flavors" in proof.flavors


def test_endpoints_use_the_service_names_and_region(live):
    stack, proof = live
    keystone = stack.address(stack.started["keystone-api"])
    status, _, data = demo.http("GET", f"http://{keystone}:5000/v3/endpoints",
                                token=_token(stack, keystone))
    assert status == 200
    urls = {(e["interface"], e["url"]) for e in data["endpoints"]}
    assert ("public", "http://keystone:5000/v3") in urls
    assert ("internal", "http://glance-api:9292") in urls
    assert ("admin", "http://nova-controller:8774/v2.1") in urls
    assert {e["region_id"] for e in data["endpoints"]} == {"RegionOne"}


def test_ks_register_is_idempotent(live):
    stack, _ = live
    out = stack.run_job("glance-api", "ks_register")
    assert "created" not in out and "updated" not in out, out
    assert "password current" in out


@pytest.mark.parametrize("service", ["keystone", "glance-api", "nova-controller"])
def test_upgrade_jobs_run_on_a_current_schema(live, service):
    """The model's expand/migrate/contract jobs (and a second nova db_sync: the cell
    already exists) succeed on a schema that is already current: they are idempotent."""
    stack, _ = live
    jobs = stack.service(service)["jobs"]
    for phase in ("expand", "migrate", "contract"):
        out = stack.run_job(service, jobs[phase])
        assert "ERROR" not in out, out
    if service == "nova-controller":
        assert "exists already" in stack.run_job(service, "db_sync")


def test_every_container_of_the_nova_controller_pod_runs(live):
    """conductor, scheduler and novncproxy from the same image: conductor and scheduler
    report 'up' in nova's service list (DB + RabbitMQ), noVNC serves its client."""
    stack, _ = live
    containers = stack.service("nova-controller")["containers"]
    for name in ("nova-conductor", "nova-scheduler", "nova-novncproxy"):
        stack.start("nova-controller", name, containers[name]["command"])
    keystone = stack.address(stack.started["keystone-api"])
    nova = stack.address(stack.started["nova-api"])
    token = _token(stack, keystone)
    deadline = time.monotonic() + 120
    while True:
        status, _, data = demo.http("GET", f"http://{nova}:8774/v2.1/os-services", token=token)
        assert status == 200, data
        up = {s["binary"] for s in data["services"] if s["state"] == "up"}
        if {"nova-conductor", "nova-scheduler"} <= up or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert {"nova-conductor", "nova-scheduler"} <= up, data
    novnc = stack.address(stack.started["nova-novncproxy"])
    status, _, page = demo.http("GET", f"http://{novnc}:6080/vnc_lite.html")
    assert status == 200 and "noVNC" in page


def test_a_wrong_password_gets_no_token(live):
    stack, _ = live
    keystone = stack.address(stack.started["keystone-api"])
    status, _, _ = demo.http("POST", f"http://{keystone}:5000/v3/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": "wrong"}}}}})
    assert status == 401


def test_keystone_refuses_to_start_without_its_variables(live):
    """No env at all: one line naming every missing variable, exit 64, no value printed."""
    stack, _ = live
    client = stack.client
    tag = stack.image_tag("keystone")
    env = stack.environment("keystone")
    partial = {k: v for k, v in env.items() if k != "KEYSTONE_ADMIN_PASSWORD"}
    for environment, missing in (({}, sorted(env)), (partial, ["KEYSTONE_ADMIN_PASSWORD"])):
        box = client.containers.create(tag, ["api"], environment=environment,
                                       name=f"{PREFIX}-missing", labels={demo.LABEL: PREFIX})
        try:
            box.start()
            assert box.wait(timeout=60)["StatusCode"] == 64
            out = box.logs().decode()
        finally:
            box.remove(v=True, force=True)
        line = next(ln for ln in out.splitlines() if "missing variables" in ln)
        named = line.split("missing variables: ", 1)[1].split(" (", 1)[0].split()
        assert sorted(named) == missing, out
        for value in environment.values():
            assert value not in out


def test_images_are_small_enough_and_hold_no_secret(built, lab_secrets):
    client = docker.from_env()
    base = client.images.get(built["openstack-base:flamingo"].tag)
    for name in ("keystone", "glance-api", "nova-controller"):
        image = client.images.get(built[name].tag)
        print(f"{name}: {image.attrs['Size'] / 1e6:.0f} MB, built in {built[name].seconds:.0f}s")
        # the service layers add configuration and scripts, not packages
        assert image.attrs["Size"] - base.attrs["Size"] < 10e6, name
        assert image.attrs["Config"]["Entrypoint"] == ["/usr/local/bin/stacksalt-entrypoint"]
        # templates only: the rendered files carry placeholders, never the lab's values
        out = client.containers.run(
            image.id, ["sh", "-c", "cat /etc/stacksalt/templates/etc/*/*"],
            entrypoint=[], remove=True).decode()
        assert "${" in out
        for value in lab_secrets.values():
            if len(value) >= 8:
                assert value not in out


OPENSTACK_IMAGES = ["keystone", "glance-api", "nova-controller", "nova-compute", "neutron-server"]


@pytest.mark.parametrize("release", sorted(releases.load()))
def test_every_openstack_image_builds_on_every_release(lab_secrets, release):
    """The same image sources and formulas build on each release's openstack-base (the
    model picks one; an upgrade changes that one line). Service layers stay small."""
    client = docker.from_env()
    console = Console()
    base = build_base(client, console, release)
    defs = definitions.load("lab")
    base_size = client.images.get(base.tag).attrs["Size"]
    for name in OPENSTACK_IMAGES:
        image = defs.images[name]
        tag = f"{PREFIX}/{name}:{release}"
        built_ = build(client, console, name=name, tag=tag,
                       context=assemble.image_context(image).tar(),
                       buildargs={"SALT_IMAGE": "stacksalt/salt:3008.3", "VERSION": release,
                                  "OPENSTACK_BASE": base.tag})
        size = client.images.get(tag).attrs["Size"]
        print(f"{release} {name}: {built_.seconds:.0f}s, {size / 1e6:.0f} MB")
        try:
            # libvirt bindings (nova-compute) and every role's code import on this release
            assert size - base_size < 60e6, name
            if name == "nova-compute":
                client.containers.run(tag, ["python", "-c", "import libvirt"],
                                      entrypoint=[], remove=True)
        finally:
            client.images.remove(tag)


def _token(stack, keystone: str) -> str:
    env = stack.environment("keystone")
    status, headers, _ = demo.http("POST", f"http://{keystone}:5000/v3/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"},
            "password": env["KEYSTONE_ADMIN_PASSWORD"]}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
    assert status == 201
    return headers["X-Subject-Token"]
