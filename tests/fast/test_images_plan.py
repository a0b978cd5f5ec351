"""`stacksalt images plan`: inputs digests of the lab's images, what changes them (and what
does not), and the registry lookup against a real Distribution registry (Debian's
docker-registry, run as a plain process: no Docker)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import docker
import pytest
import requests
import yaml

from stacksalt import paths
from stacksalt.deployment import Deployment
from stacksalt.images import assemble, build, definitions, releases
from stacksalt.images import plan as imageplan
from stacksalt.images.errors import ImagesError
from tests.netutil import free_port, throwaway_tls

pytestmark = pytest.mark.fast

INFRA = {"mariadb", "rabbitmq", "memcached"}
OPENSTACK = {"keystone", "glance-api", "placement-api", "nova-controller", "nova-compute",
             "neutron-server"}
OPENSTACK_INIT = "classes/cluster/lab/openstack/init.yml"
CLUSTER_INIT = "classes/cluster/lab/init.yml"
NODE = "mst01.lab.local"


def fake_base_id(tag: str) -> str:
    """A stand-in for the engine's image ID of a base image: one ID per tag."""
    return "sha256:" + hashlib.sha256(f"image id of {tag}".encode()).hexdigest()


def digests(inventory: Path | None = None, root: Path | None = None,
            base_id=fake_base_id) -> dict[str, imageplan.Inputs]:
    defs = definitions.load("lab", inventory=inventory)
    work = build.plan(defs, [], root)
    return build.inputs_of(work, base_id, root)


@pytest.fixture(scope="module")
def lab_inputs():
    return digests()


@pytest.fixture(scope="module")
def lab_defs():
    return definitions.load("lab")


def _edit(inv: Path, rel: str, old: str, new: str) -> None:
    path = inv / rel
    text = path.read_text()
    assert text.count(old) == 1, f"{rel}: expected one '{old}'"
    path.write_text(text.replace(old, new))


def _model_copy(tmp_path: Path) -> Path:
    inv = tmp_path / "reclass"
    shutil.copytree(paths.reclass_dir("lab"), inv)
    return inv


def _changed(a: dict[str, imageplan.Inputs], b: dict[str, imageplan.Inputs]) -> set[str]:
    assert set(a) == set(b)
    return {n for n in a if a[n].digest != b[n].digest}


# --- the digest -------------------------------------------------------------------------

def test_every_lab_image_has_a_digest_of_five_parts(lab_inputs):
    assert set(lab_inputs) == INFRA | OPENSTACK
    for name, ins in lab_inputs.items():
        assert set(ins.parts) == set(imageplan.PARTS), name
        assert ins.digest == imageplan.sha256(imageplan.canonical(ins.parts))
        labels = ins.labels()
        assert labels[imageplan.LABEL_DIGEST] == ins.digest
        assert {k for k in labels if k.startswith(imageplan.LABEL_PART)} == \
            {f"io.stacksalt.inputs.{p}" for p in imageplan.PARTS}
    # the bases are the FROM images of the Dockerfiles, through the build args
    assert set(lab_inputs["mariadb"].bases) == {"stacksalt/base:bookworm",
                                                build.SALT_IMAGE}
    assert set(lab_inputs["keystone"].bases) == {"stacksalt/openstack-base:flamingo",
                                                 build.SALT_IMAGE}
    # an infrastructure image has no constraints file; an OpenStack one its release's
    empty = imageplan.sha256(b"")
    assert lab_inputs["mariadb"].parts["constraints"] == empty
    assert lab_inputs["keystone"].parts["constraints"] == imageplan.sha256(
        releases.constraints_file("flamingo").read_bytes())
    assert len({ins.digest for ins in lab_inputs.values()}) == len(lab_inputs)


