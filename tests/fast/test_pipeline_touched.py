"""The pipeline's dry run targets the minions whose rendered model differs between the two
revisions, and every minion when the formulas they are served differ."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacksalt.pipeline import run
from tests.trees import copy_deployment

pytestmark = pytest.mark.fast


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / "reclass" / "classes" / "cluster" / "lab" / rel
    text = path.read_text()
    assert text.count(old) == 1, (rel, old)
    path.write_text(text.replace(old, new))


@pytest.fixture
def two(tmp_path):
    old = copy_deployment("lab", tmp_path / "old")
    new = copy_deployment("lab", tmp_path / "new", copy_product=("formulas",))
    return old, new


def test_an_unchanged_model_touches_no_minion(two):
    old, new = two
    assert run.touched_nodes("lab", old, new) == []


def test_a_control_plane_value_touches_the_nodes_that_render_it(two):
    old, new = two
    _edit(new, "openstack/init.yml", "keystone_replicas: 1\n", "keystone_replicas: 2\n")
    # the masters render the OpenStack objects; _param alone (on every node) does not count
    assert run.touched_nodes("lab", old, new) == [
        "mst01.lab.local", "mst02.lab.local", "mst03.lab.local"]


def test_a_value_of_one_node_touches_that_node_only(two):
    old, new = two
    node = new / "reclass" / "nodes" / "lab" / "cmp01.lab.local.yml"
    text = node.read_text()
    node.write_text(text.rstrip("\n") + "\n  linux:\n    system:\n      timezone: Europe/Oslo\n"
                    if "parameters:" in text else text + "parameters:\n  linux:\n    system:\n"
                    "      timezone: Europe/Oslo\n")
    assert run.touched_nodes("lab", old, new) == ["cmp01.lab.local"]


def test_a_formula_change_touches_every_minion(two):
    old, new = two
    top = new / "stacksalt" / "formulas" / "linux" / "map.jinja"
    top.write_text(top.read_text() + "{#- changed #}\n")
    assert len(run.touched_nodes("lab", old, new)) == 9


def test_a_first_revision_touches_every_minion(two):
    _, new = two
    assert len(run.touched_nodes("lab", None, new)) == 9


def test_a_previous_revision_that_does_not_render_is_not_compared_with(two):
    """The branch's broken tip as --from (the master served nothing yet): not a model to
    compare with; the run dry-runs every minion instead (run.previous_model)."""
    old, new = two
    _edit(old, "openstack/init.yml", "parameters:", "classes:\n  - system.nothing.here\n"
          "parameters:")
    assert run.previous_model("lab", old) is None
    assert run.previous_model("lab", new) is not None
