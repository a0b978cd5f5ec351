"""The deployment's image registry on cfg01 (docker:registry): Debian's docker-registry over
TLS from the Kubernetes CA, htpasswd authentication, trusted by the nodes' containerd and by
the build host's dockerd (`lab up` wrote that trust), and a real push from the host."""

from __future__ import annotations

import io
import json

import pytest

from stacksalt import paths
from stacksalt.deployment import Deployment
from stacksalt.lab import registry_trust

pytestmark = pytest.mark.lab

REGISTRY_MINION = "cfg01.lab.local"
NODE = "mst01.lab.local"
PKI = "/etc/docker/registry/pki"
HTPASSWD = "/etc/docker/registry/htpasswd"
# the cluster CA as every Kubernetes node has it (kubernetes.common.pki)
NODE_CA = "/etc/kubernetes/pki/ca.crt"
PROBE_REPO = "lab/registry-probe"


@pytest.fixture(scope="module")
def reg(lab):
    found = registry_trust.registry(lab.plan.model)
    assert found is not None, "the lab's model has no docker:registry"
    return found


@pytest.fixture(scope="module")
def account(lab, lab_secrets):
    """The model's registry account: (user, decrypted password)."""
    model = Deployment.load(lab.plan.deployment).parameters(REGISTRY_MINION)
    reg = model["docker"]["registry"]
    return reg["user"], lab_secrets[reg["password_secret"]].strip()


MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json, "
                  "application/vnd.oci.image.manifest.v1+json")


def _curl(lab, node: str, url: str, user: str | None = None, password: str | None = None,
          cacert: str = NODE_CA, accept: str | None = None) -> tuple[int, str]:
    """(HTTP status, body) of GET url from a lab node; the credentials reach curl on its
    stdin (`-K -`), never on a command line."""
    script = f'curl -sS --cacert {cacert} -o /tmp/registry-probe-body -w "%{{http_code}}" '
    if accept:
        script += f"-H 'Accept: {accept}' "
    env = {}
    if user is not None:
        script = 'printf \'user = "%s:%s"\\n\' "$RU" "$RP" | ' + script + "-K - "
        env = {"RU": user, "RP": password}
    script += f"{url}; echo; cat /tmp/registry-probe-body; rm -f /tmp/registry-probe-body"
    res = lab.container(node).exec_run(["sh", "-c", script], environment=env)
    out = res.output.decode(errors="replace")
    assert res.exit_code == 0, f"curl on {node} failed: {out}"
    status, _, body = out.partition("\n")
    return int(status), body


def test_registry_service_runs_on_cfg01(lab, reg):
    host = lab.host(REGISTRY_MINION)
    assert reg.node == REGISTRY_MINION
    svc = host.service("docker-registry")
    assert svc.is_running and svc.is_enabled
    assert host.socket(f"tcp://0.0.0.0:{reg.port}").is_listening
    conf = host.file("/etc/docker/registry/config.yml").content_string
    assert f"certificate: {PKI}/registry.crt" in conf
    assert f"path: {HTPASSWD}" in conf


def test_certificate_chains_to_the_kubernetes_ca_with_the_registry_names(lab, reg):
    host = lab.host(REGISTRY_MINION)
    crt, key = f"{PKI}/registry.crt", f"{PKI}/registry.key"
    # the CA minion's own kubernetes CA certificate, not the copy next to the certificate
    host.run_expect([0], f"openssl verify -CAfile /etc/pki/ca/kubernetes/ca.crt {crt}")
    sans = host.check_output(f"openssl x509 -in {crt} -noout -ext subjectAltName")
    names = {s.strip() for s in sans.splitlines()[1].split(",")}
    assert names == {f"DNS:{reg.hostname}", f"DNS:{reg.hostname.split('.')[0]}",
                     f"IP Address:{reg.host_address}"}
    text = host.check_output(f"openssl x509 -in {crt} -noout -text")
    assert "TLS Web Server Authentication" in text and "CA:FALSE" in text
    k = host.file(key)
    assert k.mode == 0o600 and k.user == "docker-registry"
    assert (host.check_output(f"openssl x509 -in {crt} -noout -pubkey")
            == host.check_output(f"openssl pkey -in {key} -pubout"))


def test_htpasswd_file_holds_the_bcrypt_hash_only(lab, account):
    user, password = account
    f = lab.host(REGISTRY_MINION).file(HTPASSWD)
    assert (f.mode, f.user, f.group) == (0o640, "root", "docker-registry")
    lines = f.content_string.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{user}:$2y$")
    assert password not in f.content_string


def test_authentication_from_a_node_trusting_the_cluster_ca(lab, reg, account):
    user, password = account
    url = f"https://{reg.name}/v2/"
    assert _curl(lab, NODE, url)[0] == 401
    assert _curl(lab, NODE, url, user, password + "x")[0] == 401
    assert _curl(lab, NODE, url, "someone-else", password)[0] == 401
    assert _curl(lab, NODE, url, user, password)[0] == 200


def test_plain_http_and_untrusted_clients_get_nothing(lab, reg):
    # the registry speaks TLS only, and a client without the CA refuses its certificate
    res = lab.container(NODE).exec_run(
        ["sh", "-c", f"curl -sS -o /dev/null -w '%{{http_code}}' http://{reg.name}/v2/"])
    assert res.output.decode().strip().endswith("400")  # "client sent HTTP to HTTPS"
    res = lab.container(NODE).exec_run(
        ["curl", "-sS", "--cacert", "/etc/etcd/pki/ca.crt", f"https://{reg.name}/v2/"])
    assert res.exit_code == 60, res.output.decode(errors="replace")


