"""`stacksalt lab up` refuses a model that fails the check, before it starts anything."""

from __future__ import annotations

import pytest
from rich.console import Console

from stacksalt import paths
from stacksalt.lab import lab as lab_mod
from tests.trees import copy_deployment

pytestmark = pytest.mark.fast


def test_lab_up_refuses_a_broken_model_before_docker(tmp_path, monkeypatch):
    root = copy_deployment("lab", tmp_path / "lab")
    broken = root / "reclass" / "classes" / "cluster" / "lab" / "init.yml"
    broken.write_text(broken.read_text().replace(
        "salt_master_host: ${linux:network:host:cfg01:address}",
        "salt_master_host: ${linux:network:host:cfg99:address}"))
    monkeypatch.setattr(paths, "_active", root.resolve())  # the copy is the active repo

    def no_docker(*_a, **_k):
        raise AssertionError("lab up touched Docker with a broken model")

    monkeypatch.setattr(lab_mod.dockerd, "ensure_engine", no_docker)
    monkeypatch.setattr(lab_mod.secrets, "generate", no_docker)
    console = Console(record=True, width=200)
    assert lab_mod.up("lab", console=console) == 1
    out = console.export_text()
    assert "classes/cluster/lab/init.yml" in out
    assert "salt_master_host" in out
    assert "nothing was started" in out
