#!/usr/bin/env python3
"""Benchmark the release pipeline in the lab: `git push` to Buildbot's finished build (its
report on the master), per kind of change, against the 60 s target for a change no image
is built from.

Needs the lab up (`stacksalt lab up`: git server on cfg01, Buildbot on this host). Makes a
deployment repository with `stacksalt init lab DIR --from lab`, pushes it once (the
warm-up: its build may push images the registry does not have yet), then per scenario N
pushes, each printed with its push-to-report time, the pipeline's step times from the
report and the images it built:

- ``replicas``: keystone's replica count (no image bakes it): 0 images, under 60 s;
- ``nova-option``: nova's cpu_allocation_ratio (baked into the nova images): only nova
  images are built;
- ``release``: openstack_version to the other release the lab's images know and back:
  the bump builds OpenStack images only, never an infrastructure one (an image whose tag
  already holds the same inputs in the registry, from an earlier run, is reused).

Medians per scenario, and the replica scenario's ratio to the target. A build that fails
or builds what its scenario must not is named, and the exit code is 1. Afterwards the
master serves the checkout again.

Not a test: run it by hand,
``.venv/bin/python benchmarks/pipeline_push.py [--runs 3] [--scenario replicas ...]``.
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
CLUSTER = Path("reclass/classes/cluster/lab/init.yml")
INFRA = {"mariadb", "rabbitmq", "memcached"}


def _sub(key: str, values: tuple[str, str]):
    """An edit of ``key:`` to values[n % 2] for run n."""
    def edit(text: str, n: int) -> str:
        return re.sub(rf"(?m)^(\s*{key}:) .+$", rf"\g<1> {values[n % 2]}", text)
    return edit


# scenario: (file, edit, check(built image names) -> problem or "")
SCENARIOS = {
    "replicas": (OPENSTACK, _sub("keystone_replicas", ("2", "1")),
                 lambda built: f"built {built}" if built else ""),
    "nova-option": (OPENSTACK, _sub("nova_cpu_allocation_ratio", ("8.0", "16.0")),
                    lambda built: "" if built and all(b.startswith("nova-") for b in built)
                    else f"built {built or 'nothing'}, not the nova images alone"),
    "release": (CLUSTER, _sub("openstack_version", ("gazpacho", "flamingo")),
                lambda built: f"built infrastructure images {sorted(INFRA & set(built))}"
                if INFRA & set(built) else ""),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenario", nargs="+", choices=sorted(SCENARIOS),
                        default=["replicas", "nova-option", "release"])
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
        pipeline.push_product(pipe, lab)  # what the repository pins (this HEAD)
        init("lab", "lab", repo)
        git(repo, "remote", "add", "cfg01", pipe.remote)
        try:
            took, rep = push_and_wait(repo, force=True)
            built = sum(1 for i in rep["images"] if i["decision"] == "build")
            print(f"warm-up push: {took:.1f} s, {built} images built, ok={rep['ok']}")
            results: dict[str, list[float]] = {}
            bad = []
            for scenario in args.scenario:
                rel, edit, check = SCENARIOS[scenario]
                for n in range(args.runs):
                    path = repo / rel
                    path.write_text(edit(path.read_text(), n))
                    git(repo, "commit", "-qam", f"bench {scenario} {n}")
                    took, rep = push_and_wait(repo)
                    built = sorted(i["image"] for i in rep["images"] if i["decision"] == "build")
                    steps = ", ".join(f"{s['name']} {s['seconds']:.1f}" for s in rep["steps"])
                    print(f"{scenario} run {n + 1}: {took:.1f} s push-to-report; built "
                          f"{', '.join(built) or 'nothing'}; steps: {steps}")
                    results.setdefault(scenario, []).append(took)
                    problem = "build failed" if rep["result"] != 0 else check(built)
                    if problem:
                        bad.append(f"{scenario} run {n + 1}: {problem}")
        finally:
            lab_mod.link_base_dir(master, lab)
    for scenario, times in results.items():
        median = statistics.median(times)
        line = f"median push-to-report, {scenario}: {median:.1f} s over {len(times)} runs"
        if scenario == "replicas":
            line += f"; target {TARGET_SECONDS:.0f} s; ratio {median / TARGET_SECONDS:.2f}"
            if median > TARGET_SECONDS:
                bad.append(f"replicas: median {median:.1f} s over the target")
        print(line)
    for problem in bad:
        print(problem)
    return 1 if bad else 0

if __name__ == "__main__":
    raise SystemExit(main())