def test_containerd_on_the_nodes_trusts_the_registry(lab, reg, account):
    """containerd's host configuration names the registry and its CA file; that very file
    verifies the live registry (there is no kubelet here to pull with)."""
    user, password = account
    certs = f"/etc/containerd/certs.d/{reg.name}"
    for minion in ("mst01.lab.local", "ctl01.lab.local", "cmp01.lab.local"):
        host = lab.host(minion)
        hosts_toml = host.file(f"{certs}/hosts.toml").content_string
        assert f'server = "https://{reg.name}"' in hosts_toml
        assert f'[host."https://{reg.name}"]' in hosts_toml
        assert f'ca = "{certs}/ca.crt"' in hosts_toml
        assert 'config_path = "/etc/containerd/certs.d"' in host.file(
            "/etc/containerd/config.toml").content_string
        status, _ = _curl(lab, minion, f"https://{reg.name}/v2/", user, password,
                          cacert=f"{certs}/ca.crt")
        assert status == 200, minion


def test_push_from_the_build_host(lab, reg, account):
    """The host's dockerd (trusting the registry through what `lab up` wrote) pushes an
    image built from the base image; the registry's API then lists it."""
    user, password = account
    ca = registry_trust.CERTS_DIR / reg.name / "ca.crt"
    assert ca.is_file(), f"{ca} missing: `stacksalt lab up` writes it"
    assert f"{reg.host_address} {reg.hostname}" in registry_trust.HOSTS_FILE.read_text()
    client = lab.client
    repo = f"{reg.name}/{PROBE_REPO}"
    dockerfile = b"FROM stacksalt/base:bookworm\nLABEL io.stacksalt.test=registry-probe\n"
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile), tag=f"{repo}:1", rm=True,
                                   pull=False)
    try:
        auth = {"username": user, "password": password}
        client.login(username=user, password=password, registry=reg.name, reauth=True)
        errors = [line for line in client.images.push(repo, tag="1", auth_config=auth,
                                                      stream=True, decode=True)
                  if "error" in line]
        assert not errors, errors
    finally:
        client.images.remove(f"{repo}:1")

    status, body = _curl(lab, NODE, f"https://{reg.name}/v2/_catalog", user, password)
    assert status == 200 and PROBE_REPO in json.loads(body)["repositories"]
    status, body = _curl(lab, NODE, f"https://{reg.name}/v2/{PROBE_REPO}/tags/list", user,
                         password)
    assert status == 200 and json.loads(body)["tags"] == ["1"]
    # and what was pushed is the image that was built
    status, body = _curl(lab, NODE, f"https://{reg.name}/v2/{PROBE_REPO}/manifests/1",
                         user, password, accept=MANIFEST_TYPES)
    assert status == 200
    manifest = json.loads(body)
    assert manifest["config"]["digest"] == image.id


def test_host_trust_is_removed_and_written_again(lab, reg):
    """What `lab down` removes (the /etc/hosts block and certs.d directory, nothing else)
    and `lab up` writes again, identical."""
    from rich.console import Console

    ca = registry_trust.CERTS_DIR / reg.name / "ca.crt"
    before_hosts = registry_trust.HOSTS_FILE.read_text()
    before_ca = ca.read_text()
    others = before_hosts.split(registry_trust._begin(lab.plan.deployment))[0]
    try:
        registry_trust.remove(lab.plan.deployment, Console(quiet=True))
        assert not ca.parent.exists()
        after = registry_trust.HOSTS_FILE.read_text()
        assert reg.hostname not in after and after.startswith(others)
        # nothing to remove a second time
        registry_trust.remove(lab.plan.deployment, Console(quiet=True))
        assert registry_trust.HOSTS_FILE.read_text() == after
    finally:
        assert registry_trust.install(lab.client, lab.plan, Console(quiet=True))
    # the same lines (the block is appended at the end again)
    assert sorted(registry_trust.HOSTS_FILE.read_text().splitlines()) == sorted(
        before_hosts.splitlines())
    assert ca.read_text() == before_ca
    # installing twice keeps one block
    assert registry_trust.install(lab.client, lab.plan, Console(quiet=True))
    assert registry_trust.HOSTS_FILE.read_text().count(f"{reg.host_address} {reg.hostname}\n") == 1


def test_images_build_push_lands_in_the_lab_registry(lab, reg, account):
    """`stacksalt images build lab memcached --push`, the operator's command, pushes the
    model-named image to cfg01's registry; a node sees exactly the image that was built."""
    import subprocess
    import sys
    from pathlib import Path

    user, password = account
    model = Deployment.load(lab.plan.deployment).parameters("mst01.lab.local")["docker"]["build"]
    version = model["image"]["memcached"]["version"]
    name = f"{model['registry']}/{model['namespace']}/memcached:{version}"
    assert model["registry"] == reg.name
    cli = Path(sys.executable).with_name("stacksalt")
    # run where an operator runs it: in the deployment repository
    proc = subprocess.run([str(cli), "images", "build", lab.plan.deployment, "memcached",
                           "--push"], capture_output=True, text=True, timeout=1200,
                          cwd=paths.deployment_root(lab.plan.deployment))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert password not in out
    built = lab.client.images.get(name)
    repo = f"{model['namespace']}/memcached"
    status, body = _curl(lab, NODE, f"https://{reg.name}/v2/{repo}/tags/list", user, password)
    assert status == 200 and version in json.loads(body)["tags"], body
    status, body = _curl(lab, NODE, f"https://{reg.name}/v2/{repo}/manifests/{version}",
                         user, password, accept=MANIFEST_TYPES)
    assert status == 200 and json.loads(body)["config"]["digest"] == built.id
