"""The lab's release pipeline: `lab up` ends here, `lab down` stops it.

The git server on cfg01 (formulas/git, from the lab model) takes pushes over SSH; its
post-receive hook queues a build in Buildbot, which runs on this host (the build host,
beside the Docker engine) at the lab network's gateway. Its one builder checks the pushed
revision out, fetches the stacksalt it pins and runs ``stacksalt ci run``, which talks to
the master through salt-api. What this module does on the host, all under the lab
example's per-machine state (``.stacksalt/pipeline/``, mode 0700):

- ``known_hosts``: cfg01's SSH host key, read from its container (the channel `lab up`
  already trusts), so neither the admin's pushes nor Buildbot's clones trust on first use;
- the admin key is the private half of the secret ``git:server:admin_keys_secret`` names
  (``stacksalt secrets generate`` made it); ``ssh.sh`` is the ``GIT_SSH_COMMAND`` that uses
  it with that ``known_hosts``;
- the stacksalt checkout's HEAD is pushed to the git server's product mirror
  (``stacksalt.git``): the master's runner exports the formulas a revision pins from it;
- the password files the builder's commands read (salt-api, the registry, the change
  hook), 0600, from the decrypted lab secrets;
- Buildbot's master and worker (pipeline.buildbot), started again with this config.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console

from stacksalt import paths, secrets
from stacksalt.deployment import Deployment
from stacksalt.errors import StacksaltError
from stacksalt.lab import containers, registry_trust
from stacksalt.lab.plan import LabPlan
from stacksalt.pipeline import buildbot
from stacksalt.pipeline.cli import PASSWORD_ENV, api_settings
from stacksalt.pipeline.run import REGISTRY_PASSWORD_ENV
from stacksalt.secrets import store

HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"
# which Buildbot serves a lab now (its basedir): a lab remade from another checkout must
# stop the old checkout's Buildbot, which holds the web port
RUN_DIR = Path("/run/stacksalt")


def _marker(deployment: str) -> Path:
    return RUN_DIR / f"buildbot-{deployment}.basedir"


class LabPipelineError(StacksaltError):
    pass


@dataclass(frozen=True)
class LabPipeline:
    """Where the lab's pipeline lives on this host and how it reaches cfg01."""

    deployment: str
    state: Path
    git_host: str
    repository: str
    key_secret: str
    change_hook_user: str
    change_hook_secret: str
    buildbot_url: str
    salt_api_secret: str
    registry_secret: str | None
    registry_ca: Path  # where the host trusts the registry's CA (registry_trust)
    api: dict  # salt-api's url and user (pipeline.cli.api_settings)

    # the URL the hook sends and Buildbot clones (git:server:repositories:hook:repository)
    remote: str
    product_remote: str

    @property
    def key_file(self) -> Path:
        return secrets.ssh_key_file(self.deployment, self.key_secret)

    @property
    def known_hosts(self) -> Path:
        return self.state / "known_hosts"

    @property
    def ssh_command(self) -> str:
        return (f"ssh -i {shlex.quote(str(self.key_file))} -o IdentitiesOnly=yes "
                f"-o UserKnownHostsFile={shlex.quote(str(self.known_hosts))} "
                "-o StrictHostKeyChecking=yes -o BatchMode=yes")

    def password_file(self, name: str) -> Path:
        return self.state / f"{name}.password"

    def config(self, lab: LabPlan) -> buildbot.PipelineConfig:
        web = urlsplit(self.buildbot_url)
        env = {
            "GIT_SSH_COMMAND": self.ssh_command,
            # the pinned stacksalt is a submodule whose URL is this host's checkout
            "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "protocol.file.allow",
            "GIT_CONFIG_VALUE_0": "always",
            paths.STATE_DIR_ENV: str(paths.state_dir(self.deployment)),
            PASSWORD_ENV: str(self.password_file(self.salt_api_secret)),
        }
        if self.registry_secret:
            env[REGISTRY_PASSWORD_ENV] = str(self.password_file(self.registry_secret))
        ca = self.registry_ca
        stacksalt = str(Path(buildbot._bin("stacksalt")))
        return buildbot.parse_config({
            "basedir": str(self.state / "buildbot"),
            "web_port": web.port or 80,
            "web_interface": web.hostname,
            "buildbot_url": self.buildbot_url,
            "title": f"stacksalt lab {self.deployment}",
            "change_hook_user": self.change_hook_user,
            "change_hook_password_file": str(self.password_file(self.change_hook_secret)),
            "builders": [{
                "name": self.repository,
                "repository": self.remote,
                "branch": "main",
                "env": {k: v.replace("%", "%%") for k, v in env.items()},
                "commands": [
                    ["git", "submodule", "update", "--init"],
                    # salt-api named here: a pushed model that does not render still
                    # gets its report kept on the master
                    [stacksalt, "ci", "run", "--from", "%(prop:old_revision)s",
                     "--to", "%(prop:got_revision)s", "--ca-file", str(ca),
                     "--master-url", self.api["url"], "--api-user", self.api["user"],
                     "--report", "report.json"],
                ],
            }],
        }, f"the lab pipeline of {self.deployment}")


