"""Make sure a Docker engine answers, installing and starting one if needed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import docker
from docker.errors import DockerException
from rich.console import Console

from stacksalt.errors import StacksaltError

DOCKERD_LOG = "/var/log/stacksalt-dockerd.log"
START_TIMEOUT = 60.0


class EngineError(StacksaltError):
    """The Docker engine could not be installed, started or reached."""


def _client_if_up() -> docker.DockerClient | None:
    """Return a client whose ping answers, or None."""
    try:
        client = docker.from_env()
        client.ping()
        return client
    except DockerException:
        return None


def _run_shown(console: Console, argv: list[str], env: dict[str, str] | None = None) -> None:
    """Run a command, echoing it and its output lines to the console."""
    console.print(f"[dim]$ {' '.join(argv)}[/dim]")
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        console.print(f"  [dim]{line.rstrip()}[/dim]", highlight=False, markup=False)
    if proc.wait() != 0:
        raise EngineError(
            f"{' '.join(argv)} failed with exit code {proc.returncode}; "
            "install docker.io by hand (apt-get install docker.io) and retry"
        )


def install_docker(console: Console) -> None:
    """Install Debian's docker.io package with apt."""
    if os.geteuid() != 0:
        raise EngineError("dockerd is not installed and we are not root: install docker.io")
    console.print("[bold]docker[/bold]: dockerd not found, installing docker.io with apt")
    _run_shown(console, ["apt-get", "update"])
    _run_shown(
        console,
        ["apt-get", "install", "-y", "docker.io"],
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )


def start_dockerd(console: Console) -> None:
    """Start dockerd detached in its own session, logging to DOCKERD_LOG."""
    console.print(f"[bold]docker[/bold]: starting dockerd (log: {DOCKERD_LOG})")
    log = open(DOCKERD_LOG, "ab")  # noqa: SIM115 - handed over to the daemon
    try:
        subprocess.Popen(
            ["dockerd"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        log.close()


def ensure_engine(console: Console) -> docker.DockerClient:
    """Return a client for a Docker engine that answers ping.

    Reuses a running engine; otherwise installs docker.io (if dockerd is not on
    PATH), starts dockerd detached and waits up to START_TIMEOUT seconds.
    """
    client = _client_if_up()
    if client is not None:
        return client
    if shutil.which("dockerd") is None:
        install_docker(console)
        client = _client_if_up()  # the package may have started the service
        if client is not None:
            return client
    start_dockerd(console)
    started = time.monotonic()
    while time.monotonic() - started < START_TIMEOUT:
        client = _client_if_up()
        if client is not None:
            console.print(
                f"[bold]docker[/bold]: engine up after {time.monotonic() - started:.1f}s"
            )
            return client
        time.sleep(1)
    raise EngineError(
        f"dockerd did not answer within {START_TIMEOUT:.0f}s; read {DOCKERD_LOG} for the "
        "reason, fix it (or start dockerd yourself) and run again"
    )
