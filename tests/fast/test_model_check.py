"""`stacksalt model check` against the broken-model corpus (tests/broken_models/).

Each corpus case is a tiny standalone inventory plus ``expected.yml``: the check must
report exactly those errors (kind, file, key, a message substring, and the nodes when
given), no more and no fewer, in one run.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stacksalt import engine, paths
from stacksalt.model import check as model_check
from stacksalt.model import semantic
from stacksalt.model.errors import ModelError
from stacksalt.model.synthetic import generate
from tests.trees import combined_inventory

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "broken_models"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expected.yml").is_file())
BROKEN = [c for c in CASES if yaml.safe_load((CORPUS / c / "expected.yml").read_text())["errors"]]
STACKSALT = Path(sys.executable).parent / "stacksalt"


def expected(case: str) -> dict:
    return yaml.safe_load((CORPUS / case / "expected.yml").read_text())


def matches(error: ModelError, want: dict) -> bool:
    return (
        error.kind == want["kind"]
        and error.file == want["file"]
        and error.key == want.get("key")
        and want["message"] in error.message
        and ("nodes" not in want or error.nodes == sorted(want["nodes"]))
    )


def show(errors: list) -> str:
    return "\n".join(f"  {e}" for e in errors) or "  (none)"


@pytest.mark.fast
def test_corpus_has_the_required_cases():
    required = {
        "good",
        "missing_class",
        "unresolved_reference",
        "type_conflict",
        "yaml_syntax",
        "reference_in_class_name",
        "several_errors",
        "good_network",
        "invalid_cidr",
        "pool_overlaps_service_range",
        "as_number_out_of_range",
        "route_reflector_not_a_node",
    }
    assert required <= set(CASES)


@pytest.mark.fast
@pytest.mark.parametrize("case", CASES)
def test_exactly_the_expected_errors(case):
    spec = expected(case)
    errors = model_check.check(CORPUS / case, spec["deployment"])
    wanted = list(spec["errors"])
    unexpected = []
    for error in errors:
        hit = next((w for w in wanted if matches(error, w)), None)
        if hit is None:
            unexpected.append(error)
        else:
            wanted.remove(hit)
    assert not wanted and not unexpected, (
        f"missing:\n{show(wanted)}\nunexpected:\n{show(unexpected)}"
    )


@pytest.mark.fast
@pytest.mark.parametrize("case", CASES)
def test_exit_code(case, capsys):
    spec = expected(case)
    code = model_check.main(deployment=spec["deployment"], inventory=CORPUS / case)
    out = capsys.readouterr().out
    if case not in BROKEN:  # "good" and the other clean cases
        assert code == 0
        assert out.startswith("OK:")
    else:
        assert code == 1
        assert "FAILED" in out


@pytest.mark.fast
@pytest.mark.parametrize("case", BROKEN)
def test_cli_prints_file_and_key(case):
    spec = expected(case)
    inventory = CORPUS.relative_to(ROOT) / case
    proc = subprocess.run(
        [str(STACKSALT), "model", "check", spec["deployment"], "--inventory", str(inventory)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for want in spec["errors"]:
        where = f"{inventory.as_posix()}/{want['file']}"
        hits = [
            line
            for line in lines
            if line.startswith(where) and (want.get("key") is None or f": {want['key']}: " in line)
        ]
        assert hits, f"no line for {where} {want.get('key')}:\n{proc.stdout}"
    assert lines[-1].startswith("FAILED: ")


@pytest.mark.fast
def test_cli_unknown_deployment():
    proc = subprocess.run(
        [str(STACKSALT), "model", "check", "nope", "--inventory", str(CORPUS / "good")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "deployments: lab" in proc.stderr


@pytest.mark.fast
def test_deployment_scope(tmp_path):
    """Only the deployment's nodes (and the files they use) are checked."""
    inv = tmp_path / "inv"
    shutil.copytree(CORPUS / "good", inv)
    (inv / "nodes" / "other").mkdir()
    (inv / "nodes" / "other" / "x01.other.local.yml").write_text("classes:\n  - cluster.other\n")
    assert model_check.check(inv, "lab") == []
    other = model_check.check(inv, "other")
    assert [(e.kind, e.file, e.nodes) for e in other] == [
        ("missing-class", "nodes/other/x01.other.local.yml", ["x01.other.local"])
    ]
    assert model_check.check(inv, None) == other


