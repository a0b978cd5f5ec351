"""The salt formula's api role (salt-api, rest_cherrypy over TLS, eauth pam) on a lab copy
whose salt master has it: what the states render, what Salt's own ACL code lets the CI
user run, and what the model check refuses.

The lab's classes do not have the role yet, so the tests wire it into a copy of the
checkout (the cluster-level parameters a deployment sets, on cfg01) and render and
check that copy, with its own throwaway secrets.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import salt.config
import salt.utils.minions
import yaml

from stacksalt import paths, saltrender, secrets
from stacksalt.deployment import Deployment
from stacksalt.model import check as model_check
from stacksalt.model.checks import schema
from stacksalt.validate import collect
from tests.netutil import free_port, throwaway_tls
from tests.trees import combined_inventory, copy_deployment

pytestmark = pytest.mark.fast

NODE = "cfg01.lab.local"
USER = "stacksalt-ci"
SECRET = "salt_api_ci_password"
NODE_FILE = Path("nodes/lab") / f"{NODE}.yml"
# what a deployment adds to wire the role (the example the README gives)
WIRING = {
    "classes": ["system.salt.api.single", "system.salt.minion.ca.salt_api"],
    "_param": {
        "salt_api_host": "cfg01.${_param:cluster_domain}",
        "salt_api_address": "${linux:network:host:cfg01:address}",
        "salt_api_ci_password_secret": SECRET,
    },
}
SERVICE_CLASS = Path("classes/service/salt/api/init.yml")
# where the key and certificate go (the formula's default; the model does not set it)
PKI = yaml.safe_load((paths.formulas_dir() / "salt" / "defaults.yaml").read_text())[
    "api"]["ssl"]["pki_dir"]


def wire(inventory: Path) -> None:
    """cfg01 of the copy gets salt-api and its certificate policy."""
    path = inventory / NODE_FILE
    data = yaml.safe_load(path.read_text())
    data["classes"].extend(WIRING["classes"])
    data["parameters"]["_param"].update(WIRING["_param"])
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def copy_checkout(root: Path) -> Path:
    """A copy of the lab's deployment repository, wired, with no secrets yet."""
    copy_deployment("lab", root)
    for sls in (root / "pillar" / "secrets").glob("*.sls"):
        sls.unlink()
    wire(root / "reclass")
    return root


