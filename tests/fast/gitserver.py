"""Helpers for the git server's tests: a checkout copy whose salt master node has the
git server, its post-receive hook rendered by Salt, and a bare repository using it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import gnupg
import yaml

from stacksalt import saltrender, secrets
from tests.trees import copy_deployment

NODE = "cfg01.lab.local"
# a real key shape (the schema checks it); nobody holds its private half
ADMIN_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq1ZCu8zD3Yb0nq0cG1yYbq6v2z6m2F9m5r2Yb7f7aQ "
             "admin@example")
HOOK_STATE = "git-server-repository-deployment-post-receive-hook-managed"
NETRC_STATE = "git-server-repository-deployment-buildbot-netrc-managed"
HOOK_USER = "git-server"
HOOK_SECRET = "buildbot_change_hook_password"


def checkout(root: Path, params: dict[str, Any], password: str = "hook-pass-1") -> Path:
    """A copy of the lab's deployment repository under root (its formulas copied too),
    cfg01 with system.git.server.single, the repository ``deployment`` instead of the lab's,
    no admin_keys_secret, the cluster-level parameters ``params`` (what a cluster class
    would set), and the change hook's password in its secrets."""
    secrets.generate("lab")  # the example's throwaway secrets, which the copy takes along
    copy_deployment("lab", root, copy_product=("formulas",))
    node = root / "reclass" / "nodes" / "lab" / f"{NODE}.yml"
    data = yaml.safe_load(node.read_text())
    data["classes"].append("system.git.server.single")
    # the lab's own wiring (repository lab, its per-machine admin key) set aside: the
    # tests name what they add
    data["parameters"]["_param"].update({"git_server_repository": "deployment", **params})
    data["parameters"].setdefault("git", {}).setdefault("server", {})["admin_keys_secret"] = ""
    node.write_text(yaml.safe_dump(data))
    add_secret(root, HOOK_SECRET, password)
    return root


def add_secret(root: Path, name: str, value: str) -> None:
    """``name`` encrypted to the lab's key in the copy's secrets file (what `stacksalt
    secrets generate` adds once a cluster class references it)."""
    path = root / "pillar" / "secrets" / "lab.sls"
    data = yaml.safe_load(path.read_text().removeprefix(secrets.HEADER))
    gpg = gnupg.GPG(gnupghome=str(secrets.keyring_dir("lab")))
    enc = gpg.encrypt(value, secrets.ensure_key("lab"), always_trust=True, armor=True)
    assert enc.ok, enc.status
    data["secrets"][name] = str(enc)
    path.write_text(secrets.HEADER + yaml.safe_dump(data, default_style="|"))
    path.chmod(0o600)


def cluster_params(buildbot_url: str) -> dict[str, Any]:
    return {"git_server_admin_keys": [ADMIN_KEY], "git_server_host": "cfg01.lab.local",
            "buildbot_url": buildbot_url}


def render_template(root: Path, template: str, context: dict[str, Any], dest: Path) -> str:
    """The formula's template rendered by Salt (cp.get_template, the renderer file.managed
    uses) with ``context``."""
    args = [f"{k}={v}" for k, v in context.items()]
    saltrender.salt_call(NODE, "lab", "cp.get_template", f"salt://git/files/{template}",
                         str(dest), *args, root=root)
    return dest.read_text()


def git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Admin", "GIT_AUTHOR_EMAIL": "admin@example",
           "GIT_COMMITTER_NAME": "Admin", "GIT_COMMITTER_EMAIL": "admin@example",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=check)


def bare_with_hook(tmp: Path, hook: str) -> tuple[Path, Path]:
    """A bare repository (as git.present makes it) with ``hook`` as post-receive, and a
    clone of it with git identity set: (bare, clone)."""
    bare = tmp / "deployment.git"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp)
    hook_path = bare / "hooks" / "post-receive"
    hook_path.write_text(hook)
    hook_path.chmod(0o755)
    clone = tmp / "clone"
    git("clone", "-q", str(bare), str(clone), cwd=tmp)
    git("symbolic-ref", "HEAD", "refs/heads/main", cwd=clone)
    return bare, clone


def commit_and_push(clone: Path, message: str, branch: str = "main"
                    ) -> tuple[str, subprocess.CompletedProcess]:
    """One commit on ``branch``, pushed: (its revision, the push's result)."""
    (clone / "change.txt").write_text(message + "\n")
    git("add", "change.txt", cwd=clone)
    git("commit", "-q", "-m", message, cwd=clone)
    rev = git("rev-parse", "HEAD", cwd=clone).stdout.strip()
    return rev, git("push", "origin", f"HEAD:refs/heads/{branch}", cwd=clone, check=False)
