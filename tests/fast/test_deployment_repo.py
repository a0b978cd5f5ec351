"""Deployment repositories: `stacksalt init`, and every command working on the repository
it runs in (or -C DIR), never on the installed checkout's model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stacksalt import paths
from stacksalt.repo import DeploymentRepo

pytestmark = pytest.mark.fast

CLI = [sys.executable, "-m", "stacksalt.cli"]


def stacksalt(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(paths.package_checkout() / "src")}
    env.pop("STACKSALT_ROOT", None)
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, env=env)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@invalid",
         "-c", "protocol.file.allow=always", *args],
        capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def product(tmp_path_factory) -> Path:
    """A clone of this checkout whose HEAD holds its working tree (what init pins)."""
    clone = tmp_path_factory.mktemp("product") / "stacksalt"
    git(paths.package_checkout(), "worktree", "list")  # a git checkout, or fail here
    subprocess.run(["git", "clone", "-q", "--shared", str(paths.package_checkout()),
                    str(clone)], check=True)
    for part in ("reclass", "formulas", "images", "deployments", "src", "setup.cfg"):
        subprocess.run(["rm", "-rf", str(clone / part)], check=True)
        subprocess.run(["cp", "-a", str(paths.package_checkout() / part), str(clone / part)],
                       check=True)
    subprocess.run(["find", str(clone), "-name", "__pycache__", "-prune", "-exec", "rm", "-rf",
                    "{}", "+"], check=True)
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "--allow-empty", "-m", "working tree")
    return clone


@pytest.fixture(scope="module")
def site(product, tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("sites")
    proc = stacksalt("init", "mysite", "--from", "lab", "--product", str(product), cwd=where)
    assert proc.returncode == 0, proc.stderr
    return where / "mysite"


def test_init_makes_a_repository_that_reaches_the_product(site, product):
    assert git(site, "status", "--porcelain") == ""  # everything committed
    # the product is a submodule pinned at the product's commit, not a copy
    pin = git(site, "ls-tree", "HEAD", "stacksalt").split()
    assert pin[:2] == ["160000", "commit"] and pin[2] == git(product, "rev-parse", "HEAD")
    for shared in ("service", "system"):
        link = site / "reclass" / "classes" / shared
        assert link.is_symlink()
        assert os.readlink(link) == f"../../stacksalt/reclass/classes/{shared}"
    tracked = git(site, "ls-files").splitlines()
    assert not [f for f in tracked if f.startswith("formulas/") or "/service/" in f]
    assert "reclass/classes/cluster/mysite/init.yml" in tracked
    text = (site / "reclass" / "classes" / "cluster" / "mysite" / "init.yml").read_text()
    assert "cluster_name: mysite" in text and "cluster.lab" not in text
    assert DeploymentRepo.load(site).name == "mysite"
    # a throwaway key's secrets are never committed: git ignores them
    ignored = subprocess.run(["git", "-C", str(site), "check-ignore", "-q",
                              "pillar/secrets/mysite.sls"])
    assert ignored.returncode == 0


def test_commands_work_on_the_repository_they_run_in(site, tmp_path):
    """The report of the issue: a copy with a broken class and two unresolved references
    was checked against the installed checkout's model and printed OK."""
    ok = stacksalt("model", "check", cwd=site / "reclass" / "nodes")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "deployment 'mysite'" in ok.stdout
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(site), str(copy)], check=True)
    init = copy / "reclass" / "classes" / "cluster" / "mysite" / "init.yml"
    init.write_text(init.read_text().replace(
        "cluster_name: mysite", "cluster_name: ${_param:nope_one}\n    broken: ${_param:nope_two}"))
    bad = stacksalt("model", "check", cwd=copy)
    assert bad.returncode == 1
    assert "classes/cluster/mysite/init.yml" in bad.stdout
    assert "nope_one" in bad.stdout and "nope_two" in bad.stdout
    # -C from anywhere: the same verdicts
    assert stacksalt("-C", str(copy), "model", "check", cwd=tmp_path).returncode == 1
    assert stacksalt("-C", str(site), "model", "check", cwd=tmp_path).returncode == 0


def test_outside_a_repository_it_says_so(tmp_path):
    proc = stacksalt("model", "check", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1  # one line, no traceback
    assert "not inside a stacksalt deployment repository" in proc.stderr
    assert "stacksalt init" in proc.stderr


def test_another_deployment_name_is_refused(site):
    proc = stacksalt("model", "check", "lab", cwd=site)
    assert proc.returncode == 1
    assert "this repository is deployment 'mysite', not 'lab'" in proc.stderr


def test_a_bad_stacksalt_yml_names_file_and_key(tmp_path, site):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(site), str(copy)], check=True)
    cfg = copy / "stacksalt.yml"
    cfg.write_text(cfg.read_text() + "colour: blue\n")
    proc = stacksalt("model", "check", cwd=copy)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"stacksalt: {cfg}: colour: unknown key (known: deployment, " \
        "secrets)"
    cfg.write_text("deployment: mysite\nsecrets:\n  master_key: 1234\n")
    proc = stacksalt("model", "check", cwd=copy)
    assert "secrets:master_key: 1234 is not a gpg fingerprint" in proc.stderr