def of(dep: Deployment, lab: LabPlan) -> LabPipeline | None:
    """The lab's pipeline from the model of its git server node (None: the lab has none)."""
    for node in dep.nodes_with("git:server:enabled"):
        server = dep.get(node, "git:server")
        hooked = [r for r in server.get("repositories") or [] if r.get("hook")]
        if len(hooked) != 1 or not server.get("admin_keys_secret"):
            where = dep.locate(node, "git:server") or dep.file_of(node)
            raise LabPipelineError(
                f"{where}: parameters:git:server: the lab's pipeline needs exactly one "
                "repository with a hook and admin_keys_secret (the lab's admin key, made "
                f"per machine) (node {node})")
        hook = hooked[0]["hook"]
        api = api_settings(dep)  # exactly one user, or a one-line error
        registry = registry_trust.registry(dep)
        need = "the lab's pipeline"
        if registry is None:
            raise LabPipelineError(f"deployment {dep.name}: no node has docker:registry "
                                   f"enabled, which {need} pushes its images to")
        return LabPipeline(
            deployment=dep.name,
            state=paths.state_dir(dep.name) / "pipeline",
            git_host=dep.get(node, "linux:network:address", needed_by=need),
            repository=hooked[0]["name"],
            remote=hook["repository"],
            product_remote=hook["repository"].rsplit("/", 1)[0] + "/stacksalt.git",
            key_secret=server["admin_keys_secret"],
            change_hook_user=hook["auth"]["user"],
            change_hook_secret=hook["auth"]["password_secret"],
            buildbot_url=hook["buildbot_url"],
            salt_api_secret=dep.get(node, f"salt:api:users:{api['user']}:password_secret",
                                    needed_by=need),
            registry_secret=registry.password_secret,
            registry_ca=registry_trust.CERTS_DIR / registry.name / "ca.crt",
            api=api,
        )
    return None


def _git(*args: str, cwd: Path | None = None, env: dict | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise LabPipelineError(f"git {' '.join(args)} failed: "
                               f"{(proc.stderr or proc.stdout).strip()[-800:]}")
    return proc.stdout.strip()


def install(client, lab: LabPlan, console: Console) -> LabPipeline | None:
    """Everything above, idempotent; returns the pipeline (None if the model has none)."""
    pipe = of(lab.model or Deployment.load(lab.deployment), lab)
    if pipe is None:
        return None
    pipe.state.mkdir(parents=True, exist_ok=True)
    pipe.state.chmod(0o700)
    master = client.containers.get(lab.master.container_name(lab.deployment))
    host_key = containers.exec_run(master, ["cat", HOST_KEY]).split()
    store.write_atomic(pipe.known_hosts, f"{pipe.git_host} {host_key[0]} {host_key[1]}\n",
                       0o600)
    if not pipe.key_file.is_file():
        raise LabPipelineError(f"{pipe.key_file}: the lab's admin ssh key is missing; run "
                               "`stacksalt secrets generate` (or `lab up`) again")
    values = secrets.decrypt_all(lab.deployment)
    for name in filter(None, (pipe.salt_api_secret, pipe.registry_secret,
                              pipe.change_hook_secret)):
        store.write_atomic(pipe.password_file(name), values[name].strip() + "\n", 0o600)
    head = push_product(pipe, lab)
    cfg = pipe.config(lab)
    remove(lab.deployment, console)  # the running one may be another checkout's, or stale
    buildbot.start(cfg)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    _marker(lab.deployment).write_text(f"{cfg.basedir}\n")
    console.print(f"release pipeline: Buildbot {cfg.url}; stacksalt {head[:12]} pushed to "
                  f"{pipe.product_remote}; push a deployment repository (`stacksalt init "
                  f"{lab.deployment} DIR --from {lab.deployment}`) to {pipe.remote} with "
                  f"GIT_SSH_COMMAND=\"{pipe.ssh_command}\"")
    return pipe


def push_product(pipe: LabPipeline, lab: LabPlan) -> str:
    """This checkout's HEAD to the git server's product mirror (what a deployment
    repository made here pins); returns the commit."""
    product = paths.product_root(lab.deployment)
    _git("push", "--quiet", "--force", pipe.product_remote, "HEAD:refs/heads/main",
         cwd=product, env={"GIT_SSH_COMMAND": pipe.ssh_command})
    return _git("rev-parse", "HEAD", cwd=product)


def remove(deployment: str, console: Console) -> None:
    """Stop the lab's Buildbot: the one this checkout runs, and the one the marker names
    (another checkout's); their history stays in their basedirs."""
    marker = _marker(deployment)
    dirs = {paths.state_dir(deployment) / "pipeline" / "buildbot"}
    if marker.is_file():
        dirs.add(Path(marker.read_text().strip()))
    for basedir in sorted(dirs):
        config = basedir / "master" / buildbot.CONFIG_FILE
        if not config.is_file():
            continue
        cfg = buildbot.load_config(config)
        if any(buildbot.running(cfg).values()):
            buildbot.stop(cfg)
            console.print(f"stopped Buildbot ({cfg.url}, {basedir})")
    marker.unlink(missing_ok=True)