@pytest.fixture(scope="module")
def wired(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The copy, rendered: cfg01's salt states, its compiled pillar (the CA's signing
    policies), its model parameters and the decrypted secrets."""
    root = copy_checkout(tmp_path_factory.mktemp("salt-api") / "repo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(paths, "_active", root.resolve())
        secrets.generate("lab")
        dep = Deployment.load("lab")
        states = saltrender.show_sls(NODE, "lab", ["salt"])
        pillar = saltrender.pillars("lab", [NODE])[NODE]
        values = secrets.decrypt_all("lab")
    yield {"root": root, "params": dep.parameters(NODE), "states": states,
           "pillar": pillar, "secrets": values}
    # the gpg-agent that gpg started for the copy's keyring
    subprocess.run(["gpgconf", "--homedir", str(root / ".stacksalt" / "gpgkeys"),
                    "--kill", "gpg-agent"], check=False, capture_output=True)


def call(states: dict, state_id: str) -> tuple[str, dict]:
    assert state_id in states, f"{state_id} not rendered"
    return next(collect.state_calls(states[state_id]))


def api_config(wired) -> dict[str, Any]:
    fun, args = call(wired["states"], "salt-api-config-file-managed")
    assert fun == "file.serialize"
    return args


# -- what the states render ----------------------------------------------------------------


def test_config_is_tls_on_the_model_port_with_the_model_acl(wired):
    api = wired["params"]["salt"]["api"]
    args = api_config(wired)
    assert args["mode"] == "0600" and args["user"] == "root"
    config = args["dataset"]
    assert config["rest_cherrypy"] == {
        "host": api["bind"]["address"], "port": api["bind"]["port"],
        "ssl_crt": f"{PKI}/api.crt", "ssl_key": f"{PKI}/api.key"}
    assert "disable_ssl" not in config["rest_cherrypy"]
    assert config["netapi_enable_clients"] == ["local", "runner"]
    # exactly the model's one user and its ACL, with pam
    assert config["external_auth"] == {"pam": {USER: api["users"][USER]["acl"]}}
    # a regular-file wrapper: Salt resolves the symlinks of auth.pam.python, and the venv's
    # python resolves to the system's, which cannot import salt (found in the lab)
    wrapper = "/usr/local/libexec/stacksalt-salt-pam-python"
    assert config["auth.pam.python"] == wrapper
    _, script = call(wired["states"], "salt-api-pam-python-wrapper-managed")
    assert script["name"] == wrapper and script["mode"] == "0755"
    assert 'exec /opt/salt/bin/python "$@"' in script["contents"]


def test_certificate_from_the_kubernetes_ca_under_the_nodes_own_policy(wired):
    api = wired["params"]["salt"]["api"]
    fun, cert = call(wired["states"], "salt-api-certificate-managed")
    assert fun == "x509.certificate_managed"
    assert cert["name"] == f"{PKI}/api.crt"
    assert cert["private_key"] == f"{PKI}/api.key"
    assert cert["signing_policy"] == "salt_api_cfg01"
    assert cert["ca_server"] == NODE
    assert cert["CN"] == NODE
    assert cert["subjectAltName"] == f"DNS:{NODE}, DNS:cfg01, IP:{api['address']}"
    # the CA minion's compiled pillar has that policy, pinning exactly what is asked
    policy = wired["pillar"]["x509_signing_policies"]["salt_api_cfg01"]
    assert policy["minions"] == NODE
    assert (policy["CN"], policy["subjectAltName"]) == (cert["CN"], cert["subjectAltName"])
    assert policy["signing_cert"] == "/etc/pki/ca/kubernetes/ca.crt"
    assert policy["extendedKeyUsage"] == "serverAuth"
    _, key = call(wired["states"], "salt-api-private-key-managed")
    assert key["mode"] == "0600" and key["user"] == "root"


def test_service_restarts_on_config_and_certificate_and_the_master_after_the_run(wired):
    states = wired["states"]
    _, svc = call(states, "salt-api-service-running")
    assert {"file": "salt-api-config-file-managed"} in svc["watch"]
    assert {"x509": "salt-api-certificate-managed"} in svc["watch"]
    assert {"test": "salt-api-cherrypy-installed-checked"} in svc["require"]
    assert {"user": f"salt-api-user-{USER}-present"} in svc["require"]
    # external_auth is the master's: a changed file restarts it once the run has ended
    _, config = call(states, "salt-api-config-file-managed")
    assert {"cmd": "salt-master-service-restart-scheduled"} in config["onchanges_in"]
    _, check = call(states, "salt-api-cherrypy-installed-checked")
    assert "--versions-report" in check["unless"] and "cherrypy" in check["unless"]


def test_the_ci_user_is_a_system_user_with_the_password_from_the_secrets(wired):
    _, user = call(wired["states"], f"salt-api-user-{USER}-present")
    assert user["name"] == USER and user["system"] is True
    assert user["shell"] == "/usr/sbin/nologin" and user["createhome"] is False
    assert user["password"] == wired["secrets"][SECRET].strip()
    assert user["hash_password"] is True and not user["password"].startswith("$")
    # the password reaches no other state (the config file names the user, not its password)
    others = {k: v for k, v in wired["states"].items() if k != f"salt-api-user-{USER}-present"}
    assert user["password"] not in repr(others)


def test_the_cherrypy_check_fails_without_cherrypy_and_passes_with_it(wired):
    """The check's command, run against this venv's salt-api (with CherryPy) and against
    a salt-api whose report says it is not installed."""
    _, check = call(wired["states"], "salt-api-cherrypy-installed-checked")
    real = str(Path(sys.executable).with_name("salt-api"))
    command = check["unless"].replace("/usr/bin/salt-api", real, 1)
    assert subprocess.run(["sh", "-c", command]).returncode == 0
    fake = wired["root"] / "salt-api-without-cherrypy"
    fake.write_text("#!/bin/sh\nprintf 'Dependency Versions:\\n      cherrypy: Not Installed\\n'\n")
    fake.chmod(0o755)
    command = check["unless"].replace("/usr/bin/salt-api", str(fake), 1)
    assert subprocess.run(["sh", "-c", command]).returncode != 0


# -- what Salt lets the CI user run (Salt's own authorization code) ------------------------


def ckminions(tmp_path: Path, minions: list[str]) -> salt.utils.minions.CkMinions:
    """Salt's CkMinions over a master whose accepted minion keys are `minions`."""
    opts = salt.config.master_config(None)
    opts.update(pki_dir=str(tmp_path / "pki"), cachedir=str(tmp_path / "cache"),
                sock_dir=str(tmp_path / "sock"), minion_data_cache=False)
    (tmp_path / "pki" / "minions").mkdir(parents=True)
    for minion in minions:
        (tmp_path / "pki" / "minions" / minion).write_text("key")
    return salt.utils.minions.CkMinions(opts)


