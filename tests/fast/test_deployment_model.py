"""One `Deployment`, rendered once and passed down: the colon-path reader, its one-line
errors (file and key), the one registry reader, and `lab up` rendering the model once."""

from __future__ import annotations

import pytest
from rich.console import Console

from stacksalt import engine, paths
from stacksalt.deployment import Deployment
from stacksalt.errors import StacksaltError
from stacksalt.images import definitions
from stacksalt.keypath import MISSING, lookup
from stacksalt.lab import lab as lab_mod
from stacksalt.lab import pipeline, registry_trust
from stacksalt.lab.plan import plan
from stacksalt.pipeline.cli import api_settings
from tests.trees import copy_deployment

pytestmark = pytest.mark.fast

MASTER = "cfg01.lab.local"


def test_lookup_reads_mappings_lists_and_raw_prefixes():
    tree = {"a": {"b": [{"c": 1}, {"c": 2}]}, "~d": {"=e": "x"}, "f": None}
    assert lookup(tree, "a:b:1:c") == 2
    assert lookup(tree, ("a", "b", "0", "c")) == 1
    assert lookup(tree, "f") is None  # present but null is not missing
    assert lookup(tree, "a:b:2:c") is MISSING
    assert lookup(tree, "a:x", "dflt") == "dflt"
    assert lookup(tree, "d:e") is MISSING  # the markers match only when asked
    assert lookup(tree, "d:e", prefixes="~=") == "x"


class _CountingCore:
    """engine.core, counting how often a reclass Core (a full model load) is made."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real = engine.core

        def core(*a, **k):
            self.calls += 1
            return real(*a, **k)

        monkeypatch.setattr(engine, "core", core)


class _Stop(Exception):
    pass


def test_lab_up_renders_the_model_once_and_passes_it_down(monkeypatch):
    """The model check's render is the one `lab up` plans from, makes its secrets from,
    trusts the registry from and wires the pipeline from: one reclass Core in all."""
    cores = _CountingCore(monkeypatch)
    seen = {}

    def generate(deployment, dep=None):
        seen["generate"] = dep
        return [], []

    def stop(*_a, **_k):
        raise _Stop

    monkeypatch.setattr(lab_mod.secrets, "generate", generate)
    monkeypatch.setattr(lab_mod.dockerd, "ensure_engine", stop)
    real_plan = lab_mod.plan
    monkeypatch.setattr(lab_mod, "plan", lambda dep: seen.setdefault("plan", real_plan(dep)))
    with pytest.raises(_Stop):
        lab_mod.up("lab", console=Console(quiet=True))
    lp = seen["plan"]
    assert lp.model is not None and seen["generate"] is lp.model
    # the steps after the containers read the plan's model, not the files again
    reg = registry_trust.registry(lp.model)
    pipe = pipeline.of(lp.model, lp)
    assert cores.calls == 1, f"lab up loaded the model {cores.calls} times"
    assert reg is not None and reg.name == "cfg01.lab.local:5000"
    assert pipe is not None and pipe.registry_ca.parent.name == reg.name


def test_the_check_render_is_the_plain_render():
    checked, errors = Deployment.check("lab")
    plain = Deployment.load("lab")
    assert errors == []
    assert checked.node_names == plain.node_names
    for node in plain.node_names:
        assert checked.parameters(node) == plain.parameters(node)
    assert checked.root == paths.deployment_root("lab")
    assert checked.registry == plain.registry == definitions.load("lab").registry
    assert api_settings(checked) == api_settings(plain)


def test_a_missing_key_names_its_file_and_key():
    dep = Deployment.load("lab")
    assert dep.get(MASTER, "salt:master:enabled") is True
    assert dep.get(MASTER, "linux:system:nope", 7) == 7
    with pytest.raises(StacksaltError) as err:
        dep.get(MASTER, "linux:system:nope", needed_by="the lab")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == ("classes/cluster/lab/init.yml: parameters:linux:system:nope: missing "
                   f"(node {MASTER}), which the lab needs")


def test_the_lab_plan_refuses_a_model_without_its_network(tmp_path):
    root = copy_deployment("lab", tmp_path / "lab")
    nodes = root / "reclass/classes/cluster/lab/nodes.yml"
    nodes.write_text(nodes.read_text().replace("    lab_network: 172.30.70.0/24\n", ""))
    with pytest.raises(StacksaltError) as err:
        plan(Deployment.load("lab", root / "reclass"))
    assert "parameters:_param:lab_network: missing" in str(err.value)
    assert "which the lab needs" in str(err.value)
    # positive control: the shipped model plans
    assert plan(Deployment.load("lab")).subnet == "172.30.70.0/24"


def test_the_registry_trust_names_the_missing_key(tmp_path):
    root = copy_deployment("lab", tmp_path / "lab")
    init = root / "reclass/classes/cluster/lab/init.yml"
    init.write_text(init.read_text().replace(
        "docker_registry_host: cfg01.${_param:cluster_domain}", "docker_registry_host: ''"))
    dep = Deployment.load("lab", root / "reclass")
    assert dep.registry is not None and dep.registry.hostname is None
    with pytest.raises(StacksaltError) as err:
        registry_trust.registry(dep)
    assert str(err.value).startswith(
        "classes/service/docker/registry.yml: parameters:docker:registry:hostname: missing "
        f"(node {MASTER}), which the build host's trust in the registry needs")
    assert registry_trust.registry(Deployment.load("lab")).hostname == MASTER
