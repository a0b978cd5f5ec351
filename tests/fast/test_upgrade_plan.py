"""``stacksalt upgrade plan``: a release bump and a static parameter, as git commits.

A temporary clone of the repository gets the checkout's working tree (reclass/ and
formulas/, committed as one commit when it differs from HEAD), then a commit that
changes the model; the plan between the two commits is computed by building one master's
objects at each (the objects builder of that commit) and must show exactly what the change
means:

- openstack_version flamingo -> gazpacho: only image tags, per-release Jobs (new ones,
  and the old release's gone) and config hashes (the release is in the baked config);
- nova_cpu_allocation_ratio 16.0 -> 8.0: only the config hash of nova-compute, whose
  image bakes nova:compute (the overcommit is the compute's to report to placement).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stacksalt import paths, secrets
from stacksalt.cli import main as cli_main
from stacksalt.upgrade import plan as upgrade

pytestmark = pytest.mark.fast

DEPLOYMENT = "lab"
CLUSTER = Path("deployments/lab/reclass/classes/cluster/lab")


# what the plan reads: the product's formulas and classes, the example deployment repositories
PARTS = ("reclass", "formulas", "deployments")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A", *PARTS)
    if git(repo, "status", "--porcelain", *PARTS):
        git(repo, "-c", "user.name=test", "-c", "user.email=test@invalid", "commit", "-q",
            "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> tuple[Path, str]:
    """A clone whose HEAD is the checkout's working tree (reclass/, formulas/, deployments/)."""
    secrets.generate(DEPLOYMENT)
    clone = tmp_path_factory.mktemp("upgrade") / "repo"
    subprocess.run(["git", "clone", "-q", "--shared", str(paths.repo_root()), str(clone)],
                   check=True)
    for part in PARTS:
        shutil.rmtree(clone / part, ignore_errors=True)
        shutil.copytree(paths.repo_root() / part, clone / part, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", ".stacksalt", "*.sls"))
        if part == "deployments":  # the pillar top files are tracked, the secrets not
            for top in (paths.repo_root() / part).glob("*/pillar/top.sls"):
                shutil.copy(top, clone / top.relative_to(paths.repo_root()))
    return clone, commit(clone, "working tree")


def edit(repo: Path, rel: Path, pattern: str, replacement: str) -> None:
    path = repo / rel
    text, count = re.subn(pattern, replacement, path.read_text(), flags=re.MULTILINE)
    assert count == 1, f"{pattern!r} must match once in {rel}"
    path.write_text(text)


def commit_change(repo: tuple[Path, str], rel: Path, pattern: str, replacement: str,
                  message: str) -> str:
    clone, base = repo
    git(clone, "checkout", "-q", "--detach", base)
    edit(clone, rel, pattern, replacement)
    return commit(clone, message)


def test_release_bump_changes_only_tags_jobs_and_config(repo):
    clone, base = repo
    bumped = commit_change(repo, CLUSTER / "init.yml", r"^(\s*openstack_version:\s*)flamingo$",
                           r"\1gazpacho", "release gazpacho")
    result = upgrade.plan(DEPLOYMENT, base, bumped, repo=clone)
    counts = result.counts()
    assert set(counts) == {"image-tag", "release-job", "config-hash"}, (
        counts, upgrade.lines(result))
    openstack = ("keystone", "glance-api", "placement-api", "neutron-server", "nova-controller",
                 "nova-compute")
    # every OpenStack workload rolls: new tag on every container, new baked config
    for role in openstack:
        kind = "daemonset" if role == "nova-compute" else "deployment"
        change = next(c for c in result.changes if c.step == f"{kind}/{role}")
        images = [f for f in change.fields if f.category == "image-tag"]
        assert images and all(f.old.endswith(":flamingo") and f.new.endswith(":gazpacho")
                              for f in images), change
        assert [f.path for f in change.fields if f.category == "config-hash"] == [
            f"spec.template.metadata.annotations.{upgrade.CONFIG_HASH}"]
    # infrastructure keeps its Debian version: untouched
    for role in ("mariadb", "rabbitmq", "memcached"):
        assert not any(c.step == f"deployment/{role}" for c in result.changes)
    # per release: every Job of flamingo gone, one of gazpacho for each
    added = {c.step for c in result.changes if c.status == "added"}
    removed = {c.step for c in result.changes if c.status == "removed"}
    assert added and {s.replace("-gazpacho", "-flamingo") for s in added} == removed
    assert all(s.startswith("job/") and s.endswith("-gazpacho") for s in added)
    # bootstrap is a first install's: an upgrade skips it (the workload exists)
    bootstrap = next(c for c in result.changes if c.step == "job/keystone-bootstrap-gazpacho")
    assert bootstrap.unless_exists == "deployment/keystone"
    assert "skipped while deployment/keystone exists" in "\n".join(upgrade.lines(result))
    # in the new apply order: keystone's Jobs and Deployment before glance's
    steps = [c.step for c in result.changes]
    assert steps.index("job/keystone-expand-gazpacho") < steps.index("deployment/keystone") \
        < steps.index("job/keystone-contract-gazpacho") < steps.index("deployment/glance-api")
    assert steps.index("daemonset/nova-compute") < steps.index(
        "job/nova-controller-contract-gazpacho")


def test_static_parameter_changes_only_the_config_hash_of_its_image(repo):
    clone, base = repo
    changed = commit_change(repo, CLUSTER / "openstack" / "init.yml",
                            r"^(\s*nova_cpu_allocation_ratio:\s*)16\.0$", r"\g<1>8.0",
                            "nova_cpu_allocation_ratio 8.0")
    result = upgrade.plan(DEPLOYMENT, base, changed, repo=clone)
    assert [(c.step, [(f.path, f.category) for f in c.fields]) for c in result.changes] == [
        ("daemonset/nova-compute",
         [(f"spec.template.metadata.annotations.{upgrade.CONFIG_HASH}", "config-hash")])]
    assert result.unchanged == len(result.new.objects) - 1


def test_cli_prints_the_plan(repo, capsys):
    clone, base = repo
    changed = commit_change(repo, CLUSTER / "openstack" / "init.yml",
                            r"^(\s*nova_cpu_allocation_ratio:\s*)16\.0$", r"\g<1>4.0",
                            "nova_cpu_allocation_ratio 4.0")
    assert cli_main(["-C", str(paths.example(DEPLOYMENT)), "upgrade", "plan", base, changed,
                     "--deployment", DEPLOYMENT, "--repo", str(clone)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == ("daemonset/nova-compute "
                      "(openstack/40-nova-compute/daemonset-nova-compute.yaml):")
    assert re.fullmatch(r"    spec\.template\.metadata\.annotations\.stacksalt\.io/config-hash: "
                        r"[0-9a-f]{12} -> [0-9a-f]{12} \[config-hash\]", out[2]), out
    assert re.fullmatch(r"1 objects change \(config-hash 1\); \d+ unchanged", out[-1]), out


def test_unknown_revision_is_refused(repo, capsys):
    clone, base = repo
    assert cli_main(["-C", str(paths.example(DEPLOYMENT)), "upgrade", "plan", base,
                     "no-such-rev", "--repo", str(clone)]) == 2
    assert f"'no-such-rev' is not a commit of {clone}" in capsys.readouterr().out


def test_a_downgrade_is_refused_unless_allowed(repo, capsys):
    """gazpacho back to flamingo: the newer release's contract Jobs may have run, so the
    plan refuses (the apply state's own rule, by series); --allow-downgrade plans it and
    says DOWNGRADE first. The upgrade the other way is planned as usual."""
    clone, base = repo
    bumped = commit_change(repo, CLUSTER / "init.yml", r"^(\s*openstack_version:\s*)flamingo$",
                           r"\1gazpacho", "release gazpacho")
    assert upgrade.plan(DEPLOYMENT, base, bumped, repo=clone).downgrade is None
    with pytest.raises(upgrade.UpgradeError) as err:
        upgrade.plan(DEPLOYMENT, bumped, base, repo=clone)
    msg = str(err.value)
    assert "\n" not in msg
    assert "refusing to downgrade OpenStack from gazpacho (2026.1) to flamingo (2025.2)" in msg
    assert "contract Jobs" in msg and "--allow-downgrade" in msg
    assert cli_main(["-C", str(paths.example(DEPLOYMENT)), "upgrade", "plan", bumped, base,
                     "--deployment", DEPLOYMENT, "--repo", str(clone)]) == 2
    assert "refusing to downgrade" in capsys.readouterr().out
    assert cli_main(["-C", str(paths.example(DEPLOYMENT)), "upgrade", "plan", bumped, base,
                     "--deployment", DEPLOYMENT, "--repo", str(clone),
                     "--allow-downgrade"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("DOWNGRADE: refusing to downgrade OpenStack from gazpacho"), out
    assert any(line.startswith("deployment/keystone") for line in out)
