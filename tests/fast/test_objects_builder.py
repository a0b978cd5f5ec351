"""The one objects builder (formulas/_modules/stacksalt_objects.py).

- The move: the builder makes, for every node of lab and production, the very objects
  the three Jinja builders made before it (CoreDNS's import_yaml, calico's
  manifests.jinja/resources.jinja, kubernetes.control's objects.jinja), recorded from
  main at 81b2ffb in tests/fast/data/objects-before-builder-<deployment>.jsonl (Secret
  values redacted, the secret hash replaced: both depend on the generated secrets).
  Intended differences are listed in INTENDED; there are none: the move changed the
  files' paths (one tree under kubernetes:master:objects:dir), not one object. A change
  of objects made on purpose later regenerates the record (``python -m
  tests.fast.test_objects_builder``) in the same commit and says why.
- The states write exactly what the builder returns: every file.serialize under the
  objects dir of every node's render is a file of the builder's output for that node's
  pillar (as stacksalt.objects composes it: the reclass parameters and the secrets), with
  the same data, and nothing else is written there.
- Bad input is one error naming the pillar key.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from stacksalt import objects, secrets
from stacksalt.deployment import Deployment
from stacksalt.validate import collect
from tests.conftest import deployments

pytestmark = pytest.mark.fast

DATA = Path(__file__).parent / "data"
SECRET_HASH = "stacksalt.io/secret-hash"
HASH_PLACEHOLDER = "<secret-hash: depends on the generated secrets>"
# identity (minion, apiVersion, kind, namespace, name) -> what the move changed on purpose
INTENDED: dict[tuple, Any] = {}


def identity(minion: str, obj: dict[str, Any]) -> tuple:
    meta = obj.get("metadata") or {}
    return (minion, obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])


def normalized(obj: dict[str, Any]) -> dict[str, Any]:
    """Secret values redacted, the secret hash replaced (both follow the generated
    secrets of this machine)."""
    obj = copy.deepcopy(collect.redacted(obj))
    notes = (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "annotations") or {}
    if SECRET_HASH in notes:
        notes[SECRET_HASH] = HASH_PLACEHOLDER
    return obj


def built(deployment: str) -> dict[tuple, dict[str, Any]]:
    dep = Deployment.load(deployment)
    values = secrets.decrypt_all(deployment)
    out = {}
    for node in dep.node_names:
        for f in objects.build(dep, node, values)["files"]:
            out[identity(node, f["object"])] = normalized(f["object"])
    return out


def recorded(deployment: str) -> dict[tuple, dict[str, Any]]:
    out = {}
    for line in (DATA / f"objects-before-builder-{deployment}.jsonl").read_text().splitlines():
        row = json.loads(line)
        for minion in row["minions"]:
            out[identity(minion, row["object"])] = row["object"]
    return out


def differences(before: dict, after: dict) -> list[str]:
    """What differs, by object identity and the first differing path (never a value)."""
    out = [f"only before: {k}" for k in sorted(set(before) - set(after))]
    out += [f"only after: {k}" for k in sorted(set(after) - set(before))]
    for key in sorted(set(before) & set(after)):
        path = first_difference(before[key], after[key])
        if path is not None:
            out.append(f"{key}: differs at /{'/'.join(map(str, path))}")
    return out


def first_difference(a: Any, b: Any, path: tuple = ()) -> tuple | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return (*path, k)
            found = first_difference(a[k], b[k], (*path, k))
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return (*path, "len")
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, (*path, i))
            if found is not None:
                return found
        return None
    return None if a == b and type(a) is type(b) else path


@pytest.mark.parametrize("deployment", deployments())
def test_the_builder_makes_the_objects_of_before_the_move(deployment):
    secrets.generate(deployment)
    before = recorded(deployment)
    for key, change in INTENDED.items():
        if key[0] in {k[0] for k in before}:
            change(before)
    after = built(deployment)
    assert len(before) > 150
    diff = differences(before, after)
    assert not diff, f"{len(diff)} differences:\n" + "\n".join(diff[:60])


def test_the_comparison_sees_a_changed_field_a_new_and_a_lost_object():
    a = {("m", "v1", "Service", "ns", "x"): {"spec": {"ports": [{"port": 1}]}},
         ("m", "v1", "Service", "ns", "y"): {}}
    b = {("m", "v1", "Service", "ns", "x"): {"spec": {"ports": [{"port": "1"}]}},
         ("m", "v1", "Service", "ns", "z"): {}}
    assert differences(a, b) == [
        "only before: ('m', 'v1', 'Service', 'ns', 'y')",
        "only after: ('m', 'v1', 'Service', 'ns', 'z')",
        "('m', 'v1', 'Service', 'ns', 'x'): differs at /spec/ports/0/port",
    ]


@pytest.mark.parametrize("deployment", deployments())
def test_the_states_write_exactly_what_the_builder_returns(deployment):
    secrets.generate(deployment)
    dep = Deployment.load(deployment)
    values = secrets.decrypt_all(deployment)
    rendered = collect.rendered(deployment)
    problems, masters = [], 0
    for node in dep.node_names:
        out = objects.build(dep, node, values)
        top = out["dir"].rstrip("/") + "/"
        want = {top + f["file"]: f["object"] for f in out["files"]}
        if out["plan"]:
            want[top + out["plan_file"]] = out["plan"]
            masters += 1
        have = {path: data for _, path, data in collect.serialized(rendered[node])
                if path.startswith(top)}
        problems += [f"{node}: {p} is built, not written" for p in sorted(set(want) - set(have))]
        problems += [f"{node}: {p} is written, not built" for p in sorted(set(have) - set(want))]
        problems += [f"{node}: {p} differs at /{'/'.join(map(str, d))}"
                     for p in sorted(set(want) & set(have))
                     if (d := first_difference(want[p], have[p])) is not None]
    assert not problems, "\n".join(problems[:60])
    assert masters == 3


def _prod_pillar() -> dict[str, Any]:
    dep = Deployment.load("production")
    node = objects.control_masters(dep)[0]
    values = {name: "x" * 12 for name in secrets.references(dep)}
    return copy.deepcopy(objects.pillar(dep, node, values))


@pytest.mark.parametrize("change, message", [
    (lambda p: p["kubernetes"]["control"]["service"]["keystone"].pop("order"),
     "kubernetes:control:service:keystone:order is not set"),
    (lambda p: p["kubernetes"]["control"]["service"]["keystone"].update(image="nope"),
     "kubernetes:control:service:keystone:image is 'nope', which has no build definition"),
    (lambda p: p["secrets"].pop("keystone_admin_password"),
     "kubernetes:control:service:keystone:secret_env:KEYSTONE_ADMIN_PASSWORD names secret "
     "'keystone_admin_password', which the secrets pillar"),
    (lambda p: p["kubernetes"]["control"]["service"]["keystone"]["volumes"].update(
        x={"type": "nfs", "path": "/x"}),
     "kubernetes:control:service:keystone:volumes:x:type is 'nfs'"),
    (lambda p: p["calico"]["node"]["bgp"].update(node_to_node_mesh=True),
     "calico:node:bgp: node_to_node_mesh is true but route_reflectors are set"),
    (lambda p: p["kubernetes"]["common"].update(version="1.99.0"),
     "kubernetes:common:images has no entry for Kubernetes 1.99"),
])
def test_bad_input_is_one_error_naming_the_key(change, message):
    pillar = _prod_pillar()
    objects.builder().build(pillar, objects.defaults())  # the unchanged pillar builds
    change(pillar)
    with pytest.raises(objects.error_type()) as exc:
        objects.builder().build(pillar, objects.defaults())
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def regenerate() -> None:
    """Write the record anew from this checkout's builder (only when objects change on
    purpose; say why in the commit)."""
    for deployment in deployments():
        secrets.generate(deployment)
        merged: dict[tuple, list[str]] = {}
        for key, obj in built(deployment).items():
            merged.setdefault(json.dumps(obj, sort_keys=True), []).append(key[0])
        lines = [json.dumps({"minions": sorted(m), "object": json.loads(o)}, sort_keys=True)
                 for o, m in sorted(merged.items())]
        (DATA / f"objects-before-builder-{deployment}.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(regenerate())


def _peers(pillar: dict[str, Any]) -> dict[str, dict[str, Any]]:
    builder = objects.builder()
    settings = builder.calico_settings(pillar, objects.defaults())
    resources, _ = builder.calico_resources(settings)
    return {r["metadata"]["name"]: r["spec"] for r in resources if r["kind"] == "BGPPeer"}


def test_a_bgp_peer_takes_a_node_selector():
    """One ToR per rack is one model entry: the peer's node_selector is the BGPPeer's
    spec.nodeSelector (Calico's BGPPeer reference: node and nodeSelector exclude each
    other), and the resource passes the Calico schema."""
    from stacksalt.validate import calico

    pillar = _prod_pillar()
    pillar["calico"]["node"]["bgp"]["peers"] = [
        {"name": "rack1-tor", "peer_ip": "10.20.3.252", "as_number": 65001,
         "node_selector": "rack == 'rack1'"},
        {"name": "cmp001-border-leaf", "peer_ip": "10.20.3.254", "as_number": 65002,
         "node": "cmp001"},
    ]
    peers = _peers(pillar)
    assert peers["rack1-tor"] == {"peerIP": "10.20.3.252", "asNumber": 65001,
                                  "nodeSelector": "rack == 'rack1'"}
    assert "nodeSelector" not in peers["cmp001-border-leaf"]
    resource = {"apiVersion": calico.API_VERSION, "kind": "BGPPeer",
                "metadata": {"name": "rack1-tor"}, "spec": peers["rack1-tor"]}
    assert calico.validate(resource) == []


def test_a_bgp_peer_with_node_and_node_selector_is_refused():
    pillar = _prod_pillar()
    pillar["calico"]["node"]["bgp"]["peers"] = [
        {"name": "tor", "peer_ip": "10.20.3.252", "as_number": 65001, "node": "cmp001",
         "node_selector": "rack == 'rack1'"}]
    with pytest.raises(objects.error_type()) as exc:
        _peers(pillar)
    assert "calico:node:bgp:peers: tor sets both node and node_selector" in str(exc.value)
    assert "\n" not in str(exc.value)