@pytest.mark.fast
def test_shared_core_renders_like_a_fresh_core(tmp_path):
    """The one-Core rendering gives what engine.render_node gives, node by node."""
    stats = generate(tmp_path / "synth", nodes=40, groups=8)
    for inventory, deployment in ((CORPUS / "good", "lab"), (stats.inventory, stats.deployment)):
        result = model_check.run(inventory, deployment)
        assert result.errors == []
        nodes = result.rendered_deployment.nodes
        assert len(nodes) == result.nodes
        for name, node in nodes.items():
            fresh = engine.render_node(inventory, name)
            for field in ("classes", "applications", "parameters", "exports", "environment"):
                assert node.info[field] == fresh[field], (name, field)


@pytest.mark.fast
def test_synthetic_model_is_clean(tmp_path):
    stats = generate(tmp_path / "synth", nodes=60)
    assert stats.classes > 150 and stats.references > 100
    result = model_check.run(stats.inventory, stats.deployment)
    assert result.errors == []
    assert result.rendered == 60


# -- locate and the semantic-check registry ---------------------------------------------


@pytest.fixture
def good_nodes():
    return model_check.run(CORPUS / "good", "lab").rendered_deployment.nodes


@pytest.mark.fast
@pytest.mark.parametrize(
    ("key", "file"),
    [
        ("parameters:etcd:server:version", "classes/service/etcd/server.yml"),
        ("etcd:server:enabled", "classes/service/etcd/server.yml"),
        ("parameters:etcd:server:bind:port", "classes/cluster/lab/etcd.yml"),  # ~bind
        ("parameters:etcd:server:members:1:host", "classes/system/etcd/server/cluster.yml"),
        ("parameters:linux:system:packages:1", "classes/service/linux/system.yml"),
        ("parameters:linux:system:packages:2", "classes/cluster/lab/init.yml"),
        ("parameters:linux:system:packages", "classes/cluster/lab/init.yml"),
        ("parameters:_param:domain", "classes/cluster/lab/init.yml"),
        ("parameters:_param:hostname", "nodes/lab/ctl01.lab.local.yml"),
        ("parameters:_param:hostname:deeper", "nodes/lab/ctl01.lab.local.yml"),
        ("parameters:_reclass_:name:full", None),
    ],
)
def test_locate(good_nodes, key, file):
    assert semantic.locate(good_nodes["ctl01.lab.local"], key) == file


@pytest.fixture
def registered():
    """Register checks for one test only."""
    added = []

    def register(func):
        added.append(semantic.semantic_check(func))
        return func

    yield register
    for func in added:
        semantic.SEMANTIC_CHECKS.remove(func)


@pytest.mark.fast
def test_semantic_check_errors_name_file_and_key(registered):
    @registered
    def port_below_2000(deployment):
        for node in deployment.nodes.values():
            port = node.parameters.get("etcd", {}).get("server", {}).get("bind", {}).get("port", 0)
            if port > 2000:
                yield deployment.error(
                    node, "parameters:etcd:server:bind:port", "port-range", f"port {port} > 2000"
                )

    errors = model_check.check(CORPUS / "good", "lab")
    assert [(e.kind, e.file, e.key, e.message, e.nodes) for e in errors] == [
        (
            "port-range",
            "classes/cluster/lab/etcd.yml",
            "parameters:etcd:server:bind:port",
            "port 4001 > 2000",
            ["ctl01.lab.local", "ctl02.lab.local"],
        )
    ]


