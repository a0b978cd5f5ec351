"""Buildbot on the build host (stacksalt.pipeline.buildbot), run for real: a master and its
local worker in a temp dir on free ports, a bare repository with the git server's
post-receive hook (rendered by Salt from formulas/git) pointing at it, two pushes in a row.
Buildbot's REST API must show two builds, in order, one at a time, each with its pushed
revision and the old revision, and the command's output in the build's log; a push to
another branch queues nothing."""

from __future__ import annotations

import stat
import time

import pytest
import requests

from stacksalt import paths
from stacksalt.pipeline import buildbot
from tests.fast import gitserver
from tests.netutil import free_port

pytestmark = pytest.mark.fast

ZERO = "0" * 40
HOOK_PASSWORD = "hook-pass-2"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, lab_secrets):
    tmp = tmp_path_factory.mktemp("buildbot")
    bare = tmp / "deployment.git"
    web = free_port()
    password_file = tmp / "change-hook-password"
    password_file.write_text(HOOK_PASSWORD + "\n")
    password_file.chmod(0o600)
    netrc = tmp / "buildbot.netrc"  # what git.server writes beside the repository
    netrc.write_text(f"machine 127.0.0.1 login git-server password {HOOK_PASSWORD}\n")
    netrc.chmod(0o600)
    cfg = buildbot.parse_config({
        "basedir": str(tmp / "bb"),
        "web_port": web,
        "web_interface": "127.0.0.1",
        "worker_port": free_port(),
        "buildbot_url": f"http://127.0.0.1:{web}/",
        "change_hook_user": "git-server",
        "change_hook_password_file": str(password_file),
        "builders": [{
            "name": "deployment",
            "repository": str(bare),
            "branch": "main",
            "commands": [["git", "log", "-1", "--format=pushed %%H"],
                         ["echo", "from %(prop:old_revision)s to %(prop:got_revision)s"],
                         ["sh", "-c", "echo \"env $STACKSALT_TEST_ENV\""]],
            "env": {"STACKSALT_TEST_ENV": "for %(prop:got_revision)s"},
        }],
    }, "test")
    hook = gitserver.render_template(paths.repo_root(), "post-receive.jinja", {
        "buildbot_url": cfg.url, "branch": "main", "repository": str(bare),
        "builder": "deployment", "curl_timeout": 10, "netrc": str(netrc),
    }, tmp / "post-receive")
    buildbot.start(cfg)
    try:
        _, clone = gitserver.bare_with_hook(tmp, hook)
        yield cfg, clone
    finally:
        buildbot.stop(cfg)
    assert buildbot.running(cfg) == {"master": False, "worker": False}


