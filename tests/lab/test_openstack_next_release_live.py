"""The next release serves (Docker tier; no Kubernetes needed).

The lab's model runs flamingo. Here every OpenStack image of the lab (keystone,
glance-api, placement-api, nova-controller, nova-compute, neutron-server) is built on
openstack-base:gazpacho from the same sources and formulas, and the whole stack runs from
those images exactly as tests/lab/test_openstack_live.py runs flamingo's (the lab's
objects, the images swapped by tag; mariadb, rabbitmq and memcached are the lab's own):
bootstrap Jobs on an empty database, a keystone token, authenticated GETs on glance,
placement, nova and neutron, a project network, and a server scheduled through
placement onto the fake-driver compute, ACTIVE. It runs after the flamingo module (name
order), so the two stacks never share the two cores.
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

from . import nova_logs

pytestmark = pytest.mark.lab

PREFIX = "stacksalt-test-next"
RELEASE = "gazpacho"
OPENSTACK_IMAGES = ["keystone", "glance-api", "placement-api", "nova-controller",
                    "nova-compute", "neutron-server"]


@pytest.fixture(scope="module")
def next_release_images(lab_secrets):
    """{image: tag} of the lab's OpenStack images built on the next release's base; the
    infrastructure images are the lab's (built if missing)."""
    client = docker.from_env()
    console = Console()
    build_images(client, console, "lab", ["mariadb", "rabbitmq", "memcached"])
    base = build_base(client, console, RELEASE)
    defs = definitions.load("lab")
    tags = {}
    started = time.monotonic()
    for name in OPENSTACK_IMAGES:
        tag = f"{PREFIX}/{name}:{RELEASE}"
        build(client, console, name=f"{name} ({RELEASE})", tag=tag,
              context=assemble.image_context(defs.images[name]).tar(),
              buildargs={"SALT_IMAGE": "stacksalt/salt:3008.3", "VERSION": RELEASE,
                         "OPENSTACK_BASE": base.tag})
        tags[name] = tag
    print(f"{RELEASE} images built in {time.monotonic() - started:.0f}s")
    yield tags
    for tag in tags.values():
        client.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def next_live(next_release_images):
    stack = demo.Stack("lab", PREFIX, Console(), tags=dict(next_release_images))
    try:
        proof = demo.run(stack)
        print(f"{RELEASE} stack up and proven in {proof.seconds:.0f}s")
        yield stack, proof
    finally:
        stack.cleanup()


def test_the_lab_model_runs_another_release():
    """What makes this module a test of the next release: the model is on flamingo, and
    gazpacho is a release of releases.yml that follows it."""
    assert set(releases.load()) >= {"flamingo", RELEASE}
    from stacksalt.deployment import Deployment

    dep = Deployment.load("lab")
    assert dep.first("_param:openstack_version") == "flamingo"
    series = dep.first("_param:openstack_release_series")
    assert series[RELEASE] > series["flamingo"]


def test_every_openstack_container_runs_the_next_release(next_live, next_release_images):
    """Each started OpenStack container runs its gazpacho image, whose venv holds
    gazpacho's service versions (releases.yml's pins), not flamingo's."""
    stack, _ = next_live
    pins = releases.get(RELEASE).pins
    seen = set()
    for name, box in stack.started.items():
        box.reload()
        image = box.image.tags[0] if box.image.tags else box.image.id
        role = image.rsplit("/", 1)[-1].split(":", 1)[0]
        if role not in next_release_images:
            continue
        assert image == next_release_images[role], name
        assert box.image.labels["io.stacksalt.openstack-release"] == RELEASE, name
        seen.add(role)
    assert seen == set(OPENSTACK_IMAGES)
    box = stack.started["nova-api"]
    rc, out = box.exec_run(["python", "-c", "from importlib.metadata import version as v; "
                            "print(v('nova'), v('openstack-placement'), v('keystone'))"])
    assert rc == 0, out
    wanted = " ".join(p.split("==")[1] for p in pins
                      if p.split("==")[0] in ("nova", "openstack-placement", "keystone"))
    assert sorted(out.decode().split()) == sorted(wanted.split()), (out, pins)


def test_the_next_release_serves_every_api(next_live):
    stack, proof = next_live
    assert proof.token["user"]["name"] == "admin"
    for kind in ("identity", "image", "placement", "compute", "network"):
        assert proof.catalog[kind] == ["admin", "internal", "public"], kind
    assert proof.images["images"] == []
    assert proof.resource_providers == {"resource_providers": []}
    assert "flavors" in proof.flavors and "networks" in proof.networks
    assert proof.network["provider:network_type"] == "vlan"


def test_the_next_release_schedules_a_server_through_placement(next_live):
    stack, proof = next_live
    server = proof.server
    assert server.host == stack.started["nova-compute"].attrs["Config"]["Hostname"]
    ((_, alloc),) = server.allocations.items()
    assert alloc["resources"] == {"VCPU": 1, "MEMORY_MB": 64, "DISK_GB": 1}, alloc


@pytest.mark.parametrize("service", ["keystone", "glance-api", "placement-api",
                                     "nova-controller", "neutron-server"])
def test_the_next_releases_upgrade_jobs_run_on_its_own_schema(next_live, service):
    """Its expand/migrate/contract Jobs are idempotent on a schema it made itself."""
    stack, _ = next_live
    jobs = stack.jobs(service)
    for phase in ("expand", "migrate", "contract"):
        for mode in jobs[phase]:
            out = stack.run_job(service, mode)
            assert not nova_logs.unexpected_errors(out), out
