"""The release pipeline, end to end in the lab, as an admin drives it: a deployment
repository made by `stacksalt init lab DIR --from lab`, pushed over SSH to the git server
on cfg01, whose hook queues a build in Buildbot on this host; the build runs
`stacksalt ci run`, which moves the master through salt-api and keeps the report there.

Read back from the real parts: Buildbot's REST API (builds, their results and order), the
master's runner (`stacksalt_ci.status`), its base dir symlink and its report files.
Failure modes: a broken model, two pushes in a row, a force-push back, the registry down.
Afterwards the master serves the checkout again (what `lab up` set up), for the tests
after this one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from stacksalt.deployment import Deployment
from stacksalt.init import init
from stacksalt.lab import lab as lab_mod
from stacksalt.lab import pipeline as lab_pipeline
from stacksalt.pipeline import buildbot

pytestmark = pytest.mark.lab

SUCCESS, FAILURE = 0, 2
BUILD_TIMEOUT_S = 1200
OPENSTACK = Path("reclass/classes/cluster/lab/openstack/init.yml")


@dataclass
class Pipe:
    pipe: lab_pipeline.LabPipeline
    cfg: buildbot.PipelineConfig
    repo: Path
    builder: int

    def git(self, *args: str) -> str:
        proc = subprocess.run(["git", "-c", "user.name=admin", "-c", "user.email=admin@lab",
                               *args], cwd=self.repo, capture_output=True, text=True,
                              env={**os.environ, "GIT_SSH_COMMAND": self.pipe.ssh_command})
        assert proc.returncode == 0, f"git {args}: {proc.stderr}"
        return proc.stdout + proc.stderr

    def commit(self, message: str, edit) -> str:
        path = self.repo / OPENSTACK
        path.write_text(edit(path.read_text()))
        self.git("commit", "-q", "-am", message)
        return self.git("rev-parse", "HEAD").strip()

    def push(self, *refspec: str, force: bool = False) -> str:
        return self.git("push", *(["--force"] if force else []), "cfg01",
                        *(refspec or ["main"]))

    def builds(self) -> list[dict]:
        return buildbot.api(self.cfg, f"builders/{self.builder}/builds",
                            order="number")["builds"]

    def wait(self, count: int) -> list[dict]:
        """The first ``count`` builds of the builder, once they are complete."""
        deadline = time.monotonic() + BUILD_TIMEOUT_S
        while time.monotonic() < deadline:
            builds = self.builds()
            if len(builds) >= count and all(b["complete"] for b in builds[:count]):
                return builds[:count]
            time.sleep(2)
        raise AssertionError(f"{count} builds not complete in {BUILD_TIMEOUT_S} s: "
                             f"{[(b['number'], b['state_string']) for b in self.builds()]}")

    def revision(self, build: dict) -> str:
        props = buildbot.api(self.cfg, f"builds/{build['buildid']}/properties")["properties"]
        return props[0]["got_revision"][0]


def replicas(n: int):
    return lambda text: re.sub(r"(?m)^(\s*keystone_replicas:) \d+$", rf"\1 {n}", text)


def master_status(lab) -> dict:
    res = lab.master.exec_run(["salt-run", "--out=json", "stacksalt_ci.status"], demux=True)
    out, err = (x.decode() if x else "" for x in res.output)
    assert res.exit_code == 0, out + err
    return json.loads(out)  # stdout only: Salt's warnings go to stderr


def served(lab) -> str:
    return lab.master.exec_run(["readlink", lab.plan.master_base_dir]).output.decode().strip()


def report(lab, revision: str) -> dict:
    path = f"/srv/stacksalt-ci/reports/{revision}.json"
    mode = lab.master.exec_run(["stat", "-c", "%a", path]).output.decode().strip()
    assert mode == "640", (path, mode)
    return json.loads(lab.master.exec_run(["cat", path]).output.decode())


@pytest.fixture(scope="module")
def pipe(lab, tmp_path_factory):
    dep = Deployment.load(lab.plan.deployment)
    p = lab_pipeline.of(dep, lab.plan)
    cfg = p.config(lab.plan)
    assert buildbot.running(cfg) == {"master": True, "worker": True}, \
        "lab up starts the lab's Buildbot"
    builder = buildbot.api(cfg, "builders", name=p.repository)["builders"][0]["builderid"]
    repo = tmp_path_factory.mktemp("pipeline") / "lab-repo"
    lab_pipeline.push_product(p, lab.plan)  # lab up did; a commit since would be missing
    init("lab", "lab", repo)
    out = Pipe(p, cfg, repo, builder)
    out.git("remote", "add", "cfg01", p.remote)
    yield out
    # the tests after this one: the master serves the checkout again, as `lab up` left it
    lab_mod.link_base_dir(lab.master, lab.plan)


def test_a_push_builds_moves_the_master_and_keeps_the_report(pipe, lab):
    before = len(pipe.builds())
    first = pipe.git("rev-parse", "HEAD").strip()
    out = pipe.push(force=True)  # a reused lab's git server may hold an earlier run's
    assert f"remote: build queued: {pipe.cfg.url.rstrip('/')}/#/builders/{pipe.builder}" in out
    build = pipe.wait(before + 1)[-1]
    assert build["results"] == SUCCESS, build["state_string"]
    assert pipe.revision(build) == first

    assert served(lab) == f"/srv/stacksalt-ci/revisions/{first}"
    assert master_status(lab)["revision"] == first
    kept = report(lab, first)
    assert kept["ok"] is True and kept["revision"] == first
    assert [s["name"] for s in kept["steps"]] == ["model check", "images", "master", "dry run"] \
        + (["upgrade plan"] if kept["previous"] else [])
    # every image of the deployment was planned: built with its reason, or reused
    assert kept["images"] and all(i["decision"] == "reuse" or i["reason"]
                                  for i in kept["images"]), kept["images"]
    # the master serves the pushed tree: a minion's pillar renders from it
    code, pillar = lab.salt("ctl01.lab.local", "pillar.item", "__reclass__", "unmask=True")
    assert code == 0 and "cluster.lab.kubernetes.control" in \
        pillar["ctl01.lab.local"]["__reclass__"]["classes"], pillar


def test_a_replica_count_builds_nothing_and_plans_the_rollout(pipe, lab):
    before = len(pipe.builds())
    start = master_status(lab)["revision"]
    second = pipe.commit("keystone: 2 replicas", replicas(2))
    pipe.push()
    build = pipe.wait(before + 1)[-1]
    assert build["results"] == SUCCESS, build["state_string"]
    kept = report(lab, second)
    assert kept["previous"] == start
    assert [i["image"] for i in kept["images"] if i["decision"] != "reuse"] == [], kept["images"]
    plan = "\n".join(kept["upgrade_plan"])
    assert "deployment/keystone (" in plan and "spec.replicas: 1 -> 2" in plan, plan
    assert master_status(lab)["revision"] == second


def test_a_broken_model_leaves_the_master_on_the_last_good_revision(pipe, lab):
    before = len(pipe.builds())
    good = master_status(lab)["revision"]
    broken = pipe.commit("a class that does not exist",
                         lambda t: t.replace("parameters:", "classes:\n  - system.nothing.here\n"
                                             "parameters:", 1))
    pipe.push()
    build = pipe.wait(before + 1)[-1]
    assert build["results"] == FAILURE, build["state_string"]
    assert master_status(lab)["revision"] == good
    assert served(lab) == f"/srv/stacksalt-ci/revisions/{good}"
    kept = report(lab, broken)
    assert kept["ok"] is False
    assert [(s["name"], s["ok"]) for s in kept["steps"]] == [("model check", False)]
    assert "system.nothing.here" in kept["steps"][0]["summary"]


def test_two_pushes_in_a_row_queue_and_the_master_ends_on_the_second(pipe, lab):
    before = len(pipe.builds())
    fixed = pipe.commit("the class removed again",
                        lambda t: t.replace("classes:\n  - system.nothing.here\n", ""))
    pipe.push()
    last = pipe.commit("keystone: 3 replicas", replicas(3))
    pipe.push()
    one, two = pipe.wait(before + 2)[-2:]
    assert (one["results"], two["results"]) == (SUCCESS, SUCCESS)
    assert (pipe.revision(one), pipe.revision(two)) == (fixed, last)
    assert two["started_at"] >= one["complete_at"]  # one at a time
    status = master_status(lab)
    assert status["revision"] == last
    assert [h["to"] for h in status["history"][-2:]] == [fixed, last]


def test_a_force_push_back_rebuilds_nothing_and_the_master_follows(pipe, lab):
    before = len(pipe.builds())
    older = pipe.git("rev-parse", "HEAD~3").strip()  # keystone at 2 replicas
    pipe.git("reset", "-q", "--hard", older)
    pipe.push(force=True)
    build = pipe.wait(before + 1)[-1]
    assert build["results"] == SUCCESS, build["state_string"]
    assert master_status(lab)["revision"] == older
    assert served(lab) == f"/srv/stacksalt-ci/revisions/{older}"
    assert all(i["decision"] == "reuse" for i in report(lab, older)["images"])


def test_the_registry_down_stops_before_the_master(pipe, lab):
    before = len(pipe.builds())
    good = master_status(lab)["revision"]
    lab.master.exec_run(["systemctl", "stop", "docker-registry"])
    try:
        pipe.commit("keystone: 4 replicas", replicas(4))
        pipe.push()
        build = pipe.wait(before + 1)[-1]
    finally:
        lab.master.exec_run(["systemctl", "start", "docker-registry"])
    assert build["results"] == FAILURE, build["state_string"]
    assert master_status(lab)["revision"] == good
