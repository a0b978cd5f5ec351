"""The lab's OpenStack images, really running (Docker tier; no Kubernetes needed).

`stacksalt images build lab` builds the images; then, on a throwaway network, mariadb,
rabbitmq, memcached, keystone, glance-api, placement-api, nova-controller, neutron-server
and nova-compute run as their Deployments and DaemonSet would run them (env and secret_env
from the model and the lab's secrets, the Service names as host names, the bootstrap jobs
in order), and real HTTP proves the result: a keystone token for the admin user,
authenticated GETs on glance, placement, nova and neutron, a project network (a VLAN of
the model's range) created through neutron, and a server scheduled through placement onto
the lab's fake-driver compute, ACTIVE.
The other release's neutron-server (gazpacho) then upgrades the same database (expand)
and answers its API.
(stacksalt.images.demo does the work; `stacksalt images demo lab` shows the same.)
"""

from __future__ import annotations

import time

import docker
import pytest
from rich.console import Console

from stacksalt import paths
from stacksalt.deployment import Deployment
from stacksalt.images import assemble, definitions, demo, releases
from stacksalt.images.base import build_base
from stacksalt.images.build import build_images
from stacksalt.images.dockerbuild import build

from . import nova_logs

pytestmark = pytest.mark.lab

PREFIX = "stacksalt-test-os"
IMAGES = ["mariadb", "rabbitmq", "memcached", "keystone", "glance-api", "placement-api",
          "nova-controller", "nova-compute", "neutron-server"]


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
    assert proof.catalog["network"] == ["admin", "internal", "public"]
    assert proof.catalog["placement"] == ["admin", "internal", "public"]


def test_glance_nova_and_neutron_answer_authenticated_requests(live):
    stack, proof = live
    assert proof.images == {"images": [], "first": "/v2/images", "schema": "/v2/schemas/images"}
    assert "flavors" in proof.flavors
    assert "networks" in proof.networks
    status, _, body = demo.http("GET", f"{_neutron(stack)}/healthcheck")
    assert status == 200, body


def test_placement_answers_and_lists_the_compute_after_it_started(live):
    """Before nova-compute: no resource provider. After: the compute's, with the
    inventory the fake driver reports and the model's allocation ratios."""
    stack, proof = live
    assert proof.resource_providers == {"resource_providers": []}
    placement = demo._url(stack, "placement-api", "placement-api", "api")
    token = _token(stack, _keystone(stack))
    status, _, data = demo.http("GET", f"{placement}/resource_providers", token=token)
    assert status == 200, data
    (provider,) = data["resource_providers"]
    assert provider["name"] == proof.server.host
    status, _, inv = demo.http("GET", f"{placement}/resource_providers/{provider['uuid']}"
                               "/inventories", token=token)
    assert status == 200, inv
    ratio = float(stack.value("nova:compute:cpu_allocation_ratio"))
    assert inv["inventories"]["VCPU"]["allocation_ratio"] == ratio, inv
    assert {"VCPU", "MEMORY_MB", "DISK_GB"} <= set(inv["inventories"])
    # the version document answers without a token (the model's readiness probe)
    status, _, doc = demo.http("GET", f"{placement}/")
    assert status == 200 and doc["versions"][0]["id"] == "v1.0", doc


def test_a_server_goes_active_through_placement_on_the_fake_compute(live):
    """The proof's server: scheduled by nova-scheduler from placement's allocation
    candidates onto the compute, ACTIVE (nova's fake driver: nothing boots), its flavor
    allocated in placement against that compute's provider; deleted, the allocation is
    gone."""
    stack, proof = live
    server = proof.server
    assert server.host == stack.started["nova-compute"].attrs["Config"]["Hostname"]
    ((provider, alloc),) = server.allocations.items()
    assert alloc["resources"] == {"VCPU": 1, "MEMORY_MB": 64, "DISK_GB": 1}, alloc
    token = _token(stack, _keystone(stack))
    nova = demo._url(stack, "nova-controller", "nova-api", "api")
    placement = demo._url(stack, "placement-api", "placement-api", "api")
    status, _, usages = demo.http("GET", f"{placement}/resource_providers/{provider}/usages",
                                  token=token)
    assert status == 200 and usages["usages"]["MEMORY_MB"] == 64, usages
    # a second server lands on the same compute; deleting it frees its allocation
    second = demo.boot_server(stack, f"{PREFIX}-server2")
    assert second.host == server.host
    status, _, _ = demo.http("DELETE", f"{nova}/v2.1/servers/{second.id}", token=token)
    assert status == 204
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, _, got = demo.http("GET", f"{placement}/allocations/{second.id}", token=token)
        if got["allocations"] == {}:
            break
        time.sleep(2)
    assert got["allocations"] == {}, got


