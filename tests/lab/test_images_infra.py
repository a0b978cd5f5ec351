"""The infrastructure images (mariadb, rabbitmq, memcached) built by `stacksalt images
build lab`, run the way their Kubernetes Deployments run them: the model's `secret_env`
filled with the lab's decrypted secrets, reached under their Service names on a
throwaway network. The OpenStack services' live test relies on exactly this."""

from __future__ import annotations

import time

import docker
import pytest
from rich.console import Console

from stacksalt.deployment import Deployment
from stacksalt.images import definitions
from stacksalt.images.build import build_images

pytestmark = pytest.mark.lab

PREFIX = "images-test-infra"
NETWORK = f"{PREFIX}-net"
NODE = "mst01.lab.local"  # a node whose model defines the images (docker:build)


@pytest.fixture(scope="module")
def env():
    client = docker.from_env()
    build_images(client, Console(), "lab", ["mariadb", "rabbitmq", "memcached"])
    defs = definitions.load("lab", only=["mariadb", "rabbitmq", "memcached"])
    for c in client.containers.list(all=True, filters={"name": PREFIX}):
        c.remove(force=True)
    for n in client.networks.list(names=[NETWORK]):
        n.remove()
    net = client.networks.create(NETWORK)
    yield client, defs, net
    for c in client.containers.list(all=True, filters={"name": PREFIX}):
        c.remove(force=True)
    net.remove()


def service(name: str) -> dict:
    return Deployment.load("lab").parameters(NODE)["kubernetes"]["control"]["service"][name]


def secret_env(name: str, lab_secrets: dict[str, str]) -> dict[str, str]:
    return {var: lab_secrets[secret]
            for var, secret in (service(name).get("secret_env") or {}).items()}


def start(env, name: str, environment: dict[str, str]):
    client, defs, net = env
    c = client.containers.create(defs.images[name].tag, name=f"{PREFIX}-{name}",
                                 environment=environment)
    net.connect(c, aliases=[name])
    c.start()
    return c


def wait_for(c, text: str, seconds: int = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        c.reload()
        logs = c.logs().decode(errors="replace")
        if text in logs:
            return
        assert c.status == "running", f"{c.name} exited:\n{logs[-3000:]}"
        time.sleep(1)
    raise AssertionError(f"{c.name}: no '{text}' after {seconds}s:\n{logs[-3000:]}")


def pid1(c) -> tuple[str, str]:
    """(command line, user name) of PID 1 in the container."""
    cmd = c.exec_run(["cat", "/proc/1/cmdline"]).output.replace(b"\0", b" ").decode()
    uid = c.exec_run(["awk", "/^Uid:/ {print $2}", "/proc/1/status"]).output.decode().strip()
    user = c.exec_run(["getent", "passwd", uid]).output.decode().split(":")[0]
    return cmd, user


def client_run(env, image: str, command: list[str], entrypoint: str):
    """A one-shot client container on the network: (exit code, output)."""
    client, defs, net = env
    c = client.containers.create(defs.images[image].tag, command, entrypoint=entrypoint,
                                 name=f"{PREFIX}-client")
    try:
        net.connect(c)
        c.start()
        code = c.wait(timeout=60)["StatusCode"]
        return code, c.logs().decode(errors="replace")
    finally:
        c.remove(force=True)


def test_mariadb_refuses_to_start_without_its_secrets(env, lab_secrets):
    client, defs, _ = env
    c = client.containers.create(defs.images["mariadb"].tag, name=f"{PREFIX}-nosecrets")
    try:
        c.start()
        assert c.wait(timeout=60)["StatusCode"] == 64
        out = c.logs().decode()
    finally:
        c.remove(force=True)
    for var in secret_env("mariadb", lab_secrets):
        assert var in out
    assert "mariadbd" not in out


def test_mariadb_accepts_every_service_user(env, lab_secrets):
    values = secret_env("mariadb", lab_secrets)
    c = start(env, "mariadb", values)
    wait_for(c, "ready for connections")
    cmd, user = pid1(c)
    assert cmd.startswith("mariadbd ") and user == "mysql"
    dbs = Deployment.load("lab").parameters(NODE)["mariadb"]["server"]["database"]
    for db, spec in sorted(dbs.items()):
        password = values[spec["password_env"]]
        code, out = client_run(env, "mariadb", [
            "-h", "mariadb", "-u", spec["user"], f"-p{password}", "-N", "-e",
            "SELECT DATABASE()", db], entrypoint="mariadb")
        assert code == 0 and out.strip() == db, f"{spec['user']}@{db}: {out}"
    code, out = client_run(env, "mariadb", [
        "-h", "mariadb", "-u", "keystone", "-pnot-the-password", "-e", "SELECT 1"],
        entrypoint="mariadb")
    assert code != 0 and "Access denied" in out
    code, out = client_run(env, "mariadb", [
        "-h", "mariadb", "-u", "root", f"-p{values['MARIADB_ROOT_PASSWORD']}", "-N", "-e",
        "SELECT COUNT(*) FROM mysql.user WHERE user IN "
        "('keystone','glance','placement','nova','neutron')"],
        entrypoint="mariadb")
    assert code == 0 and out.strip() == "5", out


def test_rabbitmq_accepts_the_openstack_user(env, lab_secrets):
    values = secret_env("rabbitmq", lab_secrets)
    c = start(env, "rabbitmq", values)
    wait_for(c, "Server startup complete")
    cmd, user = pid1(c)
    assert "beam.smp" in cmd and user == "rabbitmq"
    user_name = Deployment.load("lab").parameters(NODE)["rabbitmq"]["server"]["user"]
    # `--`: a generated password may start with "-" (rabbitmqctl took one for an option)
    ok = c.exec_run(["rabbitmqctl", "authenticate_user", "--", user_name,
                     values["RABBITMQ_OPENSTACK_PASSWORD"]], user="rabbitmq")
    assert ok.exit_code == 0, ok.output.decode()
    bad = c.exec_run(["rabbitmqctl", "authenticate_user", "--", user_name, "wrong-password"],
                     user="rabbitmq")
    assert bad.exit_code != 0
    # AMQP answers on the Service name: protocol header in, Connection.Start frame out
    code, out = client_run(env, "rabbitmq", ["-c", (
        "exec 3<>/dev/tcp/rabbitmq/5672; printf 'AMQP\\0\\0\\11\\1' >&3; "
        "head -c 7 <&3 | od -An -tx1")], entrypoint="bash")
    assert code == 0 and out.split()[:3] == ["01", "00", "00"], out
    # the secret value is in the container's rendered config, never in its log
    assert values["RABBITMQ_OPENSTACK_PASSWORD"] not in c.logs().decode(errors="replace")


def test_memcached_listens_on_11211(env):
    c = start(env, "memcached", {})
    time.sleep(1)
    cmd, user = pid1(c)
    assert cmd.startswith("memcached ") and user == "memcache"
    code, out = client_run(env, "memcached", ["-c", (
        "exec 3<>/dev/tcp/memcached/11211;"
        " printf 'set k 0 0 5\\r\\nhello\\r\\nget k\\r\\nquit\\r\\n' >&3; cat <&3")],
        entrypoint="bash")
    assert code == 0 and "STORED" in out and "hello" in out, out
    limit = Deployment.load("lab").parameters(NODE)["memcached"]["server"]["memory_mb"]
    assert f"--memory-limit={limit}" in cmd
