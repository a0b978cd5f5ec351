"""The shared entrypoint (images/entrypoint/stacksalt-entrypoint) in a small throwaway
image FROM stacksalt/base:bookworm: substitution, missing variables, secrets from files,
no value in any output, the service as PID 1 under its own user, signals reaching it."""

from __future__ import annotations

import io
import tarfile
import time

import docker
import pytest
from rich.console import Console

from stacksalt.images.context import Context
from stacksalt.images.dockerbuild import build
from stacksalt.lab.images import BASE_IMAGE, ensure_base_image
from stacksalt.paths import images_dir

pytestmark = pytest.mark.lab

TAG = "stacksalt-test/entrypoint:test"
PREFIX = "images-test-ep"
TEMPLATE = (
    "plain=${PLAIN}\n"
    "multi=${MULTI}\n"
    "special=${SPECIAL}\n"
    "secret=${SECRET_A}\n"
    "again=${PLAIN}\n"
    "untouched=$HOME ${lower} $${NOT_A_NAME\n"
)
DOCKERFILE = f"""\
FROM {BASE_IMAGE}
RUN apt-get update && apt-get install -y gettext-base && rm -rf /var/lib/apt/lists/* \\
 && groupadd --system svc && useradd --system --gid svc --home-dir /var/lib/svc \\
      --create-home svc
COPY stacksalt-entrypoint /usr/local/bin/stacksalt-entrypoint
COPY templates/ /etc/stacksalt/templates/
COPY commands/ /etc/stacksalt/commands/
ENV STACKSALT_USER=svc
ENTRYPOINT ["/usr/local/bin/stacksalt-entrypoint"]
CMD ["show"]
"""
SHOW = """#!/bin/bash
set -e
echo "user=$(id -un) group=$(id -gn) pid=$$"
stat -c 'mode=%a owner=%U:%G' /etc/demo/app.conf
# whether the service's environment holds SECRET_A (grep -q's exit status decides;
# no status is discarded)
if env | grep -q '^SECRET_A='; then echo 'SECRET_A in env: yes'; else echo 'SECRET_A in env: no'; fi
cat /etc/demo/app.conf > /dev/null
"""
SLEEPER = """#!/bin/bash
trap 'echo "got TERM as $(id -un) pid $$"; exit 0' TERM
echo ready
while :; do sleep 0.2; done
"""
VALUES = {
    "PLAIN": "plain-value-7f3a",
    "MULTI": "line one\nline two\n  indented 'quoted' \"double\"",
    "SPECIAL": r"a&b/c\d$e${F}`g`|h*?;#%",
    "SECRET_A": "s3cret-from-env-91c2",
}


@pytest.fixture(scope="module")
def client():
    client = docker.from_env()
    ensure_base_image(client, Console())
    ctx = Context()
    ctx.add_bytes("Dockerfile", DOCKERFILE.encode())
    ctx.add_file("stacksalt-entrypoint", images_dir() / "entrypoint/stacksalt-entrypoint")
    ctx.add_bytes("templates/etc/demo/app.conf", TEMPLATE.encode())
    ctx.add_bytes("commands/show", SHOW.encode(), 0o755)
    ctx.add_bytes("commands/sleeper", SLEEPER.encode(), 0o755)
    build(client, Console(), name="entrypoint-test", tag=TAG, context=ctx.tar(), buildargs={})
    yield client
    for c in client.containers.list(all=True, filters={"name": PREFIX}):
        c.remove(force=True)


def run(client, name, command=None, env=None, volumes=None):
    """Run to completion: (exit code, stdout+stderr, the rendered file or None)."""
    c = client.containers.create(TAG, command, name=f"{PREFIX}-{name}",
                                 environment=env or {}, volumes=volumes or {})
    try:
        c.start()
        code = c.wait(timeout=60)["StatusCode"]
        out = c.logs().decode()
        try:
            bits, _ = c.get_archive("/etc/demo/app.conf")
            data = b"".join(bits)
            with tarfile.open(fileobj=io.BytesIO(data)) as t:
                rendered = t.extractfile("app.conf").read().decode()  # type: ignore[union-attr]
        except docker.errors.NotFound:
            rendered = None
        return code, out, rendered
    finally:
        c.remove(force=True)