def test_without_placement_the_scheduler_finds_no_host(live):
    """The negative control of the server test: placement-api stopped, a new server
    ends in ERROR (the scheduler cannot get allocation candidates), not ACTIVE; placement
    started again, the next one is ACTIVE.

    Which error depends on the name: a lookup that fails is nova's "No valid host"; the
    scheduler's eventlet resolver caches the stopped container's address (Docker's DNS
    answers with a TTL of 600 s), and a connection to it times out (about 130 s, the
    kernel's SYN retries) as keystoneauth's ConnectTimeout. On Kubernetes the Service's
    address stays and, with no ready pod, is refused at once."""
    stack, _ = live
    box = stack.started["placement-api"]
    box.stop(timeout=10)
    try:
        with pytest.raises(demo.DemoError, match=r"is ERROR after .*(No valid host|"
                           r"ConnectTimeout:? Request to http://placement-api:8778/)"):
            demo.boot_server(stack, f"{PREFIX}-noplacement", timeout=240)
    finally:
        box.start()
        stack._wait_probe(box, stack.containers("placement-api")["placement-api"], 120)
    assert demo.boot_server(stack, f"{PREFIX}-placement-back").host


def test_neutron_allocates_a_project_vlan_from_the_model(live):
    """A plain project network: ML2 (tenant_network_types vlan) gives it a VLAN of the
    model's neutron_network_vlan_ranges; the network is then listed."""
    stack, proof = live
    ranges = [r.split(":") for r in
              stack.value("neutron:server:ml2:network_vlan_ranges")]
    net = proof.network
    assert net["status"] == "ACTIVE" and net["admin_state_up"] is True
    assert net["provider:network_type"] == "vlan"
    assert any(net["provider:physical_network"] == phys and int(lo) <= int(
        net["provider:segmentation_id"]) <= int(hi) for phys, lo, hi in ranges), (net, ranges)
    status, _, data = demo.http("GET", f"{_neutron(stack)}/v2.0/networks/{net['id']}",
                                token=_token(stack, _keystone(stack)))
    assert status == 200 and data["network"]["name"] == net["name"]


def test_neutron_creates_a_vlan_provider_network(live):
    """An admin's provider network on a VLAN of the model's physical network that no
    project network holds; a second one on the same VLAN is refused (409)."""
    stack, _ = live
    first_range = stack.value("neutron:server:ml2:network_vlan_ranges")[0]
    phys, lo, _ = first_range.split(":")
    body = {"network": {"name": f"{PREFIX}-provider", "provider:network_type": "vlan",
                        "provider:physical_network": phys,
                        "provider:segmentation_id": int(lo) + 500}}
    token = _token(stack, _keystone(stack))
    status, _, data = demo.http("POST", f"{_neutron(stack)}/v2.0/networks", body, token=token)
    assert status == 201, data
    assert data["network"]["provider:segmentation_id"] == int(lo) + 500
    status, _, data = demo.http("POST", f"{_neutron(stack)}/v2.0/networks", body, token=token)
    assert status == 409, data


