"""Every node converges; a second state.apply changes nothing; the OS is as modelled."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.lab


def test_second_apply_changes_nothing(lab):
    results = lab.apply("*")
    assert set(results) == {n.minion_id for n in lab.plan.nodes}
    failed = {m: r.failures for m, r in results.items() if r.failed}
    changed = {m: r.changed_ids for m, r in results.items() if r.changed}
    assert not failed, f"failed states: {failed}"
    assert not changed, f"second state.apply changed: {changed}"
    assert all(r.ok > 10 for r in results.values())


def test_hostname_and_hosts_from_the_model(lab):
    for node in lab.plan.nodes:
        host = lab.host(node.minion_id)
        assert host.check_output("hostname") == node.hostname
        assert host.check_output("hostname -f") == node.minion_id
        hosts = host.file("/etc/hosts").content_string
        for other in lab.plan.nodes:
            assert f"{other.address} {other.minion_id} {other.hostname}" in hosts


def test_timezone_and_packages(lab):
    host = lab.host("ctl01.lab.local")
    assert host.check_output("readlink /etc/localtime") == "/usr/share/zoneinfo/UTC"
    assert host.file("/etc/timezone").content_string.strip() == "UTC"
    for pkg in ("jq", "openssl", "ca-certificates", "tzdata"):
        assert host.package(pkg).is_installed, pkg


def test_ops_user_has_the_secret_hash(lab, lab_secrets):
    host = lab.host("cmp01.lab.local")
    user = host.user("ops")
    assert user.exists and user.home == "/home/ops"
    assert user.password == lab_secrets["linux_ops_password_hash"]
    sudoers = host.file("/etc/sudoers.d/90-stacksalt-ops")
    assert sudoers.mode == 0o440 and sudoers.user == "root"


def test_master_is_wired_to_the_model(lab):
    master = lab.host(lab.plan.master.minion_id)
    conf = master.file("/etc/salt/master.d/stacksalt.conf").content_string
    assert "inventory_base_uri: /srv/stacksalt/reclass" in conf
    assert "master_tops:" in conf and "ext_pillar:" in conf
    assert master.service("salt-master").is_running
    assert master.service("salt-master").is_enabled
    # the reclass ext_pillar answers for a minion, with its classes
    code, out = lab.salt("mst01.lab.local", "pillar.item", "__reclass__", "unmask=True")
    assert code == 0
    reclass_info = out["mst01.lab.local"]["__reclass__"]
    assert "cluster.lab.kubernetes.master" in reclass_info["classes"]
    assert set(reclass_info["applications"]) >= {"linux", "salt", "etcd"}
    # master_tops maps the applications to states
    code, out = lab.salt("mst01.lab.local", "state.show_top")
    assert code == 0
    assert {"linux", "salt", "etcd"} <= set(out["mst01.lab.local"]["base"])
    code, out = lab.salt("ctl01.lab.local", "state.show_top")
    assert "etcd" not in out["ctl01.lab.local"]["base"]


def test_secrets_are_decrypted_on_the_master_only(lab, lab_secrets):
    code, out = lab.salt("cmp02.lab.local", "pillar.get", "secrets:linux_ops_password_hash",
                          "unmask=True")
    assert out["cmp02.lab.local"] == lab_secrets["linux_ops_password_hash"]
    for node in lab.plan.minions:
        host = lab.host(node.minion_id)
        assert not host.file("/etc/salt/gpgkeys").exists, node.minion_id


CFG01_ONLY = ("docker_registry_password", "salt_api_ci_password",
              "buildbot_change_hook_password", "git_server_lab_admin_ssh_public_key")


def test_each_minion_receives_only_the_secrets_its_model_references(lab, lab_secrets):
    """The real master's pillar (reclass, then the stacksalt_secrets ext_pillar): a compute
    node holds its ops user's hash only; the masters, which render the OpenStack Secret
    and the service-account key, hold those; cfg01 the registry's password, salt-api's, and
    the git server's: the Buildbot change hook's password and the admin's public key."""
    code, out = lab.salt("*", "pillar.item", "secrets", "unmask=True")
    assert code == 0
    received = {m: set(v.get("secrets") or {}) for m, v in out.items()}
    assert set(received) == {n.minion_id for n in lab.plan.nodes}
    for minion, names in received.items():
        for name in names:
            assert out[minion]["secrets"][name] == lab_secrets[name], (minion, name)
        if minion.startswith(("cmp", "ctl")):
            assert names == {"linux_ops_password_hash"}, (minion, sorted(names))
        elif minion.startswith("cfg"):
            assert names == set(CFG01_ONLY) | {"linux_ops_password_hash"}, minion
        else:
            assert names == set(lab_secrets) - set(CFG01_ONLY), minion


def test_secrets_encryption_config_on_the_masters_only(lab, lab_secrets):
    import yaml

    path = "/etc/kubernetes/pki/secrets-encryption.yaml"
    for node in lab.plan.nodes:
        f = lab.host(node.minion_id).file(path)
        if not node.minion_id.startswith("mst"):
            assert not f.exists, node.minion_id
            continue
        assert f.mode == 0o600 and f.user == "root", node.minion_id
        doc = yaml.safe_load(f.content_string)
        key = doc["resources"][0]["providers"][0]["aescbc"]["keys"][0]["secret"]
        assert key == lab_secrets["kubernetes_secrets_encryption_key1"].strip()
        manifest = lab.host(node.minion_id).file(
            "/etc/kubernetes/manifests/kube-apiserver.yaml").content_string
        assert f"--encryption-provider-config={path}" in manifest