def test_context_tar_and_digest_are_the_same_on_every_run(lab_defs, tmp_path):
    """Two assemblies, the second after every file's mtime changed, give the same bytes
    and digest (and the same as the repository's own files); a changed byte changes both
    (negative control)."""
    for sub in ("images", "formulas"):
        shutil.copytree(getattr(paths, f"{sub}_dir")(), tmp_path / sub)
    image = lab_defs.images["memcached"]
    first = assemble.image_context(image, tmp_path).tar()
    one = imageplan.inputs(image, assemble.image_context(image, tmp_path),
                           build.buildargs(image), fake_base_id, tmp_path)
    for path in (tmp_path / "formulas/memcached").rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    again = assemble.image_context(image, tmp_path).tar()
    assert again == first
    assert assemble.image_context(image).tar() == first  # and the same as the repo's
    two = imageplan.inputs(image, assemble.image_context(image, tmp_path),
                           build.buildargs(image), fake_base_id, tmp_path)
    assert two == one
    with tarfile.open(fileobj=io.BytesIO(first)) as t:
        assert {(m.mtime, m.uid, m.gid, m.uname) for m in t.getmembers()} == {(0, 0, 0, "root")}
    # negative control: one byte of a formula's template
    sls = tmp_path / "formulas/memcached/server/config.sls"
    sls.write_text(sls.read_text() + "\n# changed\n")
    three = imageplan.inputs(image, assemble.image_context(image, tmp_path),
                             build.buildargs(image), fake_base_id, tmp_path)
    assert assemble.image_context(image, tmp_path).tar() != first
    assert three.digest != one.digest
    assert [p for p in imageplan.PARTS if three.parts[p] != one.parts[p]] == ["context"]


def test_the_base_images_id_is_an_input(lab_defs):
    image = lab_defs.images["keystone"]
    ctx = assemble.image_context(image)
    args = build.buildargs(image)
    one = imageplan.inputs(image, ctx, args, fake_base_id)
    rebuilt_base = imageplan.inputs(
        image, ctx, args,
        lambda tag: "sha256:" + "0" * 64 if "openstack-base" in tag else fake_base_id(tag))
    assert rebuilt_base.digest != one.digest
    assert [p for p in imageplan.PARTS if rebuilt_base.parts[p] != one.parts[p]] == ["base"]
    # the base's ID of another image (mariadb's stacksalt/base) does not matter to keystone
    other = imageplan.inputs(
        image, ctx, args,
        lambda tag: "sha256:" + "1" * 64 if tag == "stacksalt/base:bookworm" else fake_base_id(tag))
    assert other == one


def test_from_images_resolves_build_args_and_skips_stages():
    dockerfile = ("ARG BASE_IMAGE\nFROM ${SALT_IMAGE} AS render\nFROM $BASE_IMAGE AS b\n"
                  "FROM b AS c\nfrom debian:bookworm\nFROM scratch\n")
    assert imageplan.from_images(dockerfile, {"SALT_IMAGE": "s:1", "BASE_IMAGE": "b:2"}) == \
        ["s:1", "b:2", "debian:bookworm"]
    with pytest.raises(ImagesError, match="FROM \\$BASE_IMAGE names the build arg BASE_IMAGE"):
        imageplan.from_images(dockerfile, {"SALT_IMAGE": "s:1"})


# --- the measured properties over copies of the lab's model ------------------------------

def test_a_replica_count_changes_no_image(lab_inputs, tmp_path):
    inv = _model_copy(tmp_path)
    _edit(inv, OPENSTACK_INIT, "nova_controller_replicas: 1", "nova_controller_replicas: 3")
    _edit(inv, OPENSTACK_INIT, "keystone_replicas: 1", "keystone_replicas: 3")
    # the edit reached the model (else this test would prove nothing)
    svc = Deployment.load("lab", inventory=inv).parameters(NODE)["kubernetes"]["control"]
    assert svc["service"]["nova-controller"]["replicas"] == 3
    assert svc["service"]["keystone"]["replicas"] == 3
    assert _changed(lab_inputs, digests(inv)) == set()


def test_one_nova_option_changes_only_the_images_baking_it(lab_inputs, lab_defs, tmp_path):
    inv = _model_copy(tmp_path)
    _edit(inv, OPENSTACK_INIT, "nova_cpu_allocation_ratio: 16.0", "nova_cpu_allocation_ratio: 8.0")
    after = digests(inv)
    bakers = {d.name for d in lab_defs.enabled()
              if any(k == "nova:compute" or "nova:compute".startswith(k + ":")
                     for k in d.pillar_keys)}
    assert bakers == {"nova-compute"}
    assert _changed(lab_inputs, after) == bakers
    parts = after["nova-compute"].parts
    assert {p for p in imageplan.PARTS if parts[p] != lab_inputs["nova-compute"].parts[p]} \
        == {"context", "pillar"}  # the pillar is also in the context (pillar/image.sls)