def test_every_container_of_the_neutron_server_pod_runs(live):
    """rpc_server and periodic_workers (same image, DB + RabbitMQ) are still running
    after 20 s, and their processes are the model's probes' processes."""
    stack, _ = live
    containers = stack.containers("neutron-server")
    names = ("neutron-rpc-server", "neutron-periodic-workers")
    for name in names:
        stack.start("neutron-server", name)
    time.sleep(20)
    for name in names:
        box = stack.started[name]
        box.reload()
        logs = box.logs(tail=40).decode(errors="replace")
        assert box.status == "running", logs
        assert "Traceback" not in box.logs().decode(errors="replace"), logs
        # the pod's own readiness probe passes, and its process is PID 1 (the
        # entrypoint execs the program)
        probe = containers[name]["readinessProbe"]["exec"]["command"]
        rc, out = box.exec_run(probe)
        assert rc == 0, (probe, out)
        pid1 = [*probe[:-1], probe[-1].replace("/proc/[0-9]*/cmdline", "/proc/1/cmdline")]
        rc, out = box.exec_run(pid1)
        assert rc == 0, (pid1, out)


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
    assert ("internal", "http://placement-api:8778") in urls
    assert {e["region_id"] for e in data["endpoints"]} == {"RegionOne"}


def test_ks_register_is_idempotent(live):
    stack, _ = live
    out = stack.run_job("glance-api", "ks_register")
    assert "created" not in out and "updated" not in out, out
    assert "password current" in out


@pytest.mark.parametrize("service", ["keystone", "glance-api", "placement-api",
                                     "nova-controller", "neutron-server"])
def test_upgrade_jobs_run_on_a_current_schema(live, service):
    """The model's expand/migrate/contract jobs (and a second nova db_sync: the cell
    already exists) succeed on a schema that is already current: they are idempotent."""
    stack, _ = live
    jobs = stack.jobs(service)
    for phase in ("expand", "migrate", "contract"):
        for mode in jobs[phase]:
            out = stack.run_job(service, mode)
            assert not nova_logs.unexpected_errors(out), out
    if service == "nova-controller":
        assert "exists already" in stack.run_job(service, "db_sync")


def test_every_container_of_the_nova_controller_pod_runs(live):
    """conductor, scheduler and novncproxy from the same image: conductor and scheduler
    report 'up' in nova's service list (DB + RabbitMQ), noVNC serves its client."""
    stack, _ = live
    for name in ("nova-conductor", "nova-scheduler", "nova-novncproxy"):
        stack.start("nova-controller", name)
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


@pytest.fixture(scope="module")
def neutron_gazpacho():
    """neutron-server built on openstack-base:gazpacho (the lab's model runs flamingo)."""
    client = docker.from_env()
    console = Console()
    base = build_base(client, console, "gazpacho")
    tag = f"{PREFIX}/neutron-server:gazpacho-live"
    build(client, console, name="neutron-server (gazpacho)", tag=tag,
          context=assemble.image_context(definitions.load("lab").images["neutron-server"]).tar(),
          buildargs={"SALT_IMAGE": "stacksalt/salt:3008.3", "VERSION": "gazpacho",
                     "OPENSTACK_BASE": base.tag})
    yield tag
    client.images.remove(tag, force=True)


def test_gazpacho_neutron_server_expands_the_schema_and_answers(live, neutron_gazpacho):
    """The next release's neutron-server on the same database, as a rolling upgrade
    starts: its db_expand runs on the flamingo schema (exit 0), then its API starts
    next to flamingo's, /healthcheck answers 200 and it lists the flamingo network."""
    stack, proof = live
    stack.tags["neutron-server"] = neutron_gazpacho
    try:
        for mode in stack.jobs("neutron-server")["expand"]:
            out = stack.run_job("neutron-server", mode)
            assert "ERROR" not in out, out
        api = stack.containers("neutron-server")["neutron-server"]
        box = stack._create("neutron-server", "neutron-server-gazpacho", api["command"],
                            stack.environment("neutron-server"), alias=False)
        box.start()
        stack.started["neutron-server-gazpacho"] = box
        port = stack.port("neutron-server", "api")
        stack._wait_probe(box, api, 300)
    finally:
        del stack.tags["neutron-server"]
    url = f"http://{stack.address(box)}:{port}"
    status, _, body = demo.http("GET", f"{url}/healthcheck")
    assert status == 200, body
    status, _, data = demo.http("GET", f"{url}/v2.0/networks",
                                token=_token(stack, _keystone(stack)))
    assert status == 200, data
    assert proof.network["id"] in {n["id"] for n in data["networks"]}


