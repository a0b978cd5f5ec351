"""etcd's access control state (formulas/_states/stacksalt_etcd.py): the plan from what
etcd has to what the model says. The lab tier runs it against the real etcd cluster."""

from __future__ import annotations

import pytest

from stacksalt import saltmodules
from stacksalt.deployment import Deployment

pytestmark = pytest.mark.fast

AUTH = saltmodules.load("_states/stacksalt_etcd.py")
ROLES = {"calico": [{"prefix": "/calico/", "permission": "readwrite"}],
         "kubernetes": [{"prefix": "/registry/", "permission": "readwrite"}]}
USERS = {"root": {"root"}, "calico": {"calico"}, "kube-apiserver-etcd-client": {"kubernetes"}}
EMPTY = {"enabled": False, "roles": {}, "users": {}}


def test_from_nothing_roles_then_users_then_auth_enable_last():
    cmds = AUTH.plan(EMPTY, AUTH.wanted_permissions(ROLES), USERS)
    assert cmds[-1] == ["auth", "enable"]
    assert ["role", "grant-permission", "--prefix=true", "calico", "readwrite",
            "/calico/"] in cmds
    assert ["user", "add", "calico", "--no-password"] in cmds
    assert cmds.index(["role", "add", "calico"]) < cmds.index(["user", "grant-role",
                                                                "calico", "calico"])
    assert ["user", "grant-role", "root", "root"] in cmds


def test_when_etcd_has_what_the_model_says_nothing_is_run():
    current = {"enabled": True, "users": {k: set(v) for k, v in USERS.items()},
               "roles": {"calico": {("readwrite", "/calico/")},
                         "kubernetes": {("readwrite", "/registry/")}}}
    assert AUTH.plan(current, AUTH.wanted_permissions(ROLES), USERS) == []


def test_drift_is_corrected_not_appended():
    current = {"enabled": True, "users": {**{k: set(v) for k, v in USERS.items()},
                                          "calico": {"calico", "kubernetes"}},
               "roles": {"calico": {("read", "/calico/"), ("readwrite", "/registry/")},
                         "kubernetes": {("readwrite", "/registry/")}}}
    cmds = AUTH.plan(current, AUTH.wanted_permissions(ROLES), USERS)
    assert cmds == [
        ["role", "grant-permission", "--prefix=true", "calico", "readwrite", "/calico/"],
        ["role", "revoke-permission", "--prefix=true", "calico", "/registry/"],
        ["user", "revoke-role", "calico", "kubernetes"]]


def test_without_root_auth_cannot_be_enabled():
    with pytest.raises(AUTH.EtcdAuthError, match="needs user root with role root"):
        AUTH.plan(EMPTY, {}, {"calico": {"calico"}})


@pytest.mark.parametrize("roles, message", [
    ({"calico": [{"prefix": "/calico/", "permission": "all"}]}, "roles:calico:0: needs"),
    ({"calico": [{"permission": "read"}]}, "roles:calico:0: needs prefix"),
    ({"root": []}, "the root role is built in"),
])
def test_bad_roles_are_one_line_errors(roles, message):
    with pytest.raises(AUTH.EtcdAuthError, match=message):
        AUTH.wanted_permissions(roles)


def test_range_end_is_etcds_prefix_end():
    assert AUTH.range_end("/calico/") == "/calico0"
    assert AUTH._perm_of({"permType": 2, "key": "L2NhbGljby8=", "range_end": "L2NhbGljbzA="}) \
        == ("readwrite", "/calico/")


@pytest.mark.parametrize("deployment", ["lab", "production"])
def test_the_models_etcd_users_are_the_cns_the_formulas_request(deployment):
    """etcd's users are certificate CNs: the apiserver's and Calico's as their formulas
    ask for them, so the model's users cannot drift from the certificates."""
    dep = Deployment.load(deployment)
    master = next(n for n in dep.node_names if "etcd" in dep.parameters(n))
    users = {u["name"] for u in dep.parameters(master)["etcd"]["server"]["auth"]["users"]}
    calico_cn = dep.parameters(master)["calico"]["node"]["etcd"].get("user", "calico")
    assert {"root", "kube-apiserver-etcd-client", calico_cn} <= users
