"""The formulas' pillar schemas (formulas/<formula>/schema.yaml) in `stacksalt model check`.

- every formula has a schema file, every role of its defaults a schema, and every schema
  is a valid JSON schema;
- the lab and production deployments validate;
- the one-value changes that issue 10 found accepted (and `keystone_replicas: "three"`,
  which rendered `replicas: 0`) are refused, each with one line naming file and key;
- seeded random one-value changes to the lab and production model never crash the check,
  and every one that changes a value's type in an enabled role is refused.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacksalt import paths
from stacksalt.model import check as model_check
from stacksalt.model.checks import schema
from stacksalt.model.errors import CHECK_CRASHED, ENGINE_ERROR
from tests.trees import combined_inventory

ROOT = Path(__file__).resolve().parents[2]
FORMULAS = ROOT / "formulas"
ALL = ["linux", "salt", "pki", "docker", "etcd", "kubernetes", "calico", "keystone",
       "glance", "placement", "nova", "neutron", "mariadb", "rabbitmq", "memcached", "openstack",
       "git"]
DELETE = object()


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the model beside the checkout's formulas (the check reads the schemas
    from ``formulas/`` beside the inventory)."""
    return combined_inventory(tmp_path)


def edit(inventory: Path, rel: str, key: str, value: Any) -> None:
    """Set (or with DELETE remove) ``key`` (a colon path) in one file of the inventory."""
    path = inventory / rel
    data = yaml.safe_load(path.read_text())
    parts = key.split(":")
    node = data
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = int(parts[-1]) if isinstance(node, list) else parts[-1]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def schema_errors(inventory: Path, deployment: str) -> list:
    return [e for e in model_check.check(inventory, deployment) if e.kind == schema.KIND]


# -- the schemas themselves ----------------------------------------------------------------


@pytest.mark.fast
def test_every_formula_has_a_schema_and_every_role_a_schema():
    loaded = schema.load_schemas(FORMULAS.resolve())
    assert sorted(loaded) == sorted(ALL)
    for formula in ALL:
        defaults = FORMULAS / formula / "defaults.yaml"
        roles = set(yaml.safe_load(defaults.read_text())) if defaults.is_file() else set()
        missing = roles - set(loaded[formula])
        assert not missing, f"{formula}: no schema for {missing}"
    assert {"common", "master", "pool", "control"} <= set(loaded["kubernetes"])
    assert {"registry", "build"} <= set(loaded["docker"])


@pytest.mark.fast
def test_fixed_keys_are_closed_at_every_level():
    """Every object schema either lists its keys and refuses others, or is a map of names
    (additionalProperties is a schema) that says so in a $comment."""
    problems = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object":
                extra = node.get("additionalProperties", True)
                if extra is True:
                    problems.append(f"{where}: additionalProperties not set")
                elif isinstance(extra, dict) and "$comment" not in node:
                    problems.append(f"{where}: a map of names without a $comment")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    for formula in ALL:
        walk(yaml.safe_load((FORMULAS / formula / "schema.yaml").read_text()), formula)
    assert not problems, "\n".join(problems)


@pytest.mark.fast
def test_a_broken_schema_file_is_one_line(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "schema.yaml").write_text("roles:\n  server: {type: 7}\n")
    with pytest.raises(schema.SchemaFileError) as exc:
        schema.load_schemas(tmp_path)
    assert str(exc.value).startswith("formulas/x/schema.yaml: roles:server:")
    assert "\n" not in str(exc.value)


# -- the deployments -------------------------------------------------------------------------


@pytest.mark.fast
@pytest.mark.parametrize("deployment", ["lab", "production"])
def test_the_deployments_validate(deployment):
    errors = model_check.check(paths.reclass_dir(deployment), deployment)
    assert not errors, "\n".join(map(str, errors))


# -- what issue 10 found accepted -----------------------------------------------------------