def test_the_openstack_release_changes_every_openstack_image_and_no_other(lab_inputs, tmp_path):
    inv = _model_copy(tmp_path)
    _edit(inv, CLUSTER_INIT, "openstack_version: flamingo", "openstack_version: gazpacho")
    after = digests(inv)
    assert _changed(lab_inputs, after) == OPENSTACK
    for name in OPENSTACK:
        changed = {p for p in imageplan.PARTS
                   if after[name].parts[p] != lab_inputs[name].parts[p]}
        assert {"base", "constraints", "args"} <= changed, name
        assert set(after[name].bases) == {"stacksalt/openstack-base:gazpacho", build.SALT_IMAGE}
    for name in INFRA:
        assert after[name] == lab_inputs[name]


def test_a_negative_control_for_the_properties(lab_inputs, tmp_path):
    """The comparison sees a change where there is one: memcached's memory changes only
    memcached (not nothing, not everything)."""
    inv = _model_copy(tmp_path)
    _edit(inv, "classes/service/memcached/server.yml", "memory_mb: 128", "memory_mb: 256")
    assert _changed(lab_inputs, digests(inv)) == {"memcached"}


# --- decisions -----------------------------------------------------------------------------

def test_decide_names_the_outcomes(lab_defs, lab_inputs):
    image = lab_defs.images["keystone"]
    ins = lab_inputs["keystone"]
    assert imageplan.decide(image, ins, None).reason == "new"
    assert imageplan.decide(image, ins, {"other": "x"}).reason == "unlabelled"
    same = imageplan.decide(image, ins, ins.labels())
    assert (same.action, same.build) == ("reuse", False)
    stale = dict(ins.labels(), **{imageplan.LABEL_DIGEST: "sha256:old",
                                  "io.stacksalt.inputs.pillar": "sha256:old",
                                  "io.stacksalt.inputs.args": "sha256:old"})
    d = imageplan.decide(image, ins, stale)
    assert (d.action, d.reason, d.changed) == ("build", "changed pillar, args", ["pillar", "args"])
    d = imageplan.decide(image, ins, {imageplan.LABEL_DIGEST: "sha256:old"})
    assert d.action == "build" and d.reason.startswith("changed") and d.changed == []


# --- the registry: a real docker-registry process -----------------------------------------

