"""`stacksalt images`: image definitions from the model, build contexts, and the clear
refusals (broken model, conflicting definitions, missing source, missing constraints)
that happen before anything is built. No Docker needed."""

from __future__ import annotations

import dataclasses
import io
import re
import shutil
import subprocess
import tarfile

import pytest
import yaml

from stacksalt import paths
from stacksalt.deployment import Deployment
from stacksalt.images import assemble, definitions, releases
from stacksalt.images.build import plan
from stacksalt.images.errors import ImagesError

pytestmark = pytest.mark.fast

NODE = "mst01.lab.local"


@pytest.fixture(scope="module")
def lab_defs():
    return definitions.load("lab")


def members(tar: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_lab_defines_exactly_the_enabled_images(lab_defs):
    raw = Deployment.load("lab").parameters(NODE)["docker"]["build"]["image"]
    assert {d.name for d in lab_defs.enabled()} == {n for n, s in raw.items() if s["enabled"]}
    assert {"mariadb", "rabbitmq", "memcached", "keystone"} <= set(lab_defs.images)
    mariadb = lab_defs.images["mariadb"]
    assert mariadb.tag == "cfg01.lab.local:5000/lab/mariadb:10.11"
    assert mariadb.release is None and mariadb.formulas == ["mariadb"]
    keystone = lab_defs.images["keystone"]
    assert keystone.release == "flamingo" and keystone.version == "flamingo"
    # every node that defines an image defines it the same way
    assert sorted(mariadb.nodes) == ["mst01.lab.local", "mst02.lab.local", "mst03.lab.local"]
    assert lab_defs.registry and lab_defs.registry.user and lab_defs.registry.password_secret


def test_context_is_deterministic_and_holds_only_the_images_subtrees(lab_defs, lab_secrets):
    image = lab_defs.images["mariadb"]
    first = assemble.image_context(image).tar()
    assert assemble.image_context(image).tar() == first  # byte for byte: cache hits
    files = members(first)
    assert {"Dockerfile", "commands/server", "entrypoint/stacksalt-entrypoint",
            "pillar/top.sls", "pillar/image.sls", "files/host-ca-certificates.crt",
            "formulas/mariadb/server/config.sls"} <= set(files)
    assert {n.split("/")[1] for n in files if n.startswith("formulas/")} == {"mariadb"}
    pillar = yaml.safe_load(files["pillar/image.sls"])
    node = Deployment.load("lab").parameters(NODE)
    assert pillar == {"mariadb": {"server": node["mariadb"]["server"]}}
    blob = b"".join(files.values())
    for name, value in lab_secrets.items():
        assert value.encode() not in blob, f"secret {name} in the build context"
    with tarfile.open(fileobj=io.BytesIO(first)) as t:
        assert {(m.mtime, m.uid, m.gid) for m in t.getmembers()} == {(0, 0, 0)}


# a formula's files that read another formula's: salt:// sources and Jinja imports
FORMULA_REFERENCE = re.compile(
    r"salt://([a-z0-9_]+)/"
    r"|\b(?:from|import|import_yaml|import_json|import_text|include)\s*\(?\s*[\"']([a-z0-9_]+)/")


def _references(files: dict[str, bytes], formula: str) -> set[str]:
    """The formulas the files of formulas/<formula>/ in a context read, other than itself."""
    refs: set[str] = set()
    for name, data in files.items():
        if name.startswith(f"formulas/{formula}/") and name.endswith((".sls", ".jinja")):
            for m in FORMULA_REFERENCE.finditer(data.decode()):
                refs.add(m.group(1) or m.group(2))
    return refs - {formula}


def test_every_image_context_holds_the_formulas_its_formulas_read(lab_defs):
    """The context's formulas/ is the render stage's only file root: a formula whose states
    read another formula's files (the OpenStack ones read openstack/) declares it in its
    requires.yaml, and the context holds it; what is declared is read."""
    seen_shared = set()
    for image in lab_defs.enabled():
        first = assemble.image_context(image).tar()
        assert assemble.image_context(image).tar() == first, image.name  # byte for byte
        files = members(first)
        held = {n.split("/")[1] for n in files if n.startswith("formulas/")}
        assert held == set(assemble.context_formulas(image)) >= set(image.formulas), image.name
        for formula in sorted(held):
            refs = _references(files, formula)
            assert refs <= held, f"{image.name}: formula {formula} reads {refs - held}, " \
                "which the context lacks"
            requires = files.get(f"formulas/{formula}/{assemble.REQUIRES}")
            declared = set(yaml.safe_load(requires) or []) if requires else set()
            assert declared == refs, f"formulas/{formula}/{assemble.REQUIRES} declares " \
                f"{sorted(declared)}, its files read {sorted(refs)}"
            if formula in ("keystone", "glance", "placement", "nova", "neutron"):
                assert "openstack" in refs, formula
                seen_shared.add(image.name)
    assert seen_shared == {"keystone", "glance-api", "placement-api", "nova-controller",
                           "nova-compute", "neutron-server"}
    assert assemble.context_formulas(lab_defs.images["mariadb"]) == ["mariadb"]


def test_a_missing_required_formula_names_the_requires_file(lab_defs, tmp_path):
    shutil.copytree(paths.formulas_dir() / "glance", tmp_path / "formulas/glance")
    (tmp_path / "formulas/glance/requires.yaml").write_text("- openstack\n")
    with pytest.raises(ImagesError) as exc:
        assemble.context_formulas(lab_defs.images["glance-api"], root=tmp_path)
    msg = str(exc.value)
    assert f"{tmp_path}/formulas/openstack is missing" in msg
    assert "formulas/glance/requires.yaml names it" in msg
    assert "image glance-api bakes the formula glance" in msg
    (tmp_path / "formulas/glance/requires.yaml").write_text("openstack: yes\n")
    with pytest.raises(ImagesError, match="requires.yaml: must be a list of formula names"):
        assemble.context_formulas(lab_defs.images["glance-api"], root=tmp_path)


def test_unknown_image_is_named(lab_defs):
    with pytest.raises(ImagesError, match="defines no image nosuch"):
        lab_defs.select(["nosuch"])


def test_missing_source_folder_names_the_model_key(lab_defs):
    image = dataclasses.replace(lab_defs.images["memcached"], source="nosuch")
    with pytest.raises(ImagesError) as exc:
        assemble.image_context(image)
    msg = str(exc.value)
    assert "images/nosuch/Dockerfile is missing" in msg
    assert "parameters:docker:build:image:memcached:source" in msg
    assert "classes/service/memcached/server.yml" in msg


def test_missing_constraints_file_names_file_and_model_key(lab_defs, tmp_path):
    (tmp_path / "images/openstack-base").mkdir(parents=True)
    shutil.copy(releases.releases_file(), tmp_path / "images/openstack-base/releases.yml")
    with pytest.raises(ImagesError) as exc:
        plan(lab_defs, ["memcached", "keystone"], root=tmp_path)
    msg = str(exc.value)
    assert "images/openstack-base/constraints/flamingo.txt is missing" in msg
    assert "parameters:docker:build:image:keystone:release" in msg
    assert "_param:openstack_version" in msg
    assert "stacksalt images freeze flamingo" in msg


def test_unknown_release_names_releases_yml():
    with pytest.raises(ImagesError, match="release 'nosuch'.*releases.yml"):
        releases.require_constraints("nosuch", "some key")


def test_both_releases_have_constraints_with_their_pins():
    known = releases.load()
    assert {"flamingo", "gazpacho"} <= set(known)
    for name, rel in known.items():
        text = releases.require_constraints(name).read_text().lower()
        for pin in rel.pins:
            if "==" in pin:
                assert pin.lower() in text.splitlines(), f"{name}: {pin} not in constraints"


def _inventory_copy(tmp_path):
    inv = tmp_path / "reclass"
    shutil.copytree(paths.reclass_dir("lab"), inv)
    return inv


def test_broken_reference_stops_everything_with_file_and_key(tmp_path):
    inv = _inventory_copy(tmp_path)
    cls = inv / "classes/service/memcached/server.yml"
    cls.write_text(cls.read_text().replace(
        "memory_mb: 128", "memory_mb: ${_param:memcached_memory_nonexistent}"))
    with pytest.raises(ImagesError) as exc:
        definitions.load("lab", inventory=inv)
    msg = str(exc.value)
    assert "classes/service/memcached/server.yml" in msg
    assert "memcached_memory_nonexistent" in msg
    assert "nothing was built" in msg


def test_two_nodes_defining_one_image_differently_are_named(tmp_path):
    inv = _inventory_copy(tmp_path)
    node_file = inv / "nodes/lab/mst02.lab.local.yml"
    data = yaml.safe_load(node_file.read_text())
    data["parameters"]["memcached"] = {"server": {"memory_mb": 512}}
    node_file.write_text(yaml.safe_dump(data))
    with pytest.raises(ImagesError) as exc:
        definitions.load("lab", inventory=inv)
    msg = str(exc.value)
    assert "image memcached is defined differently on nodes mst01.lab.local and " \
        "mst02.lab.local" in msg


def test_image_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: ci/setup installs it"
    images = paths.images_dir()
    scripts = [images / "entrypoint/stacksalt-entrypoint"] + [
        p for name in ("mariadb", "rabbitmq", "memcached")
        for p in sorted((images / name / "commands").iterdir())]
    proc = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_refuses_an_unknown_image_before_building(capsys):
    from stacksalt import cli

    assert cli.main(["-C", str(paths.example("lab")), "images", "build", "lab", "nosuch"]) == 1
    err = capsys.readouterr().err
    assert "deployment lab defines no image nosuch" in err
    assert "docker:build:image" in err