def loaded_acl(config: dict[str, Any], tmp_path: Path) -> list:
    """The CI user's auth list as the master builds it from the rendered file (read back
    through Salt's master config loader)."""
    conf_dir = tmp_path / "etc"
    (conf_dir / "master.d").mkdir(parents=True)
    (conf_dir / "master").write_text("")
    (conf_dir / "master.d" / "stacksalt-api.conf").write_text(yaml.safe_dump(config))
    opts = salt.config.master_config(str(conf_dir / "master"))
    assert opts["rest_cherrypy"]["ssl_crt"] == config["rest_cherrypy"]["ssl_crt"]
    assert opts["netapi_enable_clients"] == ["local", "runner"]
    ck = salt.utils.minions.CkMinions(opts)
    return ck.fill_auth_list(opts["external_auth"]["pam"], USER, [])


def kw(**kwargs) -> dict[str, Any]:
    return {"__kwarg__": True, **kwargs}


# (function, its args as the master receives them, allowed)
MINION_CALLS = [
    ("state.apply", [kw(test=True)], True),
    ("state.apply", ["kubernetes.master", kw(test=True)], True),
    # the args as the master sees them: test given as a string, or not at all
    ("state.apply", [kw(test="True")], True),
    ("state.apply", [kw(test=False)], False),
    ("state.apply", [], False),
    ("state.apply", ["test=True"], False),  # unparsed: the master cannot tell; refused
    ("state.apply", [kw(test=1)], False),
    ("state.sls", [kw(test=True)], False),
    ("state.highstate", [kw(test=True)], False),
    ("saltutil.refresh_pillar", [], True),
    ("saltutil.sync_all", [], True),
    ("saltutil.sync_all_extra", [], False),  # anchored: no prefix match
    ("saltutilXsync_all", [], False),  # escaped: `.` is no wildcard
    ("cmd.run", ["id"], False),
    ("test.ping", [], False),
    ("file.write", ["/etc/passwd", "x"], False),
]
RUNNERS = [
    ("stacksalt_ci.checkout", True),
    ("stacksalt_ci.move_checkout", True),
    ("stacksalt_cix.checkout", False),
    ("salt.cmd", False),
    ("state.orchestrate", False),
    ("jobs.list_jobs", False),
]
WHEELS = ["key.accept", "key.delete", "config.values", "file_roots.write"]


def decisions(ck, auth_list, minions) -> dict[str, bool]:
    out = {}
    for fun, args, _ in MINION_CALLS:
        out[f"{fun} {args}"] = bool(ck.auth_check(auth_list, fun, args, "*", minions=minions))
    for fun, _ in RUNNERS:
        out[f"runner {fun}"] = ck.runner_check(auth_list, fun, {}) is True
    for fun in WHEELS:
        out[f"wheel {fun}"] = ck.wheel_check(auth_list, fun, {}) is True
    return out