class Registry:
    def __init__(self, tmp: Path, user: str, password: str, tls: bool = False) -> None:
        binary = shutil.which("docker-registry")
        assert binary, "docker-registry is missing: ci/setup installs it"
        htpasswd = shutil.which("htpasswd")
        assert htpasswd, "htpasswd is missing: ci/setup installs apache2-utils"
        self.tmp = tmp
        self.address = f"127.0.0.1:{free_port()}"
        self.auth = (user, password)
        pwfile = tmp / "htpasswd"
        subprocess.run([htpasswd, "-B", "-i", "-c", str(pwfile), user], input=password,
                       text=True, check=True, capture_output=True)  # password on stdin
        config = tmp / "config.yml"
        http: dict = {"addr": self.address}
        self.scheme, self.verify = "http", True
        if tls:
            self.ca, cert, key = throwaway_tls(tmp, "test registry CA", "127.0.0.1")
            http["tls"] = {"certificate": str(cert), "key": str(key)}
            self.scheme, self.verify = "https", str(self.ca)
        config.write_text(yaml.safe_dump({
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(tmp / "data")}},
            "http": http,
            "auth": {"htpasswd": {"realm": "test", "path": str(pwfile)}},
        }))
        self.log = (tmp / "registry.log").open("w")
        self.proc = subprocess.Popen([binary, "serve", str(config)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(self.url("/v2/"), auth=self.auth, timeout=1,
                                verify=self.verify).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert self.proc.poll() is None, (tmp / "registry.log").read_text()
            assert time.monotonic() < deadline, "docker-registry did not start"
            time.sleep(0.1)

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.address}{path}"

    def blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = requests.post(self.url(f"/v2/{repo}/blobs/uploads/"), auth=self.auth, timeout=10)
        assert r.status_code == 202, r.text
        location = requests.compat.urljoin(self.url("/"), r.headers["Location"])
        r = requests.put(location, params={"digest": digest}, data=data, auth=self.auth,
                         headers={"Content-Type": "application/octet-stream"}, timeout=10)
        assert r.status_code == 201, r.text
        return digest

    def put_image(self, repo: str, tag: str, labels: dict[str, str] | None) -> None:
        """An image of one empty layer whose config holds the labels (what docker push
        would store)."""
        layer_tar = io.BytesIO()
        with tarfile.open(fileobj=layer_tar, mode="w"):
            pass
        layer = gzip.compress(layer_tar.getvalue(), mtime=0)
        config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "config": {"Labels": labels} if labels is not None else {},
            "rootfs": {"type": "layers",
                       "diff_ids": ["sha256:" + hashlib.sha256(layer_tar.getvalue()).hexdigest()]},
        }).encode()
        manifest = {
            "schemaVersion": 2, "mediaType": imageplan.MANIFEST_V2,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "size": len(config), "digest": self.blob(repo, config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": len(layer), "digest": self.blob(repo, layer)}],
        }
        r = requests.put(self.url(f"/v2/{repo}/manifests/{tag}"), data=json.dumps(manifest),
                         headers={"Content-Type": imageplan.MANIFEST_V2}, auth=self.auth,
                         timeout=10)
        assert r.status_code == 201, r.text

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def registry(tmp_path, lab_secrets, lab_defs):
    """A registry whose one account is the lab's (docker:registry:user, its password secret)."""
    assert lab_defs.registry and lab_defs.registry.user and lab_defs.registry.password_secret
    reg = Registry(tmp_path, lab_defs.registry.user,
                   lab_secrets[lab_defs.registry.password_secret])
    yield reg
    reg.stop()


def _api(reg: Registry, password: str | None = None) -> imageplan.RegistryAPI:
    user, pw = reg.auth
    return imageplan.RegistryAPI(reg.address, {"username": user, "password": password or pw},
                                 plain_http=True)


def test_lookup_gives_each_outcome_from_a_real_registry(registry, lab_defs, lab_inputs):
    ns = lab_defs.images["keystone"].namespace
    ins = {n: lab_inputs[n] for n in ("keystone", "glance-api", "mariadb", "memcached",
                                      "rabbitmq")}
    registry.put_image(f"{ns}/keystone", "flamingo", ins["keystone"].labels())
    stale = dict(ins["glance-api"].labels(), **{
        imageplan.LABEL_DIGEST: "sha256:" + "a" * 64,
        "io.stacksalt.inputs.constraints": "sha256:" + "b" * 64})
    registry.put_image(f"{ns}/glance-api", "flamingo", stale)
    registry.put_image(f"{ns}/mariadb", "10.11", {"io.stacksalt.image": "mariadb"})
    # memcached: another tag than the model's version only
    registry.put_image(f"{ns}/memcached", "0.9", ins["memcached"].labels())
    images = [lab_defs.images[n] for n in ins]
    api = _api(registry)
    api.ping()
    got = {d.image: (d.action, d.reason)
           for d in imageplan.decisions(images, ins, lambda r: api)}
    assert got == {
        "keystone": ("reuse", ""),
        "glance-api": ("build", "changed constraints"),
        "mariadb": ("build", "unlabelled"),
        "memcached": ("build", "new"),
        "rabbitmq": ("build", "new"),
    }
    # negative control: the registry's keystone was built from other inputs -> no reuse
    registry.put_image(f"{ns}/keystone", "flamingo", ins["glance-api"].labels())
    again = imageplan.decisions([lab_defs.images["keystone"]], ins, lambda r: api)[0]
    assert again.action == "build"
    assert again.changed == ["context", "pillar"]  # same release: same args, base


def test_a_wrong_password_is_an_error_not_a_build(registry, lab_defs):
    api = _api(registry, password="not-the-password")
    with pytest.raises(ImagesError) as exc:
        api.ping()
    msg = str(exc.value)
    assert f"registry {registry.address} refused user {registry.auth[0]} (HTTP 401" in msg
    assert "docker:registry:user" in msg and "not-the-password" not in msg
    assert "\n" not in msg
    with pytest.raises(ImagesError, match="refused user"):
        api.labels("lab/keystone", "flamingo")


def test_a_stopped_registry_is_an_error_not_a_build(registry, lab_defs, lab_inputs):
    api = _api(registry)
    api.ping()  # it answers while it runs (negative control)
    assert api.labels("lab/keystone", "flamingo") is None
    registry.stop()
    with pytest.raises(ImagesError) as exc:
        imageplan.decisions([lab_defs.images["keystone"]], lab_inputs, lambda r: api)
    msg = str(exc.value)
    assert f"registry {registry.address} does not answer" in msg
    assert "start it or fix docker:build:registry" in msg
    assert "\n" not in msg


def test_images_plan_cli_prints_json_and_a_table(registry, lab_defs, lab_inputs, capsys):
    ns = lab_defs.images["keystone"].namespace
    registry.put_image(f"{ns}/keystone", "flamingo", lab_inputs["keystone"].labels())
    rc = build.main_plan("lab", ["keystone", "memcached"], as_json=True,
                         registry=registry.address, plain_http=True, base_id=fake_base_id)
    out = capsys.readouterr()
    assert rc == 0, out.err
    plan = json.loads(out.out)
    assert plan["deployment"] == "lab"
    rows = {r["image"]: r for r in plan["images"]}
    assert rows["keystone"]["decision"] == "reuse"
    assert rows["keystone"]["tag"] == f"{registry.address}/{ns}/keystone:flamingo"
    assert rows["keystone"]["inputs_digest"] == lab_inputs["keystone"].digest
    assert (rows["memcached"]["decision"], rows["memcached"]["reason"]) == ("build", "new")
    assert build.main_plan("lab", [], registry=registry.address, plain_http=True,
                           base_id=fake_base_id) == 0
    table = capsys.readouterr().out
    assert "image plan of lab" in table
    for name in INFRA | OPENSTACK:
        assert name in table
    # a stopped registry: exit 1 and one line naming it
    registry.stop()
    assert build.main_plan("lab", ["keystone"], registry=registry.address, plain_http=True,
                           base_id=fake_base_id) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"stacksalt images plan: registry {registry.address} does not answer")
    assert "\n" not in err


