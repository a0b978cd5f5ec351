"""The OpenStack release the apply rolls out, and its series (the order of releases):
carried by the model (kubernetes:control:release, release_series), put into the apply
plan by the objects builder, checked by the model check against releases.yml. The apply
state's refusal itself is in test_apply_logic.py, the plan's in test_upgrade_plan.py."""

from __future__ import annotations

import copy

import pytest

from stacksalt import objects, secrets
from stacksalt.deployment import Deployment
from stacksalt.model import check
from tests.trees import copy_deployment

pytestmark = pytest.mark.fast

MASTER = "mst01.lab.local"


@pytest.fixture(scope="module")
def lab():
    secrets.generate("lab")
    dep = Deployment.load("lab")
    return dep, objects.pillar(dep, MASTER, secrets.decrypt_all("lab"))


def test_the_plan_names_the_release_and_its_series(lab):
    dep, pillar = lab
    plan = objects.builder().build(pillar, objects.defaults())["plan"]
    assert plan["release"] == {"name": "flamingo", "series": "2025.2"}
    assert plan["allow_downgrade"] is False
    allowed = copy.deepcopy(pillar)
    allowed["kubernetes"]["control"]["allow_downgrade"] = True
    assert objects.builder().build(allowed, objects.defaults())["plan"]["allow_downgrade"]


def test_a_release_without_a_series_is_refused_by_the_builder(lab):
    _dep, pillar = lab
    broken = copy.deepcopy(pillar)
    del broken["kubernetes"]["control"]["release_series"]["flamingo"]
    with pytest.raises(objects.error_type()) as err:
        objects.builder().build(broken, objects.defaults())
    assert str(err.value).startswith(
        "kubernetes:control:release_series has no series for release 'flamingo' "
        "(known: gazpacho)")


def test_the_model_check_wants_a_series_for_every_release(tmp_path):
    root = copy_deployment("lab", tmp_path / "lab")
    assert check.run(root / "reclass", "lab").errors == []  # positive control
    system = root / "reclass/classes/system/openstack/release.yml"
    system.write_text(system.read_text().replace('      gazpacho: "2026.1"\n', ""))
    errors = check.run(root / "reclass", "lab").errors
    assert [(e.kind, e.file, e.key) for e in errors] == [
        ("unknown-openstack-release", "classes/system/openstack/release.yml",
         "parameters:_param:openstack_release_series")]
    assert "release 'gazpacho' of images/openstack-base/releases.yml has no series" in str(
        errors[0])