LAB_OPENSTACK = "classes/cluster/lab/openstack/init.yml"
CASES = {
    # parameters:memcached: 7 in place of the whole role
    "role-replaced-by-a-number": (
        "classes/service/memcached/server.yml", "parameters:memcached", 7,
        "classes/service/memcached/server.yml", "parameters:memcached",
        "7 is not a mapping of roles"),
    "version-deleted": (
        "classes/service/kubernetes/common.yml", "parameters:kubernetes:common:version", DELETE,
        "classes/service/kubernetes/common.yml", "parameters:kubernetes:common:version",
        "is required and not set"),
    "volume-without-type": (
        "classes/service/keystone/server.yml",
        "parameters:kubernetes:control:service:keystone:volumes:fernet-keys:type", DELETE,
        "classes/service/keystone/server.yml",
        "parameters:kubernetes:control:service:keystone:volumes:fernet-keys:type",
        "is required and not set"),
    "user-name-an-integer": (
        "classes/cluster/lab/init.yml", "parameters:_param:docker_registry_user",
        1234567890123456789012,
        "classes/cluster/lab/init.yml", "parameters:_param:docker_registry_user",
        "1234567890123456789012 is not a string"),
    "policy-name-a-mapping": (
        "classes/service/kubernetes/common.yml",
        "parameters:kubernetes:common:ssl:proxy_client_policy", {"name": "x"},
        "classes/service/kubernetes/common.yml",
        "parameters:kubernetes:common:ssl:proxy_client_policy",
        "{'name': 'x'} is not a string"),
    # item 13: replicas "three" rendered replicas: 0
    "replicas-three": (
        LAB_OPENSTACK, "parameters:_param:keystone_replicas", "three",
        LAB_OPENSTACK, "parameters:_param:keystone_replicas", "'three' is not an integer"),
    "port-out-of-range": (
        "classes/service/memcached/server.yml",
        "parameters:kubernetes:control:service:memcached:ports:memcache", 70000,
        "classes/service/memcached/server.yml",
        "parameters:kubernetes:control:service:memcached:ports:memcache",
        "70000 is out of range (1..65535)"),
    "address-not-an-address": (
        "classes/cluster/lab/nodes.yml", "parameters:_param:kubernetes_api_vip", "10.0.0.300",
        "classes/cluster/lab/nodes.yml", "parameters:_param:kubernetes_api_vip",
        "'10.0.0.300' is not an ip address"),
    "boolean-a-string": (
        "classes/service/kubernetes/master.yml",
        "parameters:kubernetes:master:keepalived:enabled", "yes",
        "classes/service/kubernetes/master.yml",
        "parameters:kubernetes:master:keepalived:enabled", "'yes' is not a boolean"),
    # item 12: the node_selector that was dropped, misspelt
    "peer-key-misspelt": (
        "classes/cluster/production/kubernetes/calico.yml",
        "parameters:_param:calico_bgp_peers:0:node_selectr", "rack == 'rack1'",
        "classes/cluster/production/kubernetes/calico.yml",
        "parameters:_param:calico_bgp_peers:0:node_selectr", "unknown key"),
    "unknown-role": (
        "classes/service/memcached/server.yml", "parameters:memcached:servr", {"enabled": True},
        "classes/service/memcached/server.yml", "parameters:memcached:servr", "unknown role"),
}


@pytest.mark.fast
@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_with_one_line_naming_file_and_key(checkout, case):
    rel, key, value, file, blamed, message = CASES[case]
    deployment = "production" if "production" in rel else "lab"
    assert schema_errors(checkout, deployment) == []
    edit(checkout, rel, key, value)
    errors = schema_errors(checkout, deployment)
    hits = [e for e in errors if e.key == blamed and message in e.message]
    assert hits, "\n".join(map(str, errors)) or "accepted"
    assert hits[0].file == file
    line = str(hits[0])
    assert "\n" not in line and line.startswith(f"{file}: {blamed}: ")


@pytest.mark.fast
def test_a_user_named_by_an_integer_is_refused(checkout):
    """A user whose name (its key) is a 22-digit integer: reclass makes the key a string,
    which useradd refuses (Debian's NAME_REGEX: a name starts with a letter)."""
    rel = "classes/cluster/lab/init.yml"
    data = yaml.safe_load((checkout / rel).read_text())
    users = data["parameters"]["linux"]["system"]["user"]
    users[1234567890123456789012] = users.pop("ops")
    (checkout / rel).write_text(yaml.safe_dump(data, sort_keys=False))
    errors = schema_errors(checkout, "lab")
    key = "parameters:linux:system:user:1234567890123456789012"
    assert [str(e).split(" (nodes:")[0] for e in errors if e.key == key] == [
        f"{rel}: {key}: name '1234567890123456789012' does not match "
        "^[a-z_][a-z0-9_-]*[$]?$"]


@pytest.mark.fast
def test_the_model_takes_a_peer_with_a_node_selector(checkout):
    rel = "classes/cluster/production/kubernetes/calico.yml"
    edit(checkout, rel, "parameters:_param:calico_bgp_peers:0:node_selector", "rack == 'rack1'")
    assert model_check.check(checkout, "production") == []


# -- random one-value changes -----------------------------------------------------------------

MUTATIONS = 60
SEED = 10
# where a schema takes more than one type on purpose (a change between them is no error)
MIXED = ("salt:master:reclass", "kubernetes:control:service:*:jobs",
         "kubernetes:control:service:*:resources")