@pytest.mark.fast
def test_semantic_checks_see_only_clean_nodes(registered):
    seen = []

    @registered
    def record(deployment):
        seen.extend(deployment.nodes)
        return []

    model_check.check(CORPUS / "reference_in_class_name", "lab")
    assert seen == ["cmp01.lab.local"]  # the ctl nodes use the broken class file


@pytest.mark.fast
def test_a_crashing_semantic_check_is_reported(registered):
    @registered
    def crash(deployment):
        raise KeyError("oops")

    errors = model_check.check(CORPUS / "good", "lab")
    assert [e.kind for e in errors] == ["check-crashed"]
    assert "crash" in errors[0].message and "KeyError" in errors[0].message


@pytest.mark.fast
def test_error_str_is_one_line():
    error = ModelError(
        "unresolved-reference",
        "classes/cluster/lab/init.yml",
        "parameters:_param:foo",
        "unresolved reference ${_param:bar}",
        ["a", "b"],
    )
    assert str(error) == (
        "classes/cluster/lab/init.yml: parameters:_param:foo: "
        "unresolved reference ${_param:bar} (nodes: a, b)"
    )


# -- the checks of issue 10 item 14, on copies of the checkout's model -------------------


def model_copy(tmp_path: Path, edits: dict[str, list[tuple[str, str]]]) -> Path:
    """A copy of the checkout's reclass/ (images/ beside it, as in the checkout), with
    ``edits``: class file -> [(old text, new text)], each old text present once."""
    inventory = combined_inventory(tmp_path)
    for rel, changes in edits.items():
        path = inventory / "classes" / rel
        text = path.read_text()
        for old, new in changes:
            assert text.count(old) == 1, (rel, old)
            text = text.replace(old, new)
        path.write_text(text)
    return inventory


LAB_NODES = "cluster/lab/nodes.yml"
LAB_K8S = "cluster/lab/kubernetes/init.yml"
# 172.30.70.128/25 is inside the lab's node network 172.30.70.0/24, but holds none of
# its addresses (.5, .10-.32): only the node network itself shows the overlap.
POD_IN_NODE_NETWORK = ("kubernetes_pod_cidr: 10.244.0.0/16",
                       "kubernetes_pod_cidr: 172.30.70.128/25")


@pytest.mark.fast
@pytest.mark.parametrize("written", [
    "lab_network: 172.30.70.0/24",
    "lab_underlay: 172.30.70.0/24",
    "mgmt_subnet: 172.30.70.0/24",
    "mgmt_gateway_interface: 172.30.70.1/24",  # an interface address: its network counts
])
def test_node_network_overlap_is_found_by_value(tmp_path, written):
    """Whatever the node network's parameter is called, a pod range inside it is refused
    (before, only ``_param:<deployment>_network`` was looked at: with the parameter
    renamed the check passed this model)."""
    rename = [("lab_network: 172.30.70.0/24", written)]
    clean = model_copy(tmp_path / "clean", {LAB_NODES: rename})
    assert model_check.check(clean, "lab") == []
    broken = model_copy(tmp_path / "broken", {LAB_NODES: rename, LAB_K8S: [POD_IN_NODE_NETWORK]})
    errors = model_check.check(broken, "lab")
    assert [(e.kind, e.file, e.key) for e in errors] == [
        ("cidr-overlap", f"classes/{LAB_K8S}", "parameters:_param:kubernetes_pod_cidr")
    ], show(errors)
    assert errors[0].message == "172.30.70.128/25 overlaps the node network 172.30.70.0/24"
    assert len(errors[0].nodes) == 8  # every Kubernetes node of the lab (not cfg01)