EXPECTED = {
    **{f"{fun} {args}": allowed for fun, args, allowed in MINION_CALLS},
    **{f"runner {fun}": allowed for fun, allowed in RUNNERS},
    **{f"wheel {fun}": False for fun in WHEELS},
}


def test_salt_allows_the_ci_user_exactly_the_pipeline_calls(wired, tmp_path):
    minions = Deployment.load("lab").node_names
    ck = ckminions(tmp_path / "master", minions)
    auth_list = loaded_acl(api_config(wired)["dataset"], tmp_path)
    assert decisions(ck, auth_list, minions) == EXPECTED
    # a user the file does not name gets nothing
    assert ck.fill_auth_list({USER: auth_list}, "someone-else", []) == []


@pytest.mark.parametrize(("acl", "wrongly_allowed"), [
    # the documentation's plain names: prefix matches, `.` a wildcard
    ([{"*": [{"state.apply": {"kwargs": {"test": "True"}}}, "saltutil.refresh_pillar",
             "saltutil.sync_all"]}, {"@runner": ["stacksalt_ci.*"]}],
     {"saltutil.sync_all_extra []", "saltutilXsync_all []", "runner stacksalt_cix.checkout"}),
    # state.apply without the argument rule: a real run
    ([{"*": ["state\\.apply$", "saltutil\\.refresh_pillar$", "saltutil\\.sync_all$"]},
      {"@runner": ["stacksalt_ci\\.[a-z_]+$"]}],
     {"state.apply [{'__kwarg__': True, 'test': False}]", "state.apply []",
      "state.apply ['test=True']", "state.apply [{'__kwarg__': True, 'test': 1}]"}),
    # a bare '@runner' and '@wheel'
    ([{"*": [{"state\\.apply$": {"kwargs": {"test": "True$"}}}]}, "@runner", "@wheel"],
     {"runner stacksalt_cix.checkout", "runner salt.cmd", "runner state.orchestrate",
      "runner jobs.list_jobs", *(f"wheel {w}" for w in WHEELS)}),
])
def test_a_looser_acl_is_caught(acl, wrongly_allowed, tmp_path):
    """Negative controls: the same check on looser ACLs finds exactly what they let in
    (and the model's ACL is not one of them: the test above)."""
    minions = Deployment.load("lab").node_names
    ck = ckminions(tmp_path / "master", minions)
    got = decisions(ck, ck.fill_auth_list({USER: acl}, USER, []), minions)
    allowed_too_much = {k for k, v in got.items() if v and not EXPECTED[k]}
    assert wrongly_allowed <= allowed_too_much, allowed_too_much


# -- what the model check refuses ----------------------------------------------------------


def schema_errors(inventory: Path) -> list[str]:
    return [str(e) for e in model_check.check(inventory, "lab") if e.kind == schema.KIND]


def edit_acl(inventory: Path, change) -> None:
    path = inventory / SERVICE_CLASS
    data = yaml.safe_load(path.read_text())
    change(data["parameters"]["salt"]["api"]["users"][USER]["acl"])
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def inventory(tmp_path) -> Path:
    """A wired copy of the model beside the checkout's formulas (their schemas)."""
    inventory = combined_inventory(tmp_path)
    wire(inventory)
    return inventory


def test_the_wired_model_checks_clean(inventory):
    assert model_check.check(inventory, "lab") == []


ACL_KEY = "classes/service/salt/api/init.yml: parameters:salt:api:users:stacksalt-ci:acl"


