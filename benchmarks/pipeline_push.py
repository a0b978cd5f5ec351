#!/usr/bin/env python3
"""Benchmark the release pipeline in the lab: `git push` of a change no image is built
from (keystone's replica count) to Buildbot's finished build, against the 60 s target.

Needs the lab up (`stacksalt lab up`: git server on cfg01, Buildbot on this host). Makes a
deployment repository with `stacksalt init lab DIR --from lab`, pushes it once (the
warm-up: its build may build and push images the registry does not have yet), then N
pushes that each change only `keystone_replicas`, and prints for each the push-to-report
time (the push until Buildbot's build is complete, its report on the master), the
pipeline's own step times from that report, how many images it built, the median and its
ratio to the target. Every measured build must succeed and build 0 images, else it says
which did not and exits 1. Afterwards the master serves the checkout again.

Not a test: run it by hand, ``.venv/bin/python benchmarks/pipeline_push.py [--runs 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import docker

from stacksalt.deployment import Deployment
from stacksalt.init import init
from stacksalt.lab import lab as lab_mod
from stacksalt.lab import pipeline
from stacksalt.lab.plan import plan
from stacksalt.pipeline import buildbot

TARGET_SECONDS = 60.0
OPENSTACK = Path("reclass/classes/cluster/lab/openstack/init.yml")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    lab = plan(Deployment.load("lab"))
    pipe = pipeline.of(Deployment.load("lab"), lab)
    cfg = pipe.config(lab)
    if not all(buildbot.running(cfg).values()):
        raise SystemExit("the lab's Buildbot is not running: `stacksalt lab up` first")
    builder = buildbot.api(cfg, "builders", name=pipe.repository)["builders"][0]["builderid"]
    master = docker.from_env().containers.get(lab.master.container_name(lab.deployment))
    env = {**os.environ, "GIT_SSH_COMMAND": pipe.ssh_command}

    def git(repo: Path, *a: str) -> str:
        return subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@lab",
                               *a], cwd=repo, env=env, check=True, capture_output=True,
                              text=True).stdout.strip()

    def push_and_wait(repo: Path, force: bool = False) -> tuple[float, dict]:
        before = len(buildbot.api(cfg, f"builders/{builder}/builds")["builds"])
        started = time.monotonic()
        git(repo, "push", *(["--force"] if force else []), "cfg01", "main")
        while True:
            builds = buildbot.api(cfg, f"builders/{builder}/builds", order="number")["builds"]
            if len(builds) > before and builds[before]["complete"]:
                break
            time.sleep(0.5)
        took = time.monotonic() - started
        rev = git(repo, "rev-parse", "HEAD")
        out = master.exec_run(["cat", f"/srv/stacksalt-ci/reports/{rev}.json"]).output
        return took, {"result": builds[before]["results"], **json.loads(out)}

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "lab-repo"
        init("lab", "lab", repo)
        git(repo, "remote", "add", "cfg01", pipe.remote)
        try:
            took, rep = push_and_wait(repo, force=True)
            built = sum(1 for i in rep["images"] if i["decision"] == "build")
            print(f"warm-up push: {took:.1f} s, {built} images built, ok={rep['ok']}")
            times, bad = [], []
            for n in range(args.runs):
                path = repo / OPENSTACK
                path.write_text(re.sub(r"(?m)^(\s*keystone_replicas:) \d+$",
                                       rf"\g<1> {2 + n % 2}", path.read_text()))
                git(repo, "commit", "-qam", f"bench {n}")
                took, rep = push_and_wait(repo)
                built = sum(1 for i in rep["images"] if i["decision"] == "build")
                steps = ", ".join(f"{s['name']} {s['seconds']:.1f}" for s in rep["steps"])
                print(f"run {n + 1}: {took:.1f} s push-to-report; {built} images built; "
                      f"steps: {steps}")
                times.append(took)
                if rep["result"] != 0 or built:
                    bad.append(n + 1)
        finally:
            lab_mod.link_base_dir(master, lab)
    median = statistics.median(times)
    print(f"median push-to-report, replica change: {median:.1f} s over {len(times)} runs; "
          f"target {TARGET_SECONDS:.0f} s; ratio {median / TARGET_SECONDS:.2f}")
    if bad:
        print(f"runs {bad}: the build failed or built images")
        return 1
    return 0 if median <= TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