@pytest.mark.fast
def test_unknown_openstack_version_is_refused(tmp_path):
    from stacksalt.images import releases

    known = sorted(releases.load(ROOT))
    assert "flamingo" in known and "zed" not in known
    edit = {"cluster/lab/init.yml": [("openstack_version: flamingo", "openstack_version: zed")]}
    errors = model_check.check(model_copy(tmp_path, edit), "lab")
    assert [(e.kind, e.file, e.key) for e in errors] == [
        ("unknown-openstack-release", "classes/cluster/lab/init.yml",
         "parameters:_param:openstack_version")
    ], show(errors)
    assert f"(known: {', '.join(known)})" in errors[0].message
    assert "\n" not in str(errors[0])
    for release in known:  # every release images/ knows passes
        edit = {"cluster/lab/init.yml": [("openstack_version: flamingo",
                                          f"openstack_version: {release}")]}
        assert model_check.check(model_copy(tmp_path / release, edit), "lab") == []


PROD_CALICO = "cluster/production/kubernetes/calico.yml"


@pytest.mark.fast
def test_mesh_with_route_reflectors_is_refused_like_the_salt_render(tmp_path):
    """production has route reflectors and the mesh off; with the mesh on the model check
    refuses it, with the very words the Salt render (stacksalt_objects) refuses it with."""
    from stacksalt import objects

    edit = {PROD_CALICO: [("calico_bgp_mesh: false", "calico_bgp_mesh: true")]}
    result = model_check.run(model_copy(tmp_path, edit), "production")
    errors = result.errors
    assert [(e.kind, e.file, e.key) for e in errors] == [
        ("bgp-mesh-with-route-reflectors", f"classes/{PROD_CALICO}",
         "parameters:_param:calico_bgp_mesh")
    ], show(errors)
    builder = objects.builder()
    node = result.rendered_deployment.nodes["mst01.prod.local"]
    with pytest.raises(builder.ObjectError) as refused:
        builder.calico_settings(node.parameters, objects.defaults())
    assert errors[0].message in str(refused.value)


@pytest.mark.fast
def test_mesh_rule_is_one_function(monkeypatch):
    """The model check and the Salt render both ask stacksalt_objects.bgp_mesh_problem:
    change the rule there and both follow."""
    from stacksalt import objects

    builder = objects.builder()
    monkeypatch.setattr(builder, "bgp_mesh_problem", lambda bgp: "the one rule says no")
    result = model_check.run(paths.reclass_dir("production"), "production")
    assert {(e.kind, e.message) for e in result.errors} == {
        ("bgp-mesh-with-route-reflectors", "the one rule says no")}
    node = result.rendered_deployment.nodes["mst01.prod.local"]
    with pytest.raises(builder.ObjectError, match="the one rule says no"):
        builder.calico_settings(node.parameters, objects.defaults())


@pytest.mark.fast
def test_node_networks_are_cidrs_holding_node_addresses():
    """The node's own address counts with the host table's; the cluster's ranges, /0 and
    CIDRs that hold no node address are no node networks; reclass's own keys are skipped."""
    from types import SimpleNamespace

    from stacksalt.model.checks import network

    node = SimpleNamespace(name="x01.lab.local", parameters={
        "_reclass_": {"odd": "10.9.0.0/24"},
        "linux": {"network": {"address": "10.9.0.7", "host": {}}},
        "_param": {"mgmt": "10.9.0.0/16", "mgmt_copy": "10.9.0.0/16", "any": "0.0.0.0/0",
                   "elsewhere": "192.168.5.0/24", "pods": "10.244.0.0/16",
                   "iface": ["10.9.0.7/20"], "text": "a/b"},
    })
    addresses = network.node_addresses(node)
    assert [(what, str(ip)) for what, ip in addresses] == [("x01.lab.local", "10.9.0.7")]
    pods = ipaddress.ip_network("10.244.0.0/16")
    found = network.node_networks(node, [pods], addresses)
    assert [str(n) for n in found] == ["10.9.0.0/16", "10.9.0.0/20"]
