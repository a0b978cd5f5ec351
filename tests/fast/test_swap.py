"""Swap off on every node that runs a kubelet (kubernetes.common.swap), before the kubelet
starts: the kubelet exits on a node with swap (failSwapOn). Compared with kubespray's
roles/kubernetes/preinstall/tasks/0010-swapoff.yml: swapoff -a while some swap is active,
the fstab's swap entries gone, swap.target masked; here also every .swap unit masked.

Asserted on production's render (every node runs a kubelet there): the four states, each
guarded so that a second run changes nothing, and the kubelet's service runs after all of
them (requisites, as Salt orders them); the fstab pattern comments out swap lines only, once;
the kubelet's configuration follows kubernetes:common:swap; negative control: with the
include removed from kubernetes.pool.kubelet the check fails.
"""

from __future__ import annotations

import re

import pytest

from stacksalt import saltmodules, saltrender, secrets
from stacksalt.deployment import Deployment
from tests.fast.test_converge_order import graph, runs_after
from tests.trees import copy_deployment

pytestmark = pytest.mark.fast

KUBELET = "kubernetes-pool-kubelet-service-running"
SWAP = {
    "kubernetes-common-swap-turned-off": "cmd",
    "kubernetes-common-swap-fstab-entries-commented": "file",
    "kubernetes-common-swap-target-masked": "service",
    "kubernetes-common-swap-units-masked": "cmd",
}
B = saltmodules.load("_modules/stacksalt_objects.py")


def args(states: dict, sid: str) -> dict:
    assert sid in states, f"state {sid} is not rendered"
    module = next(k for k in states[sid] if not k.startswith("__"))
    return {k: v for d in states[sid][module] if isinstance(d, dict) for k, v in d.items()}


def problems(states: dict) -> list[str]:
    """What would let the kubelet start before swap is off (or swap come back at boot)."""
    if KUBELET not in states:
        return [f"{KUBELET} is not rendered"]
    out = [f"{sid} is not rendered" for sid in SWAP if sid not in states]
    before = runs_after(graph(states)[0], KUBELET)
    out += [f"{KUBELET} does not wait for {sid}" for sid in SWAP
            if sid in states and sid not in before]
    return out


def pool_node(dep: Deployment) -> str:
    return next(n for n in dep.node_names if n.startswith("cmp"))


@pytest.fixture(scope="module")
def production():
    secrets.generate("production")
    dep = Deployment.load("production")
    node = pool_node(dep)
    return dep, node, saltrender.show_sls(node, "production", ["kubernetes"])


def test_swap_is_off_before_the_kubelet_starts(production):
    dep, node, states = production
    assert problems(states) == []
    for sid, module in SWAP.items():
        assert module in states[sid], sid
        assert states[sid]["__sls__"] == "kubernetes.common.swap"


def test_every_swap_state_changes_nothing_on_a_second_run(production):
    _, _, states = production
    off = args(states, "kubernetes-common-swap-turned-off")
    assert off["name"] == "swapoff -a"
    assert off["onlyif"] == 'test -n "$(swapon --show=NAME --noheadings)"'
    units = args(states, "kubernetes-common-swap-units-masked")
    assert "xargs -r systemctl mask --" in units["name"]
    assert units["onlyif"].endswith("| grep -q .") and "$2 != \"masked\"" in units["onlyif"]
    assert args(states, "kubernetes-common-swap-target-masked")["name"] == "swap.target"
    fstab = args(states, "kubernetes-common-swap-fstab-entries-commented")
    assert fstab["name"] == "/etc/fstab" and fstab["ignore_if_missing"] is True


FSTAB = """\
# /etc/fstab: static file system information.
UUID=1111-aaaa / ext4 errors=remount-ro 0 1
UUID=2222-bbbb none            swap    sw              0       0
/swap.img\tnone\tswap\tsw\t0\t0
/dev/sdb1 /srv/swapdata xfs defaults 0 2
# UUID=3333-cccc none swap sw 0 0
/dev/mapper/vg-swap none swap
"""


def test_the_fstab_pattern_comments_out_swap_entries_only_and_once(production):
    _, _, states = production
    fstab = args(states, "kubernetes-common-swap-fstab-entries-commented")
    # as file.replace applies it (re.MULTILINE, Salt's default flags=8)
    once = re.sub(fstab["pattern"], fstab["repl"], FSTAB, flags=re.MULTILINE)
    lines = once.splitlines()
    assert "# UUID=2222-bbbb none            swap    sw              0       0" in lines
    assert "# /swap.img\tnone\tswap\tsw\t0\t0" in lines
    assert "# /dev/mapper/vg-swap none swap" in lines
    assert "UUID=1111-aaaa / ext4 errors=remount-ro 0 1" in lines
    assert "/dev/sdb1 /srv/swapdata xfs defaults 0 2" in lines
    assert "# UUID=3333-cccc none swap sw 0 0" in lines
    assert not [ln for ln in lines if not ln.startswith("#") and " swap " in f" {ln} "
                .replace("\t", " ")]
    # a second run: nothing left to match
    assert re.search(fstab["pattern"], once, flags=re.MULTILINE) is None


def test_the_kubelet_configuration_follows_the_switch(production):
    _, _, states = production
    config = args(states, "kubernetes-pool-kubelet-config-file-managed")["dataset"]
    assert config["failSwapOn"] is True and "memorySwap" not in config
    assert B.kubelet_swap({"disabled": False, "behavior": "LimitedSwap"}) == {
        "failSwapOn": False, "memorySwap": {"swapBehavior": "LimitedSwap"}}


@pytest.mark.parametrize("swap, message", [
    ({"disabled": "yes"}, "kubernetes:common:swap:disabled is 'yes', expected true or false"),
    ({"disabled": False, "behavior": "UnlimitedSwap"},
     "kubernetes:common:swap:behavior is 'UnlimitedSwap', expected one of NoSwap, LimitedSwap"),
])
def test_a_bad_switch_is_one_error_naming_the_key(swap, message):
    with pytest.raises(B.ObjectError, match="^" + re.escape(message) + "$"):
        B.kubelet_swap(swap)


def test_the_lab_leaves_swap_alone_and_its_kubelet_tolerates_it(lab_secrets):
    dep = Deployment.load("lab")
    node = pool_node(dep)
    states = saltrender.show_sls(node, "lab", ["kubernetes.pool.kubelet"])
    assert not [s for s in SWAP if s in states]
    assert "kubernetes-common-swap-left-on" in states
    config = args(states, "kubernetes-pool-kubelet-config-file-managed")["dataset"]
    assert config["failSwapOn"] is False
    assert config["memorySwap"] == {"swapBehavior": "NoSwap"}


def test_without_the_include_the_check_fails(production, tmp_path):
    """Negative control: kubernetes.pool.kubelet without `- kubernetes.common.swap`."""
    _, node, _ = production
    root = copy_deployment("production", tmp_path / "repo", copy_product=("formulas",))
    kubelet = root / "stacksalt" / "formulas" / "kubernetes" / "pool" / "kubelet.sls"
    text = kubelet.read_text()
    assert "  - kubernetes.common.swap\n" in text
    kubelet.write_text(text.replace("  - kubernetes.common.swap\n", "", 1))
    states = saltrender.show_sls(node, "production", ["kubernetes"], root=root)
    found = problems(states)
    assert "kubernetes-common-swap-turned-off is not rendered" in found
    # the service's requisites now name nothing: Salt would fail the highstate
    assert [u for u in graph(states)[1] if u.startswith(KUBELET)]