def test_images_are_small_enough_and_hold_no_secret(built, lab_secrets):
    client = docker.from_env()
    base = client.images.get(built["openstack-base:flamingo"].tag)
    for name in ("keystone", "glance-api", "placement-api", "nova-controller",
                 "neutron-server"):
        image = client.images.get(built[name].tag)
        print(f"{name}: {image.attrs['Size'] / 1e6:.0f} MB, built in {built[name].seconds:.0f}s")
        # the service layers add configuration and scripts, not packages
        assert image.attrs["Size"] - base.attrs["Size"] < 10e6, name
        assert image.attrs["Config"]["Entrypoint"] == ["/usr/local/bin/stacksalt-entrypoint"]
        # templates only: the rendered files carry placeholders, never the lab's values
        out = client.containers.run(
            image.id, ["sh", "-c", "find /etc/stacksalt/templates -type f -exec cat {} +"],
            entrypoint=[], remove=True).decode()
        assert "${" in out
        for value in lab_secrets.values():
            if len(value) >= 8:
                assert value not in out


OPENSTACK_IMAGES = ["keystone", "glance-api", "placement-api", "nova-controller",
                    "nova-compute", "neutron-server"]


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
            # every program the image's modes exec (and neutron's plugins) imports on
            # this release: a library too new for it fails here (neutron-lib 5.0.1 for
            # neutron 27: no constants.ACCESS_READONLY)
            programs = _entry_points(image.source)
            out = client.containers.run(tag, ["bash", "-c", LOAD_ENTRY_POINTS, "-", *programs],
                                        entrypoint=[], remove=True).decode()
            assert out.split() == sorted(programs), out
        finally:
            client.images.remove(tag)


# one process per program (each selects its own oslo.service backend at import); an
# argument is GROUP:NAME of an entry point
LOAD_ENTRY_POINTS = """
set -e
for name in "$@"; do
  python -W ignore -c '
import sys
from importlib.metadata import entry_points
group, name = sys.argv[1].split(":", 1)
(ep,) = [e for e in entry_points(group=group) if e.name == name]
ep.load()
print(sys.argv[1])' "$name"
done
"""


def _entry_points(source: str) -> list[str]:
    """The console scripts the image's commands/ scripts exec (gunicorn's WSGI apps are
    proven by the live stack) and, for neutron, the model's plugins and ML2 drivers:
    neutron's programs import those only at start, where a too-new neutron-lib fails."""
    programs = set()
    for script in (paths.images_dir() / source / "commands").iterdir():
        for line in script.read_text().splitlines():
            words = line.split()
            if words[:1] == ["exec"] and words[1] != "gunicorn":
                programs.add(f"console_scripts:{words[1]}")
    if source == "neutron-server":
        dep = Deployment.load("lab")
        server = next(params["neutron"]["server"] for params in
                      map(dep.parameters, dep.node_names)
                      if "server" in params.get("neutron", {}))
        programs.add(f"neutron.core_plugins:{server['core_plugin']}")
        programs.update(f"neutron.service_plugins:{p}" for p in server["service_plugins"])
        for kind in ("type_drivers", "mechanism_drivers"):
            programs.update(f"neutron.ml2.{kind}:{d}" for d in server["ml2"][kind])
    return sorted(programs)


def _keystone(stack) -> str:
    return stack.address(stack.started["keystone-api"])


def _neutron(stack) -> str:
    port = stack.port("neutron-server", "api")
    return f"http://{stack.address(stack.started['neutron-server'])}:{port}"


def _token(stack, keystone: str) -> str:
    env = stack.environment("keystone")
    status, headers, _ = demo.http("POST", f"http://{keystone}:5000/v3/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"},
            "password": env["KEYSTONE_ADMIN_PASSWORD"]}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
    assert status == 201
    return headers["X-Subject-Token"]