@pytest.mark.parametrize(("change", "expected"), [
    (lambda acl: acl.append("@wheel"), ACL_KEY + ":2: '@wheel' is not a mapping"),
    (lambda acl: acl.append({"@wheel": [".*"]}),
     ACL_KEY + ":2:@wheel: name '@wheel' is not allowed"),
    (lambda acl: acl.append({"@jobs": [".*"]}), ACL_KEY + ":2:@jobs: name '@jobs' is not allowed"),
    # a function on every minion (a bare string entry)
    (lambda acl: acl.insert(0, ".*"), ACL_KEY + ":0: '.*' is not a mapping"),
    # a YAML boolean: Salt matches str(value) with re.match(True, ...), which never matches
    (lambda acl: acl[0]["*"][0]["state\\.apply$"]["kwargs"].update(test=True),
     ACL_KEY + ":0:*:0:state\\.apply$:kwargs:test: True is not a string or null"),
    # a regex that does not compile: Salt logs it and skips it
    (lambda acl: acl[1]["@runner"].append("stacksalt_ci\\.("),
     ACL_KEY + ":1:@runner:1: 'stacksalt_ci\\\\.(' is not a regex"),
])
def test_a_wrong_acl_is_refused_naming_file_and_key(inventory, change, expected):
    edit_acl(inventory, change)
    errors = schema_errors(inventory)
    assert any(expected in e for e in errors), errors



# -- salt-api itself, with the rendered file -----------------------------------------------


