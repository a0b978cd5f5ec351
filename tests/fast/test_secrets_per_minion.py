"""Least privilege for secrets: each minion's pillar holds only the secrets its model uses.

The pillar is compiled by Salt itself (`salt-call --local pillar.items` with the master's
ext_pillar chain: reclass, then formulas/_pillar/stacksalt_secrets.py), for every node of
every deployment, and compared with the secrets the node's formula keys reference (a key
ending in `_secret`, a value of a `secret_env` map; never `_param`, which names every
secret of the deployment on every node).
"""

from __future__ import annotations

from typing import Any

import pytest

from stacksalt import saltmodules, saltrender, secrets
from stacksalt.deployment import Deployment

pytestmark = pytest.mark.fast

DEPLOYMENTS = ("lab", "production")
RULE = saltmodules.load("_pillar/stacksalt_secrets.py")


def expected_references(parameters: dict[str, Any]) -> set[str]:
    """The rule, stated here independently of the module under test."""
    found: set[str] = set()

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, (*path, str(k)))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, (*path, str(i)))
        elif isinstance(value, str) and value and (
                path[-1].endswith("_secret") or (len(path) > 1 and path[-2] == "secret_env")):
            found.add(value)

    for top, value in parameters.items():
        if not top.startswith("_"):
            walk(value, (top,))
    return found


@pytest.fixture(scope="module", params=DEPLOYMENTS)
def compiled(request):
    name = request.param
    secrets.generate(name)
    dep = Deployment.load(name)
    return name, dep, saltrender.pillars(name, dep.node_names), secrets.decrypt_all(name)


def test_every_minion_receives_exactly_the_secrets_it_references(compiled):
    name, dep, pillars, values = compiled
    wrong = []
    for node in dep.node_names:
        pillar = pillars[node]
        assert "_errors" not in pillar, f"{node}: {pillar['_errors']}"
        received = pillar.get("secrets", {})
        wanted = expected_references(dep.parameters(node))
        if set(received) != wanted:
            wrong.append(f"{node}: receives {sorted(received)}, references {sorted(wanted)}")
        for key, value in received.items():
            assert value == values[key], f"{node}: secrets:{key} is not the decrypted value"
    assert not wrong, "\n".join(wrong)


def test_nodes_without_a_role_get_no_role_secrets(compiled):
    """The figures that matter: a compute node holds one secret (its ops user's password
    hash), never the service-account key, MariaDB's root or keystone's admin password."""
    name, dep, pillars, values = compiled
    crown = {"kubernetes_service_account_key", "mariadb_root_password",
             "keystone_admin_password"}
    counts = {}
    for node in dep.node_names:
        received = set(pillars[node].get("secrets", {}))
        counts[node] = len(received)
        is_master = "etcd" in dep.parameters(node)
        assert bool(received & crown) == is_master, (node, sorted(received & crown))
        if node.startswith("cmp"):
            assert received == {"linux_ops_password_hash"}, (node, sorted(received))
    assert max(counts.values()) < len(values), counts


def test_a_secret_that_does_not_decrypt_fails_the_pillar_naming_file_and_key(tmp_path):
    keyring = secrets.keyring_dir("lab")
    (tmp_path / "lab.sls").write_text(
        "#!yaml|gpg\nsecrets:\n  linux_ops_password_hash: |\n"
        "    -----BEGIN PGP MESSAGE-----\n\n    bm90IGEgbWVzc2FnZQ==\n"
        "    -----END PGP MESSAGE-----\n")
    pillar = {"_param": {"cluster_name": "lab"},
              "linux": {"system": {"user": {"ops": {"password_secret":
                                                    "linux_ops_password_hash"}}}}}
    with pytest.raises(RULE.SecretsError) as err:
        RULE.secrets_for(pillar, str(tmp_path), str(keyring))
    message = str(err.value)
    assert "\n" not in message
    assert f"{tmp_path}/lab.sls: secrets:linux_ops_password_hash: gpg could not decrypt" in message


def test_no_cluster_name_is_a_one_line_error(tmp_path):
    pillar = {"docker": {"registry": {"password_secret": "docker_registry_password"}}}
    with pytest.raises(RULE.SecretsError, match=r"^pillar _param:cluster_name is not set"):
        RULE.secrets_for(pillar, str(tmp_path), str(tmp_path))


def test_a_node_that_references_nothing_decrypts_nothing(tmp_path):
    # no file, no keyring: nothing is read or decrypted
    assert RULE.secrets_for({"_param": {"x_secret": "y"}, "linux": {}}, "/nonexistent",
                            "/nonexistent") == {}


def test_the_master_config_chains_the_secrets_ext_pillar_after_reclass():
    """The real master's configuration (salt formula, from the model) and the local
    render's agree: reclass first, then stacksalt_secrets, its module dir configured."""
    from stacksalt import engine

    dep = Deployment.load("lab")
    master = dep.parameters("cfg01.lab.local")["salt"]["master"]
    base = "/srv/stacksalt"  # the lab's deployment repository on cfg01 (a symlink)
    want = engine.pillar_options(f"{base}/stacksalt/formulas", f"{base}/pillar",
                                 f"{base}/reclass")
    assert master["pillar_dirs"] == want["pillar_dirs"]
    assert master["secrets"] == want["ext_pillar"][1][engine.SECRETS_EXT_PILLAR]
    assert master["reclass"]["inventory_base_uri"] == \
        want["ext_pillar"][0]["reclass"]["inventory_base_uri"]