def leaves(data: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(data, dict):
        return [leaf for k, v in data.items() for leaf in leaves(v, (*path, str(k)))] or [path]
    if isinstance(data, list):
        return [leaf for i, v in enumerate(data) for leaf in leaves(v, (*path, str(i)))] or [path]
    return [path]


def other_type(value: Any, rng: random.Random) -> Any:
    """A value of another JSON type than ``value``."""
    if isinstance(value, bool):
        return rng.choice(["yes", 1, {"x": 1}])
    if isinstance(value, (int, float)):
        return rng.choice([str(value) + "x", [value], {"x": value}])
    if isinstance(value, str):
        return rng.choice([7, True, [value], {"x": value}])
    if isinstance(value, (list, dict)):
        return rng.choice([7, "seven"])
    return rng.choice([7, "seven"])  # None


def types_of(data: Any, path: tuple = ()) -> dict[tuple, str]:
    out = {path: type(data).__name__}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(types_of(v, (*path, str(k))))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.update(types_of(v, (*path, str(i))))
    return out


def mixed(path: tuple) -> bool:
    for pattern in MIXED:
        parts = pattern.split(":")
        head = path[: len(parts)]
        if len(head) == len(parts) and all(p in ("*", q) for p, q in zip(parts, head, strict=True)):
            return True
    return False


def enabled_role(params: dict, path: tuple, schemas: dict) -> bool:
    """Whether ``path`` (under a formula's key) is in a role the check validates."""
    if len(path) < 2 or not isinstance(params.get(path[0]), dict):
        return True  # the formula's key itself
    role = params[path[0]].get(path[1])
    validator = schemas[path[0]].get(path[1])
    if validator is None or not isinstance(role, dict):
        return True
    if "enabled" not in validator.schema.get("properties", {}):
        return True
    return role.get("enabled", False) is not False


@pytest.mark.fast
def test_random_one_value_changes(checkout):
    """Seeded random one-value changes (a value replaced by one of another type) in the
    files of the lab and production deployments: the check never crashes, every error is
    one line, and a change that reaches an enabled role's pillar with another type is
    refused."""
    rng = random.Random(SEED)
    schemas = schema.load_schemas(FORMULAS.resolve())
    files = sorted(p.relative_to(checkout).as_posix() for p in checkout.rglob("*.yml"))
    baseline = {}
    for deployment in ("lab", "production"):
        result = model_check.run(checkout, deployment)
        assert not result.errors
        baseline[deployment] = {n: copy.deepcopy(node.parameters)
                                for n, node in result.rendered_deployment.nodes.items()}
    tried = refused = 0
    accepted = []
    while tried < MUTATIONS:
        rel = rng.choice(files)
        text = (checkout / rel).read_text()
        data = yaml.safe_load(text) or {}
        params = data.get("parameters") if isinstance(data, dict) else None
        if not isinstance(params, dict):
            continue
        path = rng.choice(leaves(params))
        if not path:
            continue
        value: Any = params
        for part in path:
            value = value[int(part)] if isinstance(value, list) else value[part]
        new = other_type(value, rng)
        edit(checkout, rel, ":".join(("parameters", *path)), new)
        tried += 1
        try:
            if "/lab/" in rel or rel.startswith("nodes/lab"):
                deployments = ["lab"]
            elif "/production/" in rel:
                deployments = ["production"]
            else:
                deployments = [rng.choice(["lab", "production"])]
            for deployment in deployments:
                result = model_check.run(checkout, deployment)
                for error in result.errors:
                    assert error.kind not in (CHECK_CRASHED, ENGINE_ERROR), str(error)
                    assert "\n" not in str(error) and "Traceback" not in str(error)
                refused += bool(result.errors)
                if result.errors:
                    continue
                # accepted: no rendered value of an enabled role may have changed its type
                for name, node in result.rendered_deployment.nodes.items():
                    before = types_of(baseline[deployment][name])
                    after = types_of(node.parameters)
                    changed = [p for p in after if p in before and after[p] != before[p]
                               and p and p[0] in schemas and not mixed(p)
                               and enabled_role(node.parameters, p, schemas)]
                    if changed:
                        accepted.append(f"{rel}: {':'.join(path)} -> {new!r} "
                                        f"({name}: {':'.join(changed[0])})")
        finally:
            (checkout / rel).write_text(text)
    assert not accepted, "type-changing mutations accepted:\n" + "\n".join(accepted)
    assert refused > MUTATIONS // 3  # most changes reach a formula's pillar