def test_images_plan_cli_without_a_base_on_the_host_names_it(registry, capsys):
    def no_base(tag: str) -> str:
        raise ImagesError(f"base image {tag} is not on this host")
    assert build.main_plan("lab", ["memcached"], registry=registry.address, plain_http=True,
                           base_id=no_base) == 1
    assert "base image stacksalt/" in capsys.readouterr().err


def test_tls_is_verified_with_the_registrys_ca(tmp_path, lab_defs, lab_inputs, monkeypatch):
    """HTTPS with the CA the registry's certificate is signed by: given as --ca-file, or
    found where the Docker engine looks (/etc/docker/certs.d/<registry>/ca.crt); without
    it (the system's CAs) the lookup is a one-line TLS error, not a build."""
    reg = Registry(tmp_path, "builder", "tls-test-password", tls=True)
    try:
        auth = {"username": "builder", "password": "tls-test-password"}
        image = lab_defs.images["memcached"]
        got = imageplan.RegistryAPI(reg.address, auth, ca=reg.ca).labels(
            f"{image.namespace}/memcached", image.version)
        assert got is None  # answered over verified TLS: no such tag
        certs = tmp_path / "certs.d"
        (certs / reg.address).mkdir(parents=True)
        shutil.copy(reg.ca, certs / reg.address / "ca.crt")
        monkeypatch.setattr(imageplan, "DOCKER_CERTS_DIR", certs)
        api = imageplan.RegistryAPI(reg.address, auth)
        assert api.ca == certs / reg.address / "ca.crt"
        api.ping()
        # negative control: the system's CAs do not know the registry's
        monkeypatch.setattr(imageplan, "DOCKER_CERTS_DIR", tmp_path / "none")
        with pytest.raises(ImagesError) as exc:
            imageplan.RegistryAPI(reg.address, auth).ping()
        msg = str(exc.value)
        assert f"registry {reg.address}: TLS verification failed with the system's CAs" in msg
        assert f"put the registry's CA in {tmp_path / 'none'}/{reg.address}/ca.crt" in msg
        assert "\n" not in msg
    finally:
        reg.stop()


def test_build_changed_only_refuses_a_dead_registry_before_anything_is_built(capsys):
    """`images build --changed-only` asks the registry first: one that does not answer stops
    it before the engine is touched (no Docker runs here: reaching the engine would be a
    different error)."""
    from stacksalt import cli

    port = free_port()  # nothing listens there
    assert cli.main(["-C", str(paths.example("lab")), "images", "build", "lab", "memcached",
                     "--changed-only",
                     "--registry", f"127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"stacksalt images build: registry 127.0.0.1:{port} does not answer")
    assert "\n" not in err


def test_build_changed_only_passes_a_live_registry_and_then_needs_the_engine(registry,
                                                                            monkeypatch):
    """Negative control of the test above: with the registry up the check passes and the
    build goes on to the engine, pointed here at a socket where none listens (so that this
    test never builds, even on a host whose dockerd runs)."""
    from rich.console import Console

    monkeypatch.setenv("DOCKER_HOST", f"unix://{registry.tmp}/no-docker.sock")
    with pytest.raises(docker.errors.DockerException):
        build.build_images(None, Console(), "lab", ["memcached"], changed_only=True,
                           registry=registry.address, plain_http=True)
