"""The entry point of `stacksalt ci run`: resolves the revisions and the master's salt-api
from the deployment repository, then runs the pipeline (run.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from stacksalt import paths
from stacksalt.deployment import Deployment
from stacksalt.pipeline import run
from stacksalt.pipeline.saltapi import SaltAPI

PASSWORD_ENV = "STACKSALT_CI_PASSWORD_FILE"


def _rev(root: Path, rev: str) -> str:
    if rev == run.ZERO:
        return rev
    commit = run.commit_of(root, rev)
    if commit is None:
        raise run.PipelineError(f"{rev!r} is not a commit of {root}: fetch it first")
    return commit


def api_settings(dep: Deployment) -> dict[str, Any]:
    """salt:api of the deployment's salt master node: its address, port and CI user."""
    for node in dep.nodes_with("salt:master:enabled"):
        api = dep.get(node, "salt:api", {})
        if api.get("enabled"):
            users = sorted(api.get("users") or {})
            if len(users) != 1:
                where = dep.locate(node, "salt:api:users") or dep.file_of(node)
                raise run.PipelineError(
                    f"{where}: parameters:salt:api:users: must name exactly the pipeline's "
                    f"user, found {users} (node {node})")
            # the address: a SAN of salt-api's certificate, and reachable from the build host
            address = api.get("address") or dep.get(node, "linux:network:address")
            port = dep.get(node, "salt:api:bind:port", needed_by="the pipeline's salt-api URL")
            return {"url": f"https://{address}:{port}", "user": users[0]}
    raise run.PipelineError(f"deployment {dep.name}: no salt master node has salt:api:enabled "
                            "(include system.salt.master.api on cfg01): the pipeline reaches "
                            "the master only through salt-api")


def _settings(deployment: str, master_url: str | None, api_user: str | None) -> dict[str, Any]:
    """salt-api's address and user: given, or from the model (which must then render)."""
    if master_url and api_user:
        return {"url": master_url, "user": api_user}
    try:
        settings = api_settings(Deployment.load(deployment))
    except Exception as exc:  # reclass raises its own types: the model check will say why
        lines = str(exc).strip().splitlines()
        raise run.PipelineError(
            f"the model does not render ({lines[-1].strip() if lines else type(exc).__name__}):"
            " nothing built, the master untouched, and no report kept on it; run `stacksalt "
            "model check`; pass --master-url and --api-user so a broken push is reported "
            "too") from None
    return {**settings, "url": master_url or settings["url"]}


def main(deployment: str, from_rev: str, to_rev: str, report: Path | None,
         ca: Path | None, master_url: str | None, api_user: str | None = None) -> int:
    root = paths.deployment_root(deployment)
    new = _rev(root, to_rev)
    try:
        old = _rev(root, from_rev)
    except run.PipelineError:
        # a force-push over history this clone never had: compare with what the master
        # serves (the run asks it), not with the branch's replaced tip
        print(f"--from {from_rev[:12]} is not in this clone's history (a force-push?): "
              "comparing with the revision the master serves")
        old = run.ZERO
    head = _rev(root, "HEAD")
    if head != new:
        raise run.PipelineError(f"{root} is at {head[:12]}, not at --to {new[:12]}: check the "
                                "pushed revision out first (with its submodule)")
    settings = _settings(deployment, master_url, api_user)
    password = run.read_password(PASSWORD_ENV)
    if password is None:
        raise run.PipelineError(f"${PASSWORD_ENV} is not set: the file holding the salt-api "
                                f"password of {settings['user']!r}")
    master = SaltAPI(settings["url"], settings["user"], password, ca)
    result = run.run(deployment, old, new, master, Console(), report, ca)
    return 0 if result.ok else 1