def expected(values):
    return (f"plain={values['PLAIN']}\nmulti={values['MULTI']}\n"
            f"special={values['SPECIAL']}\nsecret={values['SECRET_A']}\n"
            f"again={values['PLAIN']}\nuntouched=$HOME ${{lower}} $${{NOT_A_NAME\n")


def test_substitutes_every_placeholder_exactly(client):
    code, out, rendered = run(client, "subst", env=VALUES)
    assert code == 0, out
    assert rendered == expected(VALUES)
    assert "user=svc group=svc" in out
    assert "mode=640 owner=root:svc" in out
    assert "SECRET_A in env: yes" in out  # given as env, the service sees it there
    for value in VALUES.values():
        assert value not in out


def test_missing_variables_named_in_one_line_exit_64(client):
    env = {"PLAIN": VALUES["PLAIN"], "SECRET_A": VALUES["SECRET_A"]}
    code, out, rendered = run(client, "missing", env=env)
    assert code == 64
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert "missing variables: MULTI SPECIAL" in lines[0]
    assert "PLAIN" not in lines[0] and "SECRET_A" not in lines[0]
    assert VALUES["PLAIN"] not in out and VALUES["SECRET_A"] not in out
    assert "user=" not in out  # the command never started
    assert rendered is None  # nothing written


def test_secret_from_file_not_in_service_env(client, tmp_path):
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "SECRET_A").write_text("s3cret-from-file-55ab\n")
    env = {k: v for k, v in VALUES.items() if k != "SECRET_A"}
    code, out, rendered = run(
        client, "file", env=env,
        volumes={str(secrets_dir): {"bind": "/run/secrets/stacksalt", "mode": "ro"}})
    assert code == 0, out
    assert rendered == expected({**VALUES, "SECRET_A": "s3cret-from-file-55ab"})
    assert "s3cret-from-file-55ab" not in out
    # the value read from the file is not handed to the service's environment
    assert "SECRET_A in env: no" in out


def test_environment_wins_over_file(client, tmp_path):
    (tmp_path / "SECRET_A").write_text("from-file-loses-1234")
    code, out, rendered = run(
        client, "precedence", env=VALUES,
        volumes={str(tmp_path): {"bind": "/run/secrets/stacksalt", "mode": "ro"}})
    assert code == 0, out
    assert f"secret={VALUES['SECRET_A']}\n" in rendered


def test_service_is_pid_1_as_its_user_and_gets_signals(client):
    c = client.containers.run(TAG, ["sleeper"], name=f"{PREFIX}-pid1", environment=VALUES,
                              detach=True)
    try:
        deadline = time.monotonic() + 30
        while b"ready" not in c.logs() and time.monotonic() < deadline:
            time.sleep(0.2)
        cmdline = c.exec_run(["cat", "/proc/1/cmdline"]).output.replace(b"\0", b" ")
        assert b"/etc/stacksalt/commands/sleeper" in cmdline
        status = c.exec_run(["grep", "^Uid:", "/proc/1/status"]).output.decode().split()
        uid = c.exec_run(["id", "-u", "svc"]).output.decode().strip()
        assert status[1] == uid  # real uid of PID 1 is the service user's
        started = time.monotonic()
        c.stop(timeout=20)
        assert time.monotonic() - started < 10, "SIGTERM did not reach the service"
        c.reload()
        assert c.attrs["State"]["ExitCode"] == 0
        assert "got TERM as svc pid 1" in c.logs().decode()
    finally:
        c.remove(force=True)


def test_argv_runs_when_first_argument_is_not_a_mode(client):
    code, out, _ = run(client, "argv", command=["id", "-un"], env=VALUES)
    assert code == 0 and out.strip() == "svc"
