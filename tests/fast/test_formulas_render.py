"""Every formula renders for every node that has it, with the node's real pillar."""

from __future__ import annotations

import pytest

from stacksalt import saltrender, secrets
from stacksalt.deployment import Deployment
from stacksalt.validate import collect
from tests.conftest import deployments

pytestmark = pytest.mark.fast

# State IDs each application must produce on a node that has it enabled.
EXPECTED = {
    "linux": ["linux-network-hosts-file-managed", "linux-system-hostname-file-managed",
              "linux-system-timezone-localtime-symlinked"],
    "salt": ["salt-minion-config-file-managed", "salt-minion-service-running"],
    # how etcd is installed (Debian's packages or the upstream archive) follows the model:
    # tests/fast/test_runtime_archives.py
    "etcd": ["etcd-server-config-file-managed", "etcd-server-service-running"],
}


@pytest.fixture(scope="module")
def rendered_lab(lab_secrets):
    return collect.rendered("lab")


@pytest.mark.parametrize("deployment", deployments())
def test_every_node_renders_its_applications(deployment):
    secrets.generate(deployment)
    dep = Deployment.load(deployment)
    for node, states in collect.rendered(deployment).items():
        for app in dep.rendered[node]["applications"]:
            app_root = app.split(".")[0]
            missing = [s for s in EXPECTED.get(app_root, []) if s not in states]
            assert not missing, f"{node}: {app} rendered without {missing}"


def test_master_and_ca_only_on_cfg01(rendered_lab):
    for node, states in rendered_lab.items():
        has_master = "salt-master-config-file-managed" in states
        has_ca = "salt-minion-ca-etcd-private-key-managed" in states
        assert has_master == has_ca == node.startswith("cfg01"), node


def test_master_config_wires_reclass(rendered_lab):
    state = rendered_lab["cfg01.lab.local"]["salt-master-config-file-managed"]
    dataset = next(d["dataset"] for d in state["file"] if isinstance(d, dict) and "dataset" in d)
    # the default base dir: in the lab a symlink to the example deployments/lab of the
    # checkout the master mounts; the formulas are reached through its stacksalt/
    base = "/srv/stacksalt"
    assert dataset["ext_pillar"][0]["reclass"]["inventory_base_uri"] == f"{base}/reclass"
    assert dataset["master_tops"]["reclass"]["inventory_base_uri"] == f"{base}/reclass"
    assert dataset["file_roots"] == {"base": [f"{base}/stacksalt/formulas"]}
    assert dataset["pillar_roots"] == {"base": [f"{base}/pillar"]}


def test_secret_reaches_the_state_decrypted(rendered_lab, lab_secrets):
    state = rendered_lab["mst01.lab.local"]["linux-system-user-ops-present"]
    args = {k: v for d in state["user"] if isinstance(d, dict) for k, v in d.items()}
    assert args["password"] == lab_secrets["linux_ops_password_hash"]


def test_missing_secret_is_a_clear_render_error(tmp_path, lab_secrets):
    """A secret the model references but the pillar lacks fails the render, naming the key."""
    import shutil

    from tests.trees import copy_deployment

    root = copy_deployment("lab", tmp_path / "repo")
    shutil.rmtree(root / "pillar" / "secrets")
    with pytest.raises(saltrender.RenderError) as err:
        saltrender.show_sls("mst01.lab.local", "lab", ["linux"], root=root)
    assert "linux:system:user:ops:password_secret" in str(err.value)
    assert "linux_ops_password_hash" in str(err.value)


def test_the_ca_minion_loads_new_signing_policies_before_nodes_ask(rendered_lab):
    """A policy the model adds is refreshed into the CA minion's in-memory pillar (which
    x509.sign_remote_certificate reads) on the run that compiles it."""
    states = rendered_lab["cfg01.lab.local"]
    record = states["salt-minion-ca-signing-policies-recorded"]["file"]
    dataset = next(d["dataset"] for d in record if isinstance(d, dict) and "dataset" in d)
    assert "kubernetes_node_client_cmp01" in dataset and "etcd_peer_mst01" in dataset
    assert {"mode": "0600"} in record
    loaded = states["salt-minion-ca-signing-policies-loaded"]["module"]
    assert {"saltutil.refresh_pillar": [{"wait": True}]} in loaded
    assert {"onchanges": [{"file": "salt-minion-ca-signing-policies-recorded"}]} in loaded
    for node, other in rendered_lab.items():
        if not node.startswith("cfg01"):
            assert "salt-minion-ca-signing-policies-loaded" not in other, node
