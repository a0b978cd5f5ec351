"""The lab tier: brings the Docker lab up once per session (reusing what exists)."""

from __future__ import annotations

import docker
import pytest
import testinfra

from stacksalt.deployment import Deployment
from stacksalt.lab import lab as lab_mod
from stacksalt.lab import summary
from stacksalt.lab.plan import LabPlan, plan

pytestmark = pytest.mark.lab


class Lab:
    def __init__(self, lab_plan: LabPlan):
        self.plan = lab_plan
        self.client = docker.from_env()

    def container(self, minion_id: str):
        node = next(n for n in self.plan.nodes if n.minion_id == minion_id)
        return self.client.containers.get(node.container_name(self.plan.deployment))

    @property
    def master(self):
        return self.container(self.plan.master.minion_id)

    def host(self, minion_id: str):
        node = next(n for n in self.plan.nodes if n.minion_id == minion_id)
        return testinfra.get_host(f"docker://{node.container_name(self.plan.deployment)}")

    def salt(self, *args: str, timeout: int = 60):
        """`salt --out=json --static ARGS` on the master: (exit code, parsed JSON)."""
        res = self.master.exec_run(
            ["salt", "--out=json", "--static", f"--timeout={timeout}", *args])
        out = res.output.decode(errors="replace")
        return res.exit_code, (summary.json_from(out) or out)

    def apply(self, target: str = "*"):
        nodes = [n.minion_id for n in self.plan.nodes
                 if target == "*" or n.minion_id == target]
        return lab_mod.apply(self.master, target, nodes)

    def etcd_members(self) -> list[str]:
        return sorted(n for n in (x.minion_id for x in self.plan.nodes) if n.startswith("mst"))


@pytest.fixture(scope="session")
def lab() -> Lab:
    rc = lab_mod.up("lab")
    assert rc == 0, "stacksalt lab up failed (see its output above)"
    return Lab(plan(Deployment.load("lab")))