def wait_builds(cfg, count: int, timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        builds = buildbot.api(cfg, "builds", complete="true", order="number")["builds"]
        if len(builds) >= count:
            return builds
        time.sleep(0.5)
    raise AssertionError(f"{count} builds did not complete in {timeout} s: "
                         f"{buildbot.api(cfg, 'builds')}")


def log_of(cfg, build: dict, command: int) -> str:
    """The stdio log of the builder's command number ``command`` in ``build`` (steps:
    worker preparation, checkout, then the commands)."""
    steps = buildbot.api(cfg, f"builds/{build['buildid']}/steps")["steps"]
    assert [s["name"] for s in steps[:2]] == ["worker_preparation", "checkout"], steps
    step = steps[2 + command]
    resp = requests.get(f"{cfg.url}api/v2/builds/{build['buildid']}/steps/{step['number']}"
                        "/logs/stdio/raw", timeout=10)
    resp.raise_for_status()
    return resp.text


def test_two_pushes_build_in_order_with_both_revisions(pipeline):
    cfg, clone = pipeline
    first, push1 = gitserver.commit_and_push(clone, "first")
    second, push2 = gitserver.commit_and_push(clone, "second")
    assert push1.returncode == push2.returncode == 0, push1.stderr + push2.stderr
    builder = buildbot.api(cfg, "builders", name="deployment")["builders"][0]["builderid"]
    # the hook found the builder through Buildbot's API
    assert f"remote: build queued: {cfg.url.rstrip('/')}/#/builders/{builder}" in push1.stderr

    builds = wait_builds(cfg, 2)
    assert [b["number"] for b in builds] == [1, 2]
    assert all(b["results"] == 0 for b in builds), builds
    # one at a time: the second started once the first was done
    assert builds[1]["started_at"] >= builds[0]["complete_at"]
    for build, (old, new) in zip(builds, [(ZERO, first), (first, second)], strict=True):
        props = buildbot.api(cfg, f"builds/{build['buildid']}/properties")["properties"][0]
        assert props["revision"][0] == new
        assert props["got_revision"][0] == new
        assert props["old_revision"] == [old, "Change"]
        assert f"\npushed {new}\n" in log_of(cfg, build, 0)
        assert f"\nfrom {old} to {new}\n" in log_of(cfg, build, 1)
        # the builder's env reaches the commands, interpolated
        assert f"\nenv for {new}\n" in log_of(cfg, build, 2)


def test_history_survives_a_restart(pipeline):
    cfg, _ = pipeline
    before = buildbot.api(cfg, "builds", complete="true", order="number")["builds"]
    assert len(before) >= 2
    buildbot.stop(cfg)
    assert buildbot.running(cfg) == {"master": False, "worker": False}
    assert buildbot.api(cfg, "builds") == {}  # nothing answers
    buildbot.start(cfg)
    after = buildbot.api(cfg, "builds", complete="true", order="number")["builds"]
    assert [(b["number"], b["results"]) for b in after[:len(before)]] == \
        [(b["number"], b["results"]) for b in before]


def test_a_push_to_another_branch_queues_nothing(pipeline):
    cfg, clone = pipeline
    changes = len(buildbot.api(cfg, "changes")["changes"])
    requests_before = len(buildbot.api(cfg, "buildrequests")["buildrequests"])
    _, push = gitserver.commit_and_push(clone, "topic work", branch="topic")
    assert push.returncode == 0, push.stderr
    assert "build queued" not in push.stderr
    # the hook posts before the push returns: nothing posted is nothing queued
    assert len(buildbot.api(cfg, "changes")["changes"]) == changes
    assert len(buildbot.api(cfg, "buildrequests")["buildrequests"]) == requests_before


def test_a_change_for_another_repository_queues_nothing(pipeline):
    """Control for the scheduler's filter: a change the builder's filter does not match
    reaches Buildbot (it is recorded) but requests no build."""
    cfg, _ = pipeline
    before = len(buildbot.api(cfg, "buildrequests")["buildrequests"])
    resp = requests.post(f"{cfg.url}change_hook/base", timeout=10,
                         auth=("git-server", HOOK_PASSWORD), data={
        "repository": "/elsewhere.git", "branch": "main", "revision": "1" * 40})
    assert resp.status_code == 200 and resp.text == "1 change found"
    time.sleep(2)  # the scheduler would have requested it by now
    assert len(buildbot.api(cfg, "buildrequests")["buildrequests"]) == before


def test_the_change_hook_takes_only_its_account(pipeline):
    cfg, _ = pipeline
    changes = len(buildbot.api(cfg, "changes")["changes"])
    change = {"repository": str(cfg.builders[0].repository), "branch": "main",
              "revision": "2" * 40}
    for auth in (None, ("git-server", "wrong"), ("someone", HOOK_PASSWORD)):
        resp = requests.post(f"{cfg.url}change_hook/base", timeout=10, auth=auth, data=change)
        assert resp.status_code == 401, (auth, resp.status_code, resp.text)
    assert len(buildbot.api(cfg, "changes")["changes"]) == changes
    users = cfg.master_dir / buildbot.CHANGE_HOOK_USERS
    assert stat.S_IMODE(users.stat().st_mode) == 0o600


def test_the_worker_password_is_private(pipeline):
    cfg, _ = pipeline
    for path in (cfg.master_dir / buildbot.PASSWORD_FILE, cfg.worker_dir / "buildbot.tac"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(cfg.basedir.stat().st_mode) == 0o700
    password = (cfg.master_dir / buildbot.PASSWORD_FILE).read_text().strip()
    assert password not in (cfg.master_dir / "master.cfg").read_text()
    assert password not in (cfg.master_dir / buildbot.CONFIG_FILE).read_text()


def test_the_web_ui_is_read_only(pipeline):
    cfg, _ = pipeline
    resp = requests.post(f"{cfg.url}api/v2/builds/1", timeout=10,
                         json={"jsonrpc": "2.0", "method": "stop", "id": 1, "params": {}})
    assert resp.status_code == 403, resp.text


# -- the config ---------------------------------------------------------------------------


def test_bad_config_is_one_line_naming_file_and_key(tmp_path):
    path = tmp_path / "pipeline.yml"
    path.write_text("basedir: /tmp/x\nweb_port: eighty\nbuilders:\n"
                    "  - {name: d, repository: r, commands: [[echo]]}\n")
    with pytest.raises(buildbot.PipelineError) as err:
        buildbot.load_config(path)
    assert str(err.value) == f"{path}: web_port: 'eighty' is not of type 'integer'"


def test_a_lone_percent_in_a_command_is_refused(tmp_path):
    path = tmp_path / "pipeline.yml"
    path.write_text("basedir: /tmp/x\nbuilders:\n"
                    "  - {name: d, repository: r, commands: [[git, log, --format=%H]]}\n")
    with pytest.raises(buildbot.PipelineError) as err:
        buildbot.load_config(path)
    assert str(err.value).startswith(f"{path}: builders:0:commands:0:2: '--format=%H'")
    assert "\n" not in str(err.value)


def test_a_readable_change_hook_password_is_refused_before_anything_is_made(tmp_path):
    password = tmp_path / "pw"
    password.write_text("x\n")
    password.chmod(0o644)
    cfg = buildbot.parse_config({
        "basedir": str(tmp_path / "bb"), "change_hook_user": "git-server",
        "change_hook_password_file": str(password),
        "builders": [{"name": "d", "repository": "r", "commands": [["true"]]}]}, "p.yml")
    with pytest.raises(buildbot.PipelineError) as err:
        buildbot.create(cfg)
    assert str(err.value) == (f"change_hook_password_file: {password} is readable by others "
                              "(mode 644); chmod 600 it")
    assert not (tmp_path / "bb").exists()


def test_a_good_config_loads(tmp_path):
    path = tmp_path / "pipeline.yml"
    path.write_text("basedir: /srv/buildbot\nbuilders:\n"
                    "  - {name: deployment, repository: 'git@cfg01:deployment.git',\n"
                    "     commands: [[stacksalt, ci, run, --from, '%(prop:old_revision)s',\n"
                    "                 --to, '%(prop:got_revision)s']]}\n")
    cfg = buildbot.load_config(path)
    assert cfg.url == "http://localhost:8010/"
    assert cfg.builders[0].branch == "main"
    assert cfg.builders[0].commands[0][4] == "%(prop:old_revision)s"


def test_the_command_reports_a_bad_config_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "pipeline.yml"
    path.write_text("basedir: /tmp/x\nbuilders: []\n")
    stacksalt = Path(sys.executable).with_name("stacksalt")
    proc = subprocess.run([str(stacksalt), "ci", "buildbot", "start", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr == f"error: {path}: builders: [] should be non-empty\n"
