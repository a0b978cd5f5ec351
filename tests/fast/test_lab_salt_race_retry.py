"""lab up applies again only the nodes whose every failure is Salt 3008.3's loop race."""

from __future__ import annotations

import pytest

from stacksalt.lab import lab
from stacksalt.lab.summary import NodeResult

pytestmark = pytest.mark.fast

RACE = ("kubernetes-pool-kube-proxy-client-certificate-managed: An exception occurred in "
        "this state: Traceback ...\nRuntimeError: dictionary keys changed during iteration")
REQUISITE = ("kubernetes-pool-kube-proxy-kubeconfig-managed: One or more requisite failed: "
             "kubernetes.pool.kube_proxy.kubernetes-pool-kube-proxy-client-certificate-managed")


def node(*failures: str) -> NodeResult:
    return NodeResult("mst01.lab.local", failed=len(failures), failures=list(failures))


def test_race_and_its_requisites_are_retried():
    assert lab._only_salt_loop_race(node(RACE, REQUISITE))


def test_any_other_failure_is_not_retried():
    assert not lab._only_salt_loop_race(node())
    assert not lab._only_salt_loop_race(node(REQUISITE))
    assert not lab._only_salt_loop_race(node(RACE, "etcd-server-service-running: failed"))
    assert not lab._only_salt_loop_race(node("did not return"))



def test_only_the_hit_nodes_are_applied_again(monkeypatch):
    calls = []
    answers = [
        {"a": node(RACE, REQUISITE), "b": NodeResult("b"), "c": node("pkg: failed")},
        {"a": NodeResult("a", changed=3)},
    ]

    def fake_apply(master, target, expected, progress=None):
        calls.append((target, expected))
        return answers[len(calls) - 1]

    monkeypatch.setattr(lab, "apply", fake_apply)
    from rich.console import Console

    results = lab.apply_retrying_salt_race(None, "*", ["a", "b", "c"], Console(quiet=True))
    assert calls == [("*", ["a", "b", "c"]), ("a", ["a"])]
    assert results["a"].failed == 0 and results["a"].changed == 3
    assert results["c"].failed == 1  # a real failure stays a failure