def test_init_refuses_a_used_folder_and_a_bad_name(tmp_path, product):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    proc = stacksalt("init", "taken", "--product", str(product), cwd=tmp_path)
    assert proc.returncode == 1 and "exists and is not empty" in proc.stderr
    assert (tmp_path / "taken" / "x").read_text() == "x"
    proc = stacksalt("init", "My_Site", "--product", str(product), cwd=tmp_path)
    assert proc.returncode == 1 and "is not a deployment name" in proc.stderr
    proc = stacksalt("init", "other", "--from", "nosuch", "--product", str(product),
                     cwd=tmp_path)
    assert proc.returncode == 1 and "no such example (examples: lab, production)" in proc.stderr
    assert not (tmp_path / "other").exists()


def test_the_shipped_examples_are_deployment_repositories():
    assert paths.examples() == ["lab", "production"]
    for name in paths.examples():
        repo = DeploymentRepo.load(paths.example(name))
        assert repo.name == name
        assert (repo.root / "stacksalt").resolve() == paths.package_checkout()
        proc = stacksalt("model", "check", cwd=repo.root)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_upgrade_plan_follows_the_pinned_product(site, tmp_path):
    """`upgrade plan` in a repository made by init exports each revision's model and the
    product at the commit that revision pins (the submodule), and sees a model change."""
    copy = tmp_path / "site"
    subprocess.run(["git", "clone", "-q", str(site), str(copy)], check=True)
    git(copy, "submodule", "update", "--init", "-q")
    gen = stacksalt("secrets", "generate", cwd=copy)
    assert gen.returncode == 0, gen.stderr
    control = copy / "reclass" / "classes" / "cluster" / "mysite" / "openstack" / "init.yml"
    text = control.read_text()
    assert "keystone_replicas: 1\n" in text
    control.write_text(text.replace("keystone_replicas: 1\n", "keystone_replicas: 2\n", 1))
    git(copy, "commit", "-qam", "one more replica")
    proc = stacksalt("upgrade", "plan", "HEAD~1", "HEAD", cwd=copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "spec.replicas: 1 -> 2" in proc.stdout
    same = stacksalt("upgrade", "plan", "HEAD", "HEAD", cwd=copy)
    assert same.returncode == 0 and "spec.replicas" not in same.stdout


def test_secrets_commands_default_to_the_repositorys_deployment(site, tmp_path):
    """`stacksalt secrets list` in a repository that is not `lab` works on that repository
    (its --deployment defaulted to 'lab', which the repository then refused)."""
    copy = tmp_path / "site"
    subprocess.run(["cp", "-a", str(site), str(copy)], check=True)
    proc = stacksalt("secrets", "list", cwd=copy)
    assert "this repository is deployment" not in proc.stderr, proc.stderr
    assert "missing:" in proc.stdout  # nothing generated yet: every referenced name missing


def test_init_of_the_examples_own_deployment_takes_its_secrets(product, tmp_path, lab_secrets):
    """`init lab --from lab` makes the repository an admin pushes to the lab's cfg01: it
    commits the lab's encrypted secrets (the lab master decrypts them) and takes this
    machine's state for them, so its commands decrypt; `init mysite` (above) does neither."""
    proc = stacksalt("init", "lab", "--from", "lab", "--product", str(product), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    repo = tmp_path / "lab"
    assert git(repo, "status", "--porcelain") == ""
    assert "pillar/secrets/lab.sls" in git(repo, "ls-files").splitlines()
    example = paths.example("lab")
    assert (repo / "pillar/secrets/lab.sls").read_bytes() == \
        (example / "pillar/secrets/lab.sls").read_bytes()
    # the state is this machine's, so it stays out of git
    assert (repo / ".stacksalt" / "gpgkeys").is_dir()
    assert not [f for f in git(repo, "ls-files").splitlines() if f.startswith(".stacksalt")]
    check = stacksalt("secrets", "check", cwd=repo)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_state_dir_can_be_named_for_a_checkout_without_one(tmp_path, monkeypatch):
    """A CI build's clone has no .stacksalt/: $STACKSALT_STATE_DIR names the lab's."""
    assert paths.state_dir(tmp_path) == tmp_path / ".stacksalt"
    monkeypatch.setenv(paths.STATE_DIR_ENV, str(tmp_path / "elsewhere"))
    assert paths.state_dir(tmp_path) == tmp_path / "elsewhere"