def test_salt_api_serves_the_rendered_config_over_tls_only(wired, tmp_path):
    """The venv's real salt-api with the rendered file (host, port and certificate paths
    moved to this machine): it serves HTTPS with that certificate, which verifies against
    its CA, and answers plain HTTP with no API. (Which clients it serves and who may run
    what is the master's part: the tests above, with Salt's own loader and ACL code.)"""
    import time

    import requests

    ca, crt, key = throwaway_tls(tmp_path / "pki", "test kubernetes CA", "localhost",
                                 ("localhost",), "api")
    port = free_port()
    config = api_config(wired)["dataset"]
    config["rest_cherrypy"].update(host="127.0.0.1", port=port, ssl_crt=str(crt),
                                   ssl_key=str(key))
    etc = tmp_path / "etc"
    (etc / "master.d").mkdir(parents=True)
    (etc / "master").write_text(yaml.safe_dump({
        "root_dir": str(tmp_path / "root"), "api_pidfile": str(tmp_path / "api.pid"),
        "api_logfile": str(tmp_path / "api.log"), "log_level_logfile": "info"}))
    (etc / "master.d" / "stacksalt-api.conf").write_text(yaml.safe_dump(config))
    salt_api = Path(sys.executable).with_name("salt-api")
    proc = subprocess.Popen([str(salt_api), "-c", str(etc), "-l", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"https://127.0.0.1:{port}/"
    try:
        answer = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = requests.get(url, verify=str(ca), timeout=5,
                                      headers={"Accept": "application/json"})
                break
            except requests.ConnectionError:
                time.sleep(0.5)
        assert answer is not None, f"salt-api did not serve {url}: {proc.poll()} " + (
            (tmp_path / "api.log").read_text() if (tmp_path / "api.log").exists() else "")
        assert answer.status_code == 200 and answer.json()["return"] == "Welcome"
        # the certificate it serves is the one the file names
        import ssl

        served = ssl.get_server_certificate(("127.0.0.1", port))
        assert served.strip() == crt.read_text().strip()
        # no plaintext API on the port
        try:
            plain = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
            assert plain.status_code != 200 and "Welcome" not in plain.text
        except requests.ConnectionError:
            pass
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# a stand-in for the pipeline's runner module (the lead's stacksalt_ci), so that an
# authorized runner call has something to run
RUNNER = '''
def checkout(rev="HEAD"):
    return {"checked_out": rev}
'''


def test_the_master_and_salt_api_enforce_the_acl_over_https(wired, tmp_path):
    """A real salt-master and salt-api on loopback with the rendered file: the user logs in
    over HTTPS and gets exactly what the ACL allows. The eauth backend is Salt's `file`
    (a throwaway user list) instead of pam, which would need a system user on this
    machine; the ACL, the clients and the master's authorization are the rendered ones."""
    import time

    import requests

    ca, crt, key = throwaway_tls(tmp_path / "pki", "test kubernetes CA", "localhost",
                                 ("localhost",), "api")
    config = api_config(wired)["dataset"]
    acl = config["external_auth"]["pam"][USER]
    users = tmp_path / "users.txt"
    users.write_text(f"{USER}:throwaway-password\n")
    users.chmod(0o600)
    runners = tmp_path / "runners"
    runners.mkdir()
    (runners / "stacksalt_ci.py").write_text(RUNNER)
    port = free_port()
    short_root = tempfile.mkdtemp(prefix="sa-", dir="/tmp")
    master = {
        **config,
        # a short root: the master's unix sockets live under it (108 bytes at most)
        "root_dir": short_root, "user": "root", "interface": "127.0.0.1",
        "publish_port": free_port(), "ret_port": free_port(), "runner_dirs": [str(runners)],
        "log_file": str(tmp_path / "master.log"), "api_pidfile": str(tmp_path / "api.pid"),
        "api_logfile": str(tmp_path / "api.log"),
        "rest_cherrypy": {**config["rest_cherrypy"], "host": "127.0.0.1", "port": port,
                          "ssl_crt": str(crt), "ssl_key": str(key)},
        "external_auth": {"file": {"^filename": str(users), "^filetype": "text", USER: acl}},
    }
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "master").write_text(yaml.safe_dump(master))
    bindir = Path(sys.executable).parent
    procs = [subprocess.Popen([str(bindir / name), "-c", str(etc), "-l", "error"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name in ("salt-master", "salt-api")]
    url = f"https://127.0.0.1:{port}"
    try:
        login = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and all(p.poll() is None for p in procs):
            try:
                login = requests.post(f"{url}/login", verify=str(ca), timeout=10, json={
                    "username": USER, "password": "throwaway-password", "eauth": "file"})
                if login.status_code != 503:  # 503: the master is not up yet
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        assert login is not None and login.status_code == 200, (
            login and login.status_code, [p.poll() for p in procs])
        token = login.json()["return"][0]["token"]

        def run(low: dict) -> int:
            answer = requests.post(url, json=[low], verify=str(ca), timeout=60,
                                   headers={"X-Auth-Token": token,
                                            "Accept": "application/json"})
            if answer.status_code == 200 and low["client"] == "runner":
                assert answer.json()["return"] == [{"checked_out": "abc123"}]
            return answer.status_code

        local = {"client": "local", "tgt": "*"}
        got = {
            "state.apply test=True": run({**local, "fun": "state.apply",
                                          "kwarg": {"test": True}}),
            "state.apply test=False": run({**local, "fun": "state.apply",
                                           "kwarg": {"test": False}}),
            "state.apply": run({**local, "fun": "state.apply"}),
            "saltutil.refresh_pillar": run({**local, "fun": "saltutil.refresh_pillar"}),
            "saltutil.sync_all": run({**local, "fun": "saltutil.sync_all"}),
            "cmd.run": run({**local, "fun": "cmd.run", "arg": ["id"]}),
            "runner stacksalt_ci.checkout": run({"client": "runner",
                                                 "fun": "stacksalt_ci.checkout",
                                                 "kwarg": {"rev": "abc123"}}),
            "runner salt.cmd": run({"client": "runner", "fun": "salt.cmd",
                                    "arg": ["cmd.run", "id"]}),
            "wheel key.list_all": run({"client": "wheel", "fun": "key.list_all"}),
        }
        assert got == {
            # allowed (no minion is connected here: nothing is sent, the call succeeds)
            "state.apply test=True": 200, "saltutil.refresh_pillar": 200,
            "saltutil.sync_all": 200, "runner stacksalt_ci.checkout": 200,
            # the ACL refuses (401), the disabled client is refused before it (400)
            "state.apply test=False": 401, "state.apply": 401, "cmd.run": 401,
            "runner salt.cmd": 401, "wheel key.list_all": 400,
        }
        wrong = requests.post(f"{url}/login", verify=str(ca), timeout=10, json={
            "username": USER, "password": "not-the-password", "eauth": "file"})
        assert wrong.status_code == 401
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(short_root, ignore_errors=True)
